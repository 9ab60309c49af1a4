// Why a connection would be redirected or not, allowed or denied: the same decisions the
// BPF programs, the agent and the gateway make, as a pure function of the rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.h"

namespace sluice {

struct ConnectionQuery {
  bool cgroupEnabled = false;
  std::string enabledBy;  // the enabled cgroup (itself or an ancestor), for the text
  Ipv4Endpoint to;        // the destination (IPv4, or only the port when to6 is set)
  std::optional<std::string> sni;
  std::optional<Ipv6Address> to6;  // an IPv6 destination; v4-mapped is taken as IPv4
};

struct Explanation {
  bool redirected = false;
  std::optional<bool> allowed;  // unknown without an SNI
  std::vector<std::string> lines;
};

// Sets query.to (and to6) from "198.18.100.10:443" or "[2001:db8::10]:443"; false if
// the text is neither.
bool parseDestination(const std::string& text, ConnectionQuery& query);

// Precondition: config.agent is set.
Explanation explainConnection(const Config& config, const ConnectionQuery& query);

}  // namespace sluice
