#include "host_matcher.h"

#include "net_address.h"

namespace sluice {

std::optional<std::string> normalizeHostName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  if (parseIpv4(name)) return std::nullopt;
  std::string out;
  out.reserve(name.size());
  size_t labelLength = 0;
  char previous = '.';
  for (char c : name) {
    char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower == '.') {
      if (labelLength == 0 || previous == '-') return std::nullopt;
      labelLength = 0;
    } else if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '-' || lower == '_') {
      if (lower == '-' && labelLength == 0) return std::nullopt;
      if (++labelLength > 63) return std::nullopt;
    } else {
      return std::nullopt;
    }
    out.push_back(lower);
    previous = lower;
  }
  if (labelLength == 0 || previous == '-') return std::nullopt;
  // A name made only of digits and dots is an IP literal in some other spelling.
  if (out.find_first_not_of("0123456789.") == std::string::npos) return std::nullopt;
  return out;
}

std::optional<std::string> hostRuleError(std::string_view rule) {
  std::string_view name = rule;
  if (rule.starts_with("*.")) {
    name = rule.substr(2);
  } else if (rule.find('*') != std::string_view::npos) {
    return "a wildcard is allowed only as a whole first label, as in '*.example.com'";
  }
  if (name.find('*') != std::string_view::npos) {
    return "a wildcard is allowed only as a whole first label, as in '*.example.com'";
  }
  auto normal = normalizeHostName(name);
  if (!normal) return "'" + std::string(name) + "' is not a valid DNS host name";
  if (rule.starts_with("*.") && normal->find('.') == std::string::npos) {
    return "'" + std::string(rule) + "' is too broad: a wildcard needs at least two labels after '*.'";
  }
  return std::nullopt;
}

void HostMatcher::add(std::string_view rule, const std::set<uint16_t>& ports) {
  bool wildcard = rule.starts_with("*.");
  std::string key = *normalizeHostName(wildcard ? rule.substr(2) : rule);
  if (wildcard) key = "*." + key;
  rules_[key].insert(ports.begin(), ports.end());
}

std::optional<std::string> HostMatcher::match(std::string_view host, uint16_t port) const {
  auto normal = normalizeHostName(host);
  if (!normal) return std::nullopt;
  auto allows = [&](const std::string& key) {
    auto it = rules_.find(key);
    return it != rules_.end() && it->second.contains(port);
  };
  if (allows(*normal)) return *normal;
  // Walk the parents from the longest: "a.b.c" tries "*.b.c", then "*.c".
  for (size_t dot = normal->find('.'); dot != std::string::npos; dot = normal->find('.', dot + 1)) {
    std::string key = "*" + normal->substr(dot);
    if (allows(key)) return key;
  }
  return std::nullopt;
}

}  // namespace sluice
