// Allowlist of external host names: exact names and "*.domain" wildcards, each with the
// destination ports it may be reached on. Deny by default.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice {

// Lower-cases and drops one trailing dot; nullopt for a name that is not a valid DNS
// host name (empty, a label over 63 or a name over 253 characters, characters outside
// [a-z0-9-], a label starting or ending with '-') or that is an IP literal.
std::optional<std::string> normalizeHostName(std::string_view name);

// Validates a rule: an exact host name or "*." followed by a name of at least two labels.
// Returns an explanation when the rule is refused.
std::optional<std::string> hostRuleError(std::string_view rule);

class HostMatcher {
 public:
  // Precondition: hostRuleError(rule) is empty. The rule is normalised.
  void add(std::string_view rule, const std::set<uint16_t>& ports);

  // The rule that allows `host` on `port`, if any. An exact rule beats a wildcard, and a
  // longer wildcard beats a shorter one. Cost depends on the name's labels, not on the
  // number of rules.
  std::optional<std::string> match(std::string_view host, uint16_t port) const;

  size_t size() const { return rules_.size(); }

 private:
  std::unordered_map<std::string, std::set<uint16_t>> rules_;  // "a.b" or "*.b"
};

}  // namespace sluice
