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
  Ipv4Endpoint to;
  std::optional<std::string> sni;
};

struct Explanation {
  bool redirected = false;
  std::optional<bool> allowed;  // unknown without an SNI
  std::vector<std::string> lines;
};

// Precondition: config.agent is set.
Explanation explainConnection(const Config& config, const ConnectionQuery& query);

}  // namespace sluice
