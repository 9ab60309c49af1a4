// What the kernel maps should hold for a rule set: a pure function, so it is tested
// without privileges; BpfDatapath::apply makes the maps say it, writing the difference.
#pragma once

#include <cstdint>
#include <set>
#include <utility>

#include "config.h"
#include "sluice_abi.h"

namespace sluice {

struct DatapathState {
  sl_config config{};
  std::set<uint16_t> redirectPorts;
  std::set<std::pair<uint32_t, uint32_t>> bypass4;  // (prefix length, address network order)
  std::set<std::pair<uint32_t, Ipv6Address>> bypass6;
};

// Configured bypass CIDRs plus what must never be redirected: loopback, the agent's own
// listener (else the redirect would loop) and the gateway (the agent's tunnel).
DatapathState desiredDatapath(const AgentConfig& agent, uint32_t rulesVersion);

}  // namespace sluice
