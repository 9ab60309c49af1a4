#include "config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <limits>
#include <sstream>

namespace sluice {
namespace {

// Reads one YAML mapping strictly: every key must be known, every error names its place.
class Reader {
 public:
  Reader(const std::filesystem::path& source) : source_(source) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const {
    const YAML::Mark mark = at.Mark();
    std::ostringstream out;
    out << source_.string();
    if (mark.line >= 0) out << ":" << mark.line + 1 << ":" << mark.column + 1;
    out << ": " << what;
    throw ConfigError(out.str());
  }

  void requireMap(const YAML::Node& node, const std::string& name,
                  const std::set<std::string>& known) const {
    if (!node.IsMap()) fail(node, "'" + name + "' must be a mapping");
    for (const auto& entry : node) {
      const std::string key = entry.first.as<std::string>();
      if (!known.contains(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        fail(entry.first, "unknown field '" + key + "' in '" + name + "' (known: " + list + ")");
      }
    }
  }

  YAML::Node required(const YAML::Node& map, const std::string& key,
                      const std::string& name) const {
    YAML::Node value = map[key];
    if (!value) fail(map, "'" + name + "' needs field '" + key + "'");
    return value;
  }

  std::string string(const YAML::Node& node, const std::string& name) const {
    if (!node.IsScalar()) fail(node, "'" + name + "' must be a string");
    return node.as<std::string>();
  }

  uint64_t number(const YAML::Node& node, const std::string& name, uint64_t min,
                  uint64_t max) const {
    if (!node.IsScalar()) fail(node, "'" + name + "' must be a number");
    uint64_t value = 0;
    try {
      value = node.as<uint64_t>();
    } catch (const YAML::Exception&) {
      fail(node, "'" + name + "' must be a whole number, got '" + node.as<std::string>() + "'");
    }
    if (value < min || value > max) {
      fail(node, "'" + name + "' is " + std::to_string(value) + ", outside " +
                     std::to_string(min) + ".." + std::to_string(max));
    }
    return value;
  }

  std::set<uint16_t> ports(const YAML::Node& node, const std::string& name) const {
    if (!node.IsSequence() || node.size() == 0) fail(node, "'" + name + "' must be a non-empty list of ports");
    std::set<uint16_t> out;
    for (const auto& item : node) {
      auto port = static_cast<uint16_t>(number(item, name, 1, 65535));
      if (!out.insert(port).second) fail(item, "port " + std::to_string(port) + " is listed twice in '" + name + "'");
    }
    return out;
  }

  std::vector<std::string> strings(const YAML::Node& node, const std::string& name) const {
    if (!node.IsSequence()) fail(node, "'" + name + "' must be a list");
    std::vector<std::string> out;
    for (const auto& item : node) out.push_back(string(item, name));
    return out;
  }

  Ipv4Endpoint endpoint(const YAML::Node& node, const std::string& name) const {
    auto parsed = parseIpv4Endpoint(string(node, name));
    if (!parsed) fail(node, "'" + name + "' must be IPv4-address:port, got '" + node.as<std::string>() + "'");
    return *parsed;
  }

  std::chrono::milliseconds millis(const YAML::Node& map, const std::string& key,
                                   std::chrono::milliseconds fallback) const {
    if (!map[key]) return fallback;
    return std::chrono::milliseconds(number(map[key], key, 1, 3'600'000));
  }

  std::filesystem::path file(const YAML::Node& node, const std::string& name) const {
    std::filesystem::path path = string(node, name);
    if (path.is_relative()) path = source_.parent_path() / path;
    std::ifstream probe(path);
    if (!probe) fail(node, "'" + name + "' names '" + path.string() + "', which cannot be read");
    return path;
  }

  TlsFiles tls(const YAML::Node& node, const std::string& name) const {
    requireMap(node, name, {"ca", "cert", "key"});
    return TlsFiles{file(required(node, "ca", name), name + ".ca"),
                    file(required(node, "cert", name), name + ".cert"),
                    file(required(node, "key", name), name + ".key")};
  }

  std::string identity(const YAML::Node& node, const std::string& name) const {
    std::string value = string(node, name);
    if (!value.starts_with("spiffe://") || value.size() <= 9) {
      fail(node, "'" + name + "' must be a SPIFFE ID such as spiffe://cluster.local/ns/NS/sa/SA");
    }
    return value;
  }

 private:
  std::filesystem::path source_;
};

std::vector<HostRule> readHosts(const Reader& r, const YAML::Node& node) {
  if (!node.IsSequence()) r.fail(node, "'hosts' must be a list");
  std::vector<HostRule> out;
  std::set<std::string> seen;
  for (const auto& item : node) {
    r.requireMap(item, "hosts[]", {"name", "ports"});
    YAML::Node nameNode = r.required(item, "name", "hosts[]");
    std::string name = r.string(nameNode, "hosts[].name");
    if (auto error = hostRuleError(name)) r.fail(nameNode, "host '" + name + "': " + *error);
    bool wildcard = name.starts_with("*.");
    std::string normal = *normalizeHostName(wildcard ? name.substr(2) : name);
    if (wildcard) normal = "*." + normal;
    if (!seen.insert(normal).second) r.fail(nameNode, "host '" + normal + "' is listed twice");
    std::set<uint16_t> ports = item["ports"] ? r.ports(item["ports"], "hosts[].ports")
                                             : std::set<uint16_t>{443};
    out.push_back(HostRule{normal, ports});
  }
  return out;
}

AgentConfig readAgent(const Reader& r, const YAML::Node& node) {
  r.requireMap(node, "agent",
               {"listen", "redirectPorts", "bypassCidrs", "cgroups", "clientHelloTimeoutMs",
                "maxClientHelloBytes", "tls", "gateway"});
  AgentConfig agent;
  agent.listen = r.endpoint(r.required(node, "listen", "agent"), "agent.listen");
  agent.redirectPorts = node["redirectPorts"] ? r.ports(node["redirectPorts"], "agent.redirectPorts")
                                              : std::set<uint16_t>{443};
  if (node["bypassCidrs"]) {
    for (const auto& item : node["bypassCidrs"]) {
      auto cidr = parseIpv4Cidr(r.string(item, "agent.bypassCidrs"));
      if (!cidr) r.fail(item, "'" + item.as<std::string>() + "' is not an IPv4 CIDR with zero host bits");
      agent.bypass.push_back(*cidr);
    }
  }
  if (node["cgroups"]) agent.cgroups = r.strings(node["cgroups"], "agent.cgroups");
  agent.clientHelloTimeout = r.millis(node, "clientHelloTimeoutMs", agent.clientHelloTimeout);
  if (node["maxClientHelloBytes"]) {
    agent.maxClientHelloBytes = static_cast<uint32_t>(
        r.number(node["maxClientHelloBytes"], "agent.maxClientHelloBytes", 512, 65536 + 5));
  }
  agent.tls = r.tls(r.required(node, "tls", "agent"), "agent.tls");
  YAML::Node gw = r.required(node, "gateway", "agent");
  r.requireMap(gw, "agent.gateway", {"address", "identity", "connectTimeoutMs"});
  agent.gatewayAddress = r.endpoint(r.required(gw, "address", "agent.gateway"), "agent.gateway.address");
  agent.gatewayIdentity = r.identity(r.required(gw, "identity", "agent.gateway"), "agent.gateway.identity");
  agent.gatewayConnectTimeout = r.millis(gw, "connectTimeoutMs", agent.gatewayConnectTimeout);
  return agent;
}

GatewayConfig readGateway(const Reader& r, const YAML::Node& node) {
  r.requireMap(node, "gateway",
               {"listen", "dns", "dnsTimeoutMs", "upstreamConnectTimeoutMs", "handshakeTimeoutMs",
                "tls", "allowedClients"});
  GatewayConfig gateway;
  gateway.listen = r.endpoint(r.required(node, "listen", "gateway"), "gateway.listen");
  gateway.dnsServer = r.endpoint(r.required(node, "dns", "gateway"), "gateway.dns");
  gateway.dnsTimeout = r.millis(node, "dnsTimeoutMs", gateway.dnsTimeout);
  gateway.upstreamConnectTimeout = r.millis(node, "upstreamConnectTimeoutMs", gateway.upstreamConnectTimeout);
  gateway.handshakeTimeout = r.millis(node, "handshakeTimeoutMs", gateway.handshakeTimeout);
  gateway.tls = r.tls(r.required(node, "tls", "gateway"), "gateway.tls");
  YAML::Node clients = r.required(node, "allowedClients", "gateway");
  if (!clients.IsSequence() || clients.size() == 0) {
    r.fail(clients, "'gateway.allowedClients' must list at least one SPIFFE ID (deny by default)");
  }
  for (const auto& item : clients) gateway.allowedClients.insert(r.identity(item, "gateway.allowedClients"));
  return gateway;
}

}  // namespace

HostMatcher Config::hostMatcher() const {
  HostMatcher matcher;
  for (const auto& rule : hosts) matcher.add(rule.name, rule.ports);
  return matcher;
}

Config loadConfigText(const std::string& text, const std::filesystem::path& source) {
  Reader r(source);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::ostringstream out;
    out << source.string() << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": "
        << e.msg;
    throw ConfigError(out.str());
  }
  if (!root || root.IsNull()) throw ConfigError(source.string() + ": the file is empty");
  r.requireMap(root, "the top level", {"hosts", "agent", "gateway"});
  Config config;
  config.source = source;
  config.hosts = readHosts(r, r.required(root, "hosts", "the top level"));
  if (root["agent"]) config.agent = readAgent(r, root["agent"]);
  if (root["gateway"]) config.gateway = readGateway(r, root["gateway"]);
  return config;
}

Config loadConfigFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string() + ": cannot open the rules file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return loadConfigText(buffer.str(), std::filesystem::absolute(path));
}

}  // namespace sluice
