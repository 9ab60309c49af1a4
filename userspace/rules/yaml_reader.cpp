#include "yaml_reader.h"

#include <fstream>
#include <sstream>

#include "address_guard.h"

namespace sluice {

std::string YamlReader::where(const YAML::Node& at) const {
  std::ostringstream out;
  out << source_.string();
  const YAML::Mark mark = at.Mark();
  if (mark.line >= 0) out << ":" << mark.line + 1 << ":" << mark.column + 1;
  return out.str();
}

void YamlReader::fail(const YAML::Node& at, const std::string& what) const {
  throw ConfigError(where(at) + ": " + what);
}

void YamlReader::warn(const YAML::Node& at, const std::string& what) const {
  if (warnings_) warnings_->push_back(where(at) + ": " + what);
}

void YamlReader::requireMap(const YAML::Node& node, const std::string& name, const std::set<std::string>& known,
                            const std::set<std::string>& noEffect) const {
  if (!node.IsMap()) fail(node, "'" + name + "' must be a mapping");
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) fail(entry.first, "a key in '" + name + "' must be a plain name");
    const std::string key = entry.first.as<std::string>();
    if (known.contains(key)) continue;
    if (noEffect.contains(key)) {
      warn(entry.first, "'" + name + "." + key + "' is not implemented by sluice and has no effect");
      continue;
    }
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    fail(entry.first, "unknown field '" + key + "' in '" + name + "' (known: " + list + ")");
  }
}

YAML::Node YamlReader::required(const YAML::Node& map, const std::string& key, const std::string& name) const {
  YAML::Node value = map[key];
  if (!value) fail(map, "'" + name + "' needs field '" + key + "'");
  return value;
}

const YAML::Node& YamlReader::sequence(const YAML::Node& node, const std::string& name) const {
  if (node && !node.IsSequence()) fail(node, "'" + name + "' must be a list");
  return node;
}

std::string YamlReader::string(const YAML::Node& node, const std::string& name) const {
  if (!node.IsScalar()) fail(node, "'" + name + "' must be a string");
  return node.as<std::string>();
}

uint64_t YamlReader::number(const YAML::Node& node, const std::string& name, uint64_t min, uint64_t max) const {
  if (!node.IsScalar()) fail(node, "'" + name + "' must be a number");
  uint64_t value = 0;
  try {
    value = node.as<uint64_t>();
  } catch (const YAML::Exception&) {
    fail(node, "'" + name + "' must be a whole number, got '" + node.as<std::string>() + "'");
  }
  if (value < min || value > max) {
    fail(node, "'" + name + "' is " + std::to_string(value) + ", outside " + std::to_string(min) + ".." +
                   std::to_string(max));
  }
  return value;
}

uint16_t YamlReader::port(const YAML::Node& node, const std::string& name) const {
  return static_cast<uint16_t>(number(node, name, 1, 65535));
}

std::set<uint16_t> YamlReader::ports(const YAML::Node& node, const std::string& name) const {
  if (!node.IsSequence() || node.size() == 0) fail(node, "'" + name + "' must be a non-empty list of ports");
  std::set<uint16_t> out;
  for (const auto& item : node) {
    uint16_t value = port(item, name);
    if (!out.insert(value).second) fail(item, "port " + std::to_string(value) + " is listed twice in '" + name + "'");
  }
  return out;
}

std::vector<std::string> YamlReader::strings(const YAML::Node& node, const std::string& name) const {
  if (!node.IsSequence()) fail(node, "'" + name + "' must be a list");
  // (each item is checked to be a scalar below)
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(string(item, name));
  return out;
}

Ipv4Endpoint YamlReader::endpoint(const YAML::Node& node, const std::string& name) const {
  auto parsed = parseIpv4Endpoint(string(node, name));
  if (!parsed) fail(node, "'" + name + "' must be IPv4-address:port, got '" + node.as<std::string>() + "'");
  return *parsed;
}

std::chrono::milliseconds YamlReader::millis(const YAML::Node& map, const std::string& key,
                                             std::chrono::milliseconds fallback) const {
  if (!map[key]) return fallback;
  return std::chrono::milliseconds(number(map[key], key, 1, 3'600'000));
}

std::filesystem::path YamlReader::file(const YAML::Node& node, const std::string& name) const {
  std::filesystem::path path = string(node, name);
  if (path.is_relative()) path = source_.parent_path() / path;
  std::ifstream probe(path);
  if (!probe) fail(node, "'" + name + "' names '" + path.string() + "', which cannot be read");
  return path;
}

TlsFiles YamlReader::tls(const YAML::Node& node, const std::string& name) const {
  requireMap(node, name, {"ca", "cert", "key"});
  return TlsFiles{file(required(node, "ca", name), name + ".ca"), file(required(node, "cert", name), name + ".cert"),
                  file(required(node, "key", name), name + ".key")};
}

std::string YamlReader::identity(const YAML::Node& node, const std::string& name) const {
  std::string value = string(node, name);
  if (!value.starts_with("spiffe://") || value.size() <= 9) {
    fail(node, "'" + name + "' must be a SPIFFE ID such as spiffe://cluster.local/ns/NS/sa/SA");
  }
  return value;
}

std::string YamlReader::hostRule(const YAML::Node& node, const std::string& name) const {
  std::string rule = string(node, name);
  if (auto error = hostRuleError(rule)) fail(node, "host '" + rule + "': " + *error);
  bool wildcard = rule.starts_with("*.");
  std::string normal = *normalizeHostName(wildcard ? rule.substr(2) : rule);
  return wildcard ? "*." + normal : normal;
}

CidrSet YamlReader::cidrs(const YAML::Node& node, const std::string& name) const {
  if (!node.IsSequence()) fail(node, "'" + name + "' must be a list");
  CidrSet out;
  for (const auto& item : node) {
    std::string text = string(item, name);
    if (text.find(':') != std::string::npos) {
      auto cidr = parseIpv6Cidr(text);
      if (!cidr) fail(item, "'" + text + "' is not an IPv6 CIDR with zero host bits");
      out.v6.push_back(*cidr);
    } else {
      auto cidr = parseIpv4Cidr(text);
      if (!cidr) fail(item, "'" + text + "' is not an IPv4 CIDR with zero host bits");
      out.v4.push_back(*cidr);
    }
  }
  return out;
}

CidrSet YamlReader::privateCidrs(const YAML::Node& node, const std::string& name) const {
  CidrSet out = cidrs(node, name);
  for (const auto& item : node) {
    std::string text = item.as<std::string>();
    bool inside = text.find(':') != std::string::npos ? insidePrivateRange(*parseIpv6Cidr(text))
                                                      : insidePrivateRange(*parseIpv4Cidr(text));
    if (!inside) {
      fail(item, "'" + text + "' in '" + name + "' is not inside a private range (" + privateRangesText() +
                     "): only those can be opted in; loopback, link-local, multicast, the machine's own "
                     "addresses and public ranges never are");
    }
  }
  return out;
}

}  // namespace sluice
