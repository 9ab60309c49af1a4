// Strict reading of one YAML file: every key must be known, and every error or warning
// names file:line:column.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "config.h"

namespace sluice {

class YamlReader {
 public:
  YamlReader(std::filesystem::path source, std::vector<std::string>* warnings)
      : source_(std::move(source)), warnings_(warnings) {}

  const std::filesystem::path& source() const { return source_; }
  std::string where(const YAML::Node& at) const;
  [[noreturn]] void fail(const YAML::Node& at, const std::string& what) const;
  void warn(const YAML::Node& at, const std::string& what) const;

  // Every key of `node` must be in `known`; keys in `noEffect` are accepted with a
  // warning that they change nothing in sluice.
  void requireMap(const YAML::Node& node, const std::string& name, const std::set<std::string>& known,
                  const std::set<std::string>& noEffect = {}) const;
  YAML::Node required(const YAML::Node& map, const std::string& key, const std::string& name) const;
  // The node, checked to be a list (a missing node is an empty list).
  const YAML::Node& sequence(const YAML::Node& node, const std::string& name) const;
  std::string string(const YAML::Node& node, const std::string& name) const;
  uint64_t number(const YAML::Node& node, const std::string& name, uint64_t min, uint64_t max) const;
  uint16_t port(const YAML::Node& node, const std::string& name) const;
  std::set<uint16_t> ports(const YAML::Node& node, const std::string& name) const;
  std::vector<std::string> strings(const YAML::Node& node, const std::string& name) const;
  // A list of IPv4 and IPv6 CIDRs with zero host bits.
  CidrSet cidrs(const YAML::Node& node, const std::string& name) const;
  // A list of CIDRs, each inside a private range (address_guard.h).
  CidrSet privateCidrs(const YAML::Node& node, const std::string& name) const;
  Ipv4Endpoint endpoint(const YAML::Node& node, const std::string& name) const;
  std::chrono::milliseconds millis(const YAML::Node& map, const std::string& key,
                                   std::chrono::milliseconds fallback) const;
  std::filesystem::path file(const YAML::Node& node, const std::string& name) const;
  TlsFiles tls(const YAML::Node& node, const std::string& name) const;
  std::string identity(const YAML::Node& node, const std::string& name) const;
  // A host rule (exact or "*.domain"), normalised; fails with the reason.
  std::string hostRule(const YAML::Node& node, const std::string& name) const;

 private:
  std::filesystem::path source_;
  std::vector<std::string>* warnings_;
};

}  // namespace sluice
