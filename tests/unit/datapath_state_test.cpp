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
  DatapathState s = desiredDatapath(agent, 42, 0x1234);
  EXPECT_EQ(s.config.enabled, 1);
  EXPECT_EQ(s.config.rules_version, 42u);
  EXPECT_EQ(s.config.redirect_ip4_be, *parseIpv4("198.18.0.1"));
  EXPECT_EQ(ntohs(s.config.redirect_port_be), 15001);
  EXPECT_EQ(s.redirectPorts, (std::set<uint16_t>{443, 8443}));
  EXPECT_EQ(s.config.socket_mark, kDefaultSocketMark);
  EXPECT_EQ(s.config.node_netns_cookie, 0x1234u) << "the mark exempts only in the agent's namespace";
  std::set<std::string> cidrs;
  for (auto& [prefix, address] : s.bypass4) cidrs.insert(formatCidr(Ipv4Cidr{address, static_cast<uint8_t>(prefix)}));
  EXPECT_EQ(cidrs, (std::set<std::string>{"10.96.0.0/12", "127.0.0.0/8", "198.18.0.1/32", "198.18.3.2/32"}))
      << "configured, plus loopback (once), the agent and the gateway";
}

TEST(DesiredDatapath, DefaultMarkIsTheAbiDefaultAndAvoidsOthersBits) {
  EXPECT_EQ(kDefaultSocketMark, SL_DEFAULT_SOCKET_MARK);
  EXPECT_EQ(kDefaultSocketMark & kForeignMarkBits, 0u) << "kube-proxy, Cilium and Calico mark bits";
}

TEST(DesiredDatapath, MapCapacitiesAreCheckedBeforeTheKernelIsTouched) {
  AgentConfig agent;
  agent.listen = *parseIpv4Endpoint("198.18.0.1:15001");
  agent.gatewayAddress = *parseIpv4Endpoint("198.18.3.2:15443");
  agent.redirectPorts = {443};
  for (uint32_t i = 0; i < SL_MAX_BYPASS4 - 3; ++i) agent.bypass.push_back(Ipv4Cidr{htonl(0x0a000000 | i), 32});
  EXPECT_NO_THROW(checkFitsKernelMaps(desiredDatapath(agent, 1, 1))) << "exactly full: loopback, agent, gateway";
  agent.bypass.push_back(Ipv4Cidr{htonl(0x0b000000), 32});
  try {
    checkFitsKernelMaps(desiredDatapath(agent, 1, 1));
    FAIL() << "one IPv4 bypass CIDR too many was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("1025 IPv4 bypass CIDRs"), std::string::npos) << e.what();
  }
  agent.bypass.clear();
  for (uint16_t port = 1; port <= SL_MAX_PORTS + 1; ++port) agent.redirectPorts.insert(port);
  EXPECT_THROW(checkFitsKernelMaps(desiredDatapath(agent, 1, 1)), ConfigError);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(DesiredDatapath, ResolvedGatewayNamesAreBypassedLikeAddresses) {
  AgentConfig agent;
  agent.listen = *parseIpv4Endpoint("198.18.0.1:15001");
  agent.gateways = {GatewayTarget{"gateways.sluice-system.svc", 15443}, GatewayTarget{"198.18.3.2", 15443}};
  GatewayAddresses resolved;
  resolved.v4 = {*parseIpv4("198.18.3.7"), *parseIpv4("198.18.3.8")};
  resolved.v6 = {*parseIpv6("2001:db8:3::7")};
  DatapathState s = desiredDatapath(agent, 1, 0, resolved);
  std::set<std::string> cidrs;
  for (auto& [prefix, address] : s.bypass4) cidrs.insert(formatCidr(Ipv4Cidr{address, static_cast<uint8_t>(prefix)}));
  EXPECT_EQ(cidrs,
            (std::set<std::string>{"127.0.0.0/8", "198.18.0.1/32", "198.18.3.2/32", "198.18.3.7/32", "198.18.3.8/32"}));
  EXPECT_TRUE(s.bypass6.contains({128, *parseIpv6("2001:db8:3::7")}));
  // Without the resolved addresses (not known yet, or the name gone) they are not bypassed.
  DatapathState without = desiredDatapath(agent, 1, 0);
  EXPECT_FALSE(without.bypass4.contains({32, *parseIpv4("198.18.3.7")}));
  EXPECT_FALSE(without.bypass6.contains({128, *parseIpv6("2001:db8:3::7")}));
}

}  // namespace
}  // namespace sluice
