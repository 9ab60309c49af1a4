#include "datapath_state.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

namespace sluice {

DatapathState desiredDatapath(const AgentConfig& agent, uint32_t rulesVersion, uint64_t nodeNetnsCookie,
                              const GatewayAddresses& resolved) {
  DatapathState state;
  state.config.redirect_ip4_be = agent.listen.addressBe;
  state.config.redirect_port_be = htons(agent.listen.port);
  state.config.enabled = 1;
  state.config.rules_version = rulesVersion;
  state.config.block_quic = agent.blockQuic ? 1 : 0;
  state.config.socket_mark = agent.socketMark;
  state.config.node_netns_cookie = nodeNetnsCookie;
  if (agent.listen6) std::copy(agent.listen6->begin(), agent.listen6->end(), state.config.redirect_ip6);
  state.redirectPorts = agent.redirectPorts;
  auto cidrs = agent.bypass;
  cidrs.push_back(*parseIpv4Cidr("127.0.0.0/8"));
  cidrs.push_back(Ipv4Cidr{agent.listen.addressBe, 32});
  // Every gateway written as an address, and what the names resolved to (the agent's
  // socket mark keeps its tunnels out of the redirect all the same).
  for (const auto& gateway : agent.gateways) {
    if (auto v4 = parseIpv4(gateway.host)) cidrs.push_back(Ipv4Cidr{*v4, 32});
  }
  for (uint32_t v4 : resolved.v4) cidrs.push_back(Ipv4Cidr{v4, 32});
  if (agent.gatewayAddress.addressBe) cidrs.push_back(Ipv4Cidr{agent.gatewayAddress.addressBe, 32});
  for (const auto& cidr : cidrs) state.bypass4.insert({cidr.prefixLength, cidr.addressBe});
  auto cidrs6 = agent.bypass6;
  cidrs6.push_back(*parseIpv6Cidr("::1/128"));
  if (agent.listen6) cidrs6.push_back(Ipv6Cidr{*agent.listen6, 128});
  for (const auto& gateway : agent.gateways) {
    if (auto v6 = parseIpv6(gateway.host)) cidrs6.push_back(Ipv6Cidr{*v6, 128});
  }
  for (const auto& v6 : resolved.v6) cidrs6.push_back(Ipv6Cidr{v6, 128});
  for (const auto& cidr : cidrs6) state.bypass6.insert({cidr.prefixLength, cidr.address});
  return state;
}

void checkFitsKernelMaps(const DatapathState& state) {
  auto check = [](size_t have, size_t capacity, const char* what) {
    if (have > capacity) {
      throw ConfigError(std::string("the rules need ") + std::to_string(have) + " " + what + " in the kernel, " +
                        "which holds at most " + std::to_string(capacity) + " (loopback, the agent and the " +
                        "gateway count too)");
    }
  };
  check(state.redirectPorts.size(), SL_MAX_PORTS, "redirected ports (agent.redirectPorts)");
  check(state.bypass4.size(), SL_MAX_BYPASS4, "IPv4 bypass CIDRs (agent.bypassCidrs)");
  check(state.bypass6.size(), SL_MAX_BYPASS6, "IPv6 bypass CIDRs (agent.bypassCidrs)");
  check(state.exempt.size(), SL_MAX_EXEMPT_CGROUPS, "exempt cgroups (agent.exemptCgroups)");
}

}  // namespace sluice
