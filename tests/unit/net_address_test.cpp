#include "net_address.h"

#include <gtest/gtest.h>

#include "tunnel_protocol.h"

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

TEST(TunnelProtocol, PortRoundTripsThroughAlpn) {
  EXPECT_EQ(portAlpn(443), "sluice/port=443");
  EXPECT_EQ(parsePortAlpn("sluice/port=443"), 443);
  EXPECT_EQ(parsePortAlpn("sluice/port=65535"), 65535);
  for (const char* bad : {"h2", "sluice/port=", "sluice/port=0", "sluice/port=65536", "sluice/port=44x"}) {
    EXPECT_FALSE(parsePortAlpn(bad)) << bad;
  }
}

}  // namespace
}  // namespace sluice
