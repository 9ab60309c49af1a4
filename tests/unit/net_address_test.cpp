#include "net_address.h"

#include <gtest/gtest.h>

#include "config.h"

namespace sluice {
namespace {

TEST(NetAddress, EndpointsAndCidrs) {
  auto e = parseIpv4Endpoint("198.18.0.1:15001");
  ASSERT_TRUE(e);
  EXPECT_EQ(formatEndpoint(*e), "198.18.0.1:15001");
  EXPECT_EQ(e->addressBe, *parseIpv4("198.18.0.1"));
  for (const char* bad : {"198.18.0.1", "198.18.0.1:0", "198.18.0.1:65536", "x:1", "198.18.0.1:1a", ":443"}) {
    EXPECT_FALSE(parseIpv4Endpoint(bad)) << bad;
  }
  auto c = parseIpv4Cidr("10.0.0.0/8");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->prefixLength, 8);
  EXPECT_EQ(formatCidr(*c), "10.0.0.0/8");
  EXPECT_EQ(parseIpv4Cidr("198.18.0.1")->prefixLength, 32);
  EXPECT_FALSE(parseIpv4Cidr("10.0.0.1/8"));
  EXPECT_FALSE(parseIpv4Cidr("10.0.0.0/33"));
  EXPECT_TRUE(parseIpv4Cidr("0.0.0.0/0"));
}

TEST(GatewayTarget, AddressesAndNames) {
  auto v4 = parseGatewayTarget("198.18.3.2:15443");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "198.18.3.2");
  EXPECT_EQ(v4->port, 15443);
  auto v6 = parseGatewayTarget("[2001:db8::1]:15443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(formatGatewayTarget(*v6), "[2001:db8::1]:15443");
  auto name = parseGatewayTarget("sluice-gateway.sluice-system.svc.cluster.local:15443");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "sluice-gateway.sluice-system.svc.cluster.local");
  for (const char* bad : {"198.18.3.2", "198.18.3.2:0", "198.18.3.2:65536", "2001:db8::1:15443", "[2001:db8::1]",
                          "[nope]:1", "bad name:1", ":443", "host:44x"}) {
    EXPECT_FALSE(parseGatewayTarget(bad)) << bad;
  }
}

}  // namespace
}  // namespace sluice
