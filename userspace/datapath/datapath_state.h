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
  std::set<uint64_t> exempt;  // cgroup ids (agent.exemptCgroups, resolved by the agent)
};

// The addresses the agent's gateway names (agent.gateway.addresses given as names)
// resolve to now: bypassed like gateways written as addresses.
struct GatewayAddresses {
  std::set<uint32_t> v4;  // network order
  std::set<Ipv6Address> v6;
  bool operator==(const GatewayAddresses&) const = default;
};

// Configured bypass CIDRs plus what must never be redirected: loopback, the agent's own
// listener (else the redirect would loop) and the gateways (the agent's tunnels): those
// written as addresses and `resolved`, what those given as names resolve to.
// nodeNetnsCookie: the agent's network namespace, the only one where its socket mark
// exempts a socket (0: the mark exempts nothing).
DatapathState desiredDatapath(const AgentConfig& agent, uint32_t rulesVersion, uint64_t nodeNetnsCookie,
                              const GatewayAddresses& resolved = {});

// Throws ConfigError if the state does not fit the kernel maps (SL_MAX_PORTS,
// SL_MAX_BYPASS4, SL_MAX_BYPASS6, SL_MAX_EXEMPT_CGROUPS), so a reload is refused before any map is touched.
void checkFitsKernelMaps(const DatapathState& state);

}  // namespace sluice
