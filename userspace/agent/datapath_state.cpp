#include "datapath_state.h"

#include <arpa/inet.h>

namespace sluice {

DatapathState desiredDatapath(const AgentConfig& agent, uint32_t rulesVersion) {
  DatapathState state;
  state.config.redirect_ip4_be = agent.listen.addressBe;
  state.config.redirect_port_be = htons(agent.listen.port);
  state.config.enabled = 1;
  state.config.rules_version = rulesVersion;
  state.redirectPorts = agent.redirectPorts;
  auto cidrs = agent.bypass;
  cidrs.push_back(*parseIpv4Cidr("127.0.0.0/8"));
  cidrs.push_back(Ipv4Cidr{agent.listen.addressBe, 32});
  cidrs.push_back(Ipv4Cidr{agent.gatewayAddress.addressBe, 32});
  for (const auto& cidr : cidrs) state.bypass4.insert({cidr.prefixLength, cidr.addressBe});
  return state;
}

}  // namespace sluice
