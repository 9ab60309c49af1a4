#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>

#include "env_expand.h"
#include "istio_rules.h"
#include "shared_zones.h"
#include "yaml_reader.h"

namespace sluice {
namespace {

std::vector<HostRule> readHosts(const YamlReader& r, const YAML::Node& node) {
  if (!node.IsSequence()) r.fail(node, "'hosts' must be a list");
  std::vector<HostRule> out;
  std::set<std::string> seen;
  for (const auto& item : node) {
    r.requireMap(item, "hosts[]", {"name", "ports"});
    YAML::Node nameNode = r.required(item, "name", "hosts[]");
    std::string name = r.hostRule(nameNode, "hosts[].name");
    if (auto risk = broadWildcardRisk(name)) r.warn(nameNode, *risk);
    if (!seen.insert(name).second) r.fail(nameNode, "host '" + name + "' is listed twice");
    std::set<uint16_t> ports = item["ports"] ? r.ports(item["ports"], "hosts[].ports") : std::set<uint16_t>{443};
    out.push_back(HostRule{name, ports});
  }
  return out;
}

uint32_t readSocketMark(const YamlReader& r, const YAML::Node& node, const std::string& name) {
  auto mark = static_cast<uint32_t>(r.number(node, name, 1, 0xffffffffU));
  if (mark & kForeignMarkBits) {
    r.warn(node, "'" + name + "' uses mark bits that kube-proxy and CNIs give meaning (0x4000, 0x8000, 0x0f00, " +
                     "0xffff0000): their routing or drop rules may act on sluice's sockets");
  }
  return mark;
}

AgentConfig readAgent(const YamlReader& r, const YAML::Node& node) {
  r.requireMap(
      node, "agent",
      {"listen", "listen6", "redirectPorts", "blockQuic", "bypassCidrs", "cgroups", "clientHelloTimeoutMs",
       "maxClientHelloBytes", "tls", "gateway", "directConnectTimeoutMs", "idleTimeoutMs", "socketMark",
       "kubepodsCgroup", "exemptCgroups", "allowPrivateCidrs", "echPolicy", "maxConnections", "maxConnectionsPerPod"});
  AgentConfig agent;
  agent.listen = r.endpoint(r.required(node, "listen", "agent"), "agent.listen");
  agent.redirectPorts =
      node["redirectPorts"] ? r.ports(node["redirectPorts"], "agent.redirectPorts") : std::set<uint16_t>{443};
  if (node["bypassCidrs"]) {
    CidrSet bypass = r.cidrs(node["bypassCidrs"], "agent.bypassCidrs");
    agent.bypass = std::move(bypass.v4);
    agent.bypass6 = std::move(bypass.v6);
  }
  if (node["allowPrivateCidrs"]) {
    agent.allowPrivateCidrs = r.privateCidrs(node["allowPrivateCidrs"], "agent.allowPrivateCidrs");
  }
  if (node["listen6"]) {
    auto address = parseIpv6(r.string(node["listen6"], "agent.listen6"));
    if (!address) r.fail(node["listen6"], "'agent.listen6' must be an IPv6 address (the port is agent.listen's)");
    agent.listen6 = *address;
  }
  if (node["blockQuic"]) {
    try {
      agent.blockQuic = node["blockQuic"].as<bool>();
    } catch (const YAML::Exception&) {
      r.fail(node["blockQuic"], "'agent.blockQuic' must be true or false");
    }
  }
  if (node["cgroups"]) agent.cgroups = r.strings(node["cgroups"], "agent.cgroups");
  if (node["kubepodsCgroup"]) agent.kubepodsCgroup = r.string(node["kubepodsCgroup"], "agent.kubepodsCgroup");
  if (node["exemptCgroups"]) agent.exemptCgroups = r.strings(node["exemptCgroups"], "agent.exemptCgroups");
  agent.clientHelloTimeout = r.millis(node, "clientHelloTimeoutMs", agent.clientHelloTimeout);
  agent.directConnectTimeout = r.millis(node, "directConnectTimeoutMs", agent.directConnectTimeout);
  agent.idleTimeout = r.millis(node, "idleTimeoutMs", agent.idleTimeout);
  if (node["maxClientHelloBytes"]) {
    agent.maxClientHelloBytes =
        static_cast<uint32_t>(r.number(node["maxClientHelloBytes"], "agent.maxClientHelloBytes", 512, 65536 + 5));
  }
  if (node["socketMark"]) agent.socketMark = readSocketMark(r, node["socketMark"], "agent.socketMark");
  if (node["maxConnections"]) {
    agent.maxConnections =
        static_cast<uint32_t>(r.number(node["maxConnections"], "agent.maxConnections", 1, 1'000'000));
  }
  if (node["maxConnectionsPerPod"]) {
    agent.maxConnectionsPerPod =
        static_cast<uint32_t>(r.number(node["maxConnectionsPerPod"], "agent.maxConnectionsPerPod", 1, 1'000'000));
  }
  if (node["echPolicy"]) {
    std::string ech = r.string(node["echPolicy"], "agent.echPolicy");
    if (ech == "allow") {
      agent.echPolicy = EchPolicy::Allow;
    } else if (ech != "deny") {
      r.fail(node["echPolicy"], "'agent.echPolicy' must be allow or deny, got '" + ech + "'");
    }
  }
  agent.tls = r.tls(r.required(node, "tls", "agent"), "agent.tls");
  YAML::Node gw = r.required(node, "gateway", "agent");
  r.requireMap(gw, "agent.gateway",
               {"address", "addresses", "identity", "connectTimeoutMs", "service", "connections", "pingIntervalMs",
                "pingTimeoutMs", "responseTimeoutMs", "resolveIntervalMs"});
  if (gw["address"] && gw["addresses"])
    r.fail(gw["addresses"], "give 'agent.gateway.address' or 'addresses', not both");
  std::vector<YAML::Node> listed;
  if (gw["addresses"]) {
    if (!gw["addresses"].IsSequence() || gw["addresses"].size() == 0) {
      r.fail(gw["addresses"], "'agent.gateway.addresses' must list at least one \"address:port\" or \"name:port\"");
    }
    for (const auto& item : gw["addresses"]) listed.push_back(item);
  } else {
    listed.push_back(r.required(gw, "address", "agent.gateway"));
  }
  for (const auto& item : listed) {
    std::string text = r.string(item, "agent.gateway.addresses");
    auto target = parseGatewayTarget(text);
    if (!target) {
      r.fail(item, "'" + text +
                       "' is not a gateway: expected \"198.18.3.2:15443\", \"[2001:db8::1]:15443\" or \"name:15443\"");
    }
    if (auto v4 = parseIpv4(target->host); v4 && agent.gatewayAddress.addressBe == 0) {
      agent.gatewayAddress = Ipv4Endpoint{*v4, target->port};
    }
    agent.gateways.push_back(*target);
  }
  if (gw["connections"]) {
    agent.gatewayConnections = static_cast<uint32_t>(r.number(gw["connections"], "agent.gateway.connections", 1, 64));
  }
  agent.gatewayPingInterval = r.millis(gw, "pingIntervalMs", agent.gatewayPingInterval);
  agent.gatewayPingTimeout = r.millis(gw, "pingTimeoutMs", agent.gatewayPingTimeout);
  agent.gatewayResponseTimeout = r.millis(gw, "responseTimeoutMs", agent.gatewayResponseTimeout);
  agent.gatewayIdentity = r.identity(r.required(gw, "identity", "agent.gateway"), "agent.gateway.identity");
  agent.gatewayConnectTimeout = r.millis(gw, "connectTimeoutMs", agent.gatewayConnectTimeout);
  agent.gatewayResolveInterval = r.millis(gw, "resolveIntervalMs", agent.gatewayResolveInterval);
  if (gw["service"]) agent.gatewayService = r.string(gw["service"], "agent.gateway.service");
  return agent;
}

GatewayConfig readGateway(const YamlReader& r, const YAML::Node& node) {
  r.requireMap(node, "gateway",
               {"listen",
                "dns",
                "dnsTimeoutMs",
                "upstreamConnectTimeoutMs",
                "handshakeTimeoutMs",
                "tls",
                "allowedClients",
                "name",
                "labels",
                "idleTimeoutMs",
                "dnsCacheMs",
                "socketMark",
                "denyCidrs",
                "allowPrivateCidrs",
                "listen6",
                "maxStreamsPerTunnel",
                "pingIntervalMs",
                "pingTimeoutMs",
                "dnsNegativeCacheMs",
                "dnsMinCacheMs",
                "dnsCacheSize",
                "maxPendingHandshakes",
                "maxPendingHandshakesPerAddress",
                "maxConnectionsPerClient"});
  GatewayConfig gateway;
  gateway.listen = r.endpoint(r.required(node, "listen", "gateway"), "gateway.listen");
  if (node["listen6"]) {
    auto address = parseIpv6(r.string(node["listen6"], "gateway.listen6"));
    if (!address) r.fail(node["listen6"], "'gateway.listen6' must be an IPv6 address (the port is gateway.listen's)");
    gateway.listen6 = *address;
  }
  if (node["maxStreamsPerTunnel"]) {
    gateway.maxStreamsPerTunnel =
        static_cast<uint32_t>(r.number(node["maxStreamsPerTunnel"], "gateway.maxStreamsPerTunnel", 1, 65536));
  }
  gateway.pingInterval = r.millis(node, "pingIntervalMs", gateway.pingInterval);
  gateway.pingTimeout = r.millis(node, "pingTimeoutMs", gateway.pingTimeout);
  gateway.dnsServer = r.endpoint(r.required(node, "dns", "gateway"), "gateway.dns");
  gateway.dnsTimeout = r.millis(node, "dnsTimeoutMs", gateway.dnsTimeout);
  if (node["dnsCacheMs"]) {
    gateway.dnsCacheLifetime =
        std::chrono::milliseconds(r.number(node["dnsCacheMs"], "gateway.dnsCacheMs", 0, 3'600'000));
  }
  if (node["dnsMinCacheMs"]) {
    gateway.dnsMinCacheLifetime =
        std::chrono::milliseconds(r.number(node["dnsMinCacheMs"], "gateway.dnsMinCacheMs", 0, 3'600'000));
    if (gateway.dnsMinCacheLifetime > gateway.dnsCacheLifetime)
      r.fail(node["dnsMinCacheMs"], "'gateway.dnsMinCacheMs' (" + std::to_string(gateway.dnsMinCacheLifetime.count()) +
                                        ") must not exceed 'gateway.dnsCacheMs' (" +
                                        std::to_string(gateway.dnsCacheLifetime.count()) + ")");
  }
  if (node["dnsNegativeCacheMs"]) {
    gateway.dnsNegativeCacheLifetime =
        std::chrono::milliseconds(r.number(node["dnsNegativeCacheMs"], "gateway.dnsNegativeCacheMs", 0, 60'000));
  }
  if (node["dnsCacheSize"]) {
    gateway.dnsCacheSize = static_cast<uint32_t>(r.number(node["dnsCacheSize"], "gateway.dnsCacheSize", 1, 10'000'000));
  }
  const std::pair<const char*, uint32_t*> caps[] = {
      {"maxPendingHandshakes", &gateway.maxPendingHandshakes},
      {"maxPendingHandshakesPerAddress", &gateway.maxPendingHandshakesPerAddress},
      {"maxConnectionsPerClient", &gateway.maxConnectionsPerClient}};
  for (const auto& [field, value] : caps) {
    if (node[field])
      *value = static_cast<uint32_t>(r.number(node[field], std::string("gateway.") + field, 1, 1'000'000));
  }
  gateway.upstreamConnectTimeout = r.millis(node, "upstreamConnectTimeoutMs", gateway.upstreamConnectTimeout);
  gateway.handshakeTimeout = r.millis(node, "handshakeTimeoutMs", gateway.handshakeTimeout);
  gateway.idleTimeout = r.millis(node, "idleTimeoutMs", gateway.idleTimeout);
  if (node["socketMark"]) gateway.socketMark = readSocketMark(r, node["socketMark"], "gateway.socketMark");
  gateway.tls = r.tls(r.required(node, "tls", "gateway"), "gateway.tls");
  YAML::Node clients = r.required(node, "allowedClients", "gateway");
  if (!clients.IsSequence() || clients.size() == 0) {
    r.fail(clients, "'gateway.allowedClients' must list at least one SPIFFE ID (deny by default)");
  }
  for (const auto& item : clients) gateway.allowedClients.insert(r.identity(item, "gateway.allowedClients"));
  if (node["denyCidrs"]) gateway.denyCidrs = r.cidrs(node["denyCidrs"], "gateway.denyCidrs");
  if (node["allowPrivateCidrs"]) {
    gateway.allowPrivateCidrs = r.privateCidrs(node["allowPrivateCidrs"], "gateway.allowPrivateCidrs");
  }
  if (node["name"]) gateway.name = r.string(node["name"], "gateway.name");
  if (node["labels"]) {
    if (!node["labels"].IsMap()) r.fail(node["labels"], "'gateway.labels' must be a mapping");
    gateway.labels.clear();
    for (const auto& entry : node["labels"]) {
      gateway.labels[entry.first.as<std::string>()] = r.string(entry.second, "gateway.labels");
    }
  }
  return gateway;
}

OutboundPolicy readOutboundPolicy(const YamlReader& r, const YAML::Node& node) {
  r.requireMap(node, "outboundTrafficPolicy", {"mode"});
  std::string mode = r.string(r.required(node, "mode", "outboundTrafficPolicy"), "outboundTrafficPolicy.mode");
  if (mode == "REGISTRY_ONLY") return OutboundPolicy::RegistryOnly;
  if (mode == "ALLOW_ANY") return OutboundPolicy::AllowAny;
  r.fail(node["mode"], "'outboundTrafficPolicy.mode' must be REGISTRY_ONLY or ALLOW_ANY, got '" + mode + "'");
}

void readNativeDocument(const YamlReader& r, const YAML::Node& doc, Config& config, bool& sawPolicy) {
  r.requireMap(doc, "the top level", {"hosts", "agent", "gateway", "outboundTrafficPolicy"});
  if (doc["hosts"]) {
    if (doc["hosts"].IsSequence() && doc["hosts"].size() == 0) config.emptyByIntent = true;
    for (auto& rule : readHosts(r, doc["hosts"])) {
      config.agentHosts.push_back(rule);
      config.gatewayHosts.push_back(rule);
    }
  }
  if (doc["agent"]) {
    if (config.agent) r.fail(doc["agent"], "a second 'agent' section (one is allowed across all files)");
    config.agent = readAgent(r, doc["agent"]);
  }
  if (doc["gateway"]) {
    if (config.gateway) r.fail(doc["gateway"], "a second 'gateway' section (one is allowed across all files)");
    config.gateway = readGateway(r, doc["gateway"]);
  }
  if (doc["outboundTrafficPolicy"]) {
    if (sawPolicy) r.fail(doc["outboundTrafficPolicy"], "a second 'outboundTrafficPolicy'");
    sawPolicy = true;
    config.outboundPolicy = readOutboundPolicy(r, doc["outboundTrafficPolicy"]);
  }
}

// Several documents may name the same host: one rule with the union of their ports.
std::vector<HostRule> mergeRules(const std::vector<HostRule>& rules) {
  std::map<std::string, std::set<uint16_t>> merged;
  for (const auto& rule : rules) merged[rule.name].insert(rule.ports.begin(), rule.ports.end());
  std::vector<HostRule> out;
  for (auto& [name, ports] : merged) out.push_back(HostRule{name, ports});
  return out;
}

// A write cut short (a writer that crashed, a full disk) nearly always ends inside a
// line, and what is left often still parses (a host name, an identity or a port cut in
// two is still one). Files that editors and tools write end with a line break, so a file
// that does not is refused as possibly incomplete.
void refuseCutShort(const std::filesystem::path& source, const std::string& text) {
  if (text.empty() || text.back() == '\n') return;
  const size_t lastBreak = text.rfind('\n');
  const size_t line = std::count(text.begin(), text.end(), '\n') + 1;
  const size_t column = lastBreak == std::string::npos ? text.size() + 1 : text.size() - lastBreak;
  throw ConfigError(source.string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
                    ": the file ends inside a line (no final line break), as a write cut short does; sluice "
                    "does not take it as a policy. End the file with a line break");
}

struct LoadedText {
  std::filesystem::path source;
  std::string text;
};

Config loadTexts(const std::vector<LoadedText>& texts) {
  Config config;
  IstioResources istio;
  bool sawPolicy = false;
  for (const auto& [source, text] : texts) {
    config.sources.push_back(source);
    refuseCutShort(source, text);
    auto reader = std::make_shared<YamlReader>(source, &config.warnings);
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
      std::ostringstream out;
      out << source.string() << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg;
      throw ConfigError(out.str());
    }
    // `kubectl get -o yaml` writes several resources as one `kind: List` whose `items`
    // are the resources: take them as documents of their own.
    std::vector<YAML::Node> expanded;
    for (const auto& doc : docs) {
      if (doc && doc.IsMap() && doc["kind"] && doc["kind"].IsScalar() && doc["kind"].Scalar() == "List" &&
          doc["apiVersion"] && doc["apiVersion"].IsScalar() && doc["apiVersion"].Scalar() == "v1") {
        reader->requireMap(doc, "List", {"apiVersion", "kind", "items", "metadata"}, {});
        const YAML::Node items = doc["items"];
        if (!items || !items.IsSequence()) reader->fail(doc, "'List.items' must be a sequence of resources");
        for (const auto& item : items) expanded.push_back(item);
      } else {
        expanded.push_back(doc);
      }
    }
    docs = std::move(expanded);
    size_t used = 0;
    for (const auto& doc : docs) {
      if (!doc || doc.IsNull()) continue;
      ++used;
      if (!doc.IsMap()) reader->fail(doc, "a document must be a mapping");
      try {
        if (doc["apiVersion"] || doc["kind"]) {
          istio.add(reader, doc);
        } else {
          expandDocument(*reader, doc, processEnvironment());
          readNativeDocument(*reader, doc, config, sawPolicy);
        }
      } catch (const YAML::Exception& e) {
        // A shape the checks above did not foresee: still the file's fault, said so.
        std::ostringstream out;
        out << source.string();
        if (!e.mark.is_null())
          out << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
        else
          out << ":" << doc.Mark().line + 1 << " (in the document starting here)";
        out << ": " << e.msg;
        throw ConfigError(out.str());
      }
    }
    if (used == 0) throw ConfigError(source.string() + ": the file is empty");
  }
  try {
    istio.compileInto(config);
  } catch (const YAML::Exception& e) {
    std::string files;
    for (const auto& [source, text] : texts) files += (files.empty() ? "" : ", ") + source.string();
    throw ConfigError(files + ": the Istio resources do not fit together: " + e.msg);
  }
  config.agentHosts = mergeRules(config.agentHosts);
  config.gatewayHosts = mergeRules(config.gatewayHosts);
  return config;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path.string() + ": cannot open the rules file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

HostMatcher Config::agentMatcher() const {
  HostMatcher matcher;
  for (const auto& rule : agentHosts) matcher.add(rule.name, rule.ports);
  return matcher;
}

HostMatcher Config::gatewayMatcher() const {
  HostMatcher matcher;
  for (const auto& rule : gatewayHosts) matcher.add(rule.name, rule.ports);
  return matcher;
}

GatewayRoute Config::routeFor(const std::string& rule, const std::string& host, uint16_t port) const {
  auto it = gatewayRoutes.find(rule + ":" + std::to_string(port));
  if (it != gatewayRoutes.end()) return it->second;
  return GatewayRoute{{UpstreamDestination{host, port, 100, {}}}};
}

Config loadConfigText(const std::string& text, const std::filesystem::path& source) {
  return loadTexts({LoadedText{source, text}});
}

Config loadConfigFiles(const std::vector<std::filesystem::path>& paths) {
  if (paths.empty()) throw ConfigError("no rules file given");
  std::vector<LoadedText> texts;
  for (const auto& path : paths) texts.push_back({std::filesystem::absolute(path), readFile(path)});
  return loadTexts(texts);
}

Config loadConfigFile(const std::filesystem::path& path) {
  return loadConfigFiles({path});
}

const char* toString(EchPolicy policy) {
  return policy == EchPolicy::Allow ? "allow" : "deny";
}

std::optional<GatewayTarget> parseGatewayTarget(std::string_view text) {
  GatewayTarget target;
  std::string_view host, port;
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (!parseIpv6(host)) return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (!parseIpv4(host) && !normalizeHostName(host)) return std::nullopt;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  target.host = std::string(host);
  target.port = static_cast<uint16_t>(value);
  return target;
}

std::string formatGatewayTarget(const GatewayTarget& target) {
  bool v6 = target.host.find(':') != std::string::npos;
  return (v6 ? "[" + target.host + "]" : target.host) + ":" + std::to_string(target.port);
}

const char* toString(OutboundPolicy policy) {
  return policy == OutboundPolicy::AllowAny ? "ALLOW_ANY" : "REGISTRY_ONLY";
}

}  // namespace sluice
