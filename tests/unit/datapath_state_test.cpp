#include "datapath_state.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(DesiredDatapath, RulesBecomeMapEntries) {
  AgentConfig agent;
  agent.listen = *parseIpv4Endpoint("198.18.0.1:15001");
  agent.gatewayAddress = *parseIpv4Endpoint("198.18.3.2:15443");
  agent.redirectPorts = {443, 8443};
  agent.bypass = {*parseIpv4Cidr("10.96.0.0/12"), *parseIpv4Cidr("127.0.0.0/8")};
  DatapathState s = desiredDatapath(agent, 42);
  EXPECT_EQ(s.config.enabled, 1);
  EXPECT_EQ(s.config.rules_version, 42u);
  EXPECT_EQ(s.config.redirect_ip4_be, *parseIpv4("198.18.0.1"));
  EXPECT_EQ(ntohs(s.config.redirect_port_be), 15001);
  EXPECT_EQ(s.redirectPorts, (std::set<uint16_t>{443, 8443}));
  std::set<std::string> cidrs;
  for (auto& [prefix, address] : s.bypass4) cidrs.insert(formatCidr(Ipv4Cidr{address, static_cast<uint8_t>(prefix)}));
  EXPECT_EQ(cidrs, (std::set<std::string>{"10.96.0.0/12", "127.0.0.0/8", "198.18.0.1/32", "198.18.3.2/32"}))
      << "configured, plus loopback (once), the agent and the gateway";
}

}  // namespace
}  // namespace sluice
