#include "explain.h"

#include <gtest/gtest.h>

#include "rules_fixture.h"

namespace sluice {
namespace {

class ExplainTest : public RulesFixture {
 protected:
  void SetUp() override {
    RulesFixture::SetUp();
    config_ = loadConfigFile(write("rules.yaml", source("examples/seed-native.yaml")));
  }
  Explanation explain(bool enabled, const char* to, std::optional<std::string> sni) {
    return explainConnection(config_, ConnectionQuery{enabled, "/pod-a", *parseIpv4Endpoint(to), sni});
  }
  static std::string text(const Explanation& e) {
    std::string out;
    for (auto& l : e.lines) out += l + "\n";
    return out;
  }
  Config config_;
};

TEST_F(ExplainTest, FollowsTheKernelThenTheAgentThenTheGateway) {
  auto e = explain(false, "198.18.100.10:443", "www.googleapis.com");
  EXPECT_FALSE(e.redirected);
  EXPECT_NE(text(e).find("not enabled"), std::string::npos);

  e = explain(true, "198.18.100.10:8443", "www.googleapis.com");
  EXPECT_FALSE(e.redirected);
  EXPECT_NE(text(e).find("port 8443 is not in agent.redirectPorts"), std::string::npos) << text(e);

  e = explain(true, "198.18.2.7:443", "www.googleapis.com");
  EXPECT_FALSE(e.redirected);
  EXPECT_NE(text(e).find("198.18.2.0/24 from agent.bypassCidrs"), std::string::npos) << text(e);

  e = explain(true, "127.0.0.53:443", std::nullopt);
  EXPECT_NE(text(e).find("loopback"), std::string::npos) << text(e);

  e = explain(true, "198.18.100.10:443", std::nullopt);
  EXPECT_TRUE(e.redirected);
  EXPECT_FALSE(e.allowed.has_value());

  e = explain(true, "198.18.100.10:443", "WWW.googleapis.com");
  ASSERT_TRUE(e.allowed.has_value());
  EXPECT_TRUE(*e.allowed);
  EXPECT_NE(text(e).find("allow by rule 'www.googleapis.com'"), std::string::npos) << text(e);
  EXPECT_NE(text(e).find("connects to www.googleapis.com:443 (DNS) weight 100"), std::string::npos) << text(e);

  e = explain(true, "198.18.100.20:443", "blocked.example.net");
  ASSERT_TRUE(e.allowed.has_value());
  EXPECT_FALSE(*e.allowed);
  EXPECT_NE(text(e).find("reason=host-not-allowed"), std::string::npos) << text(e);

  config_.outboundPolicy = OutboundPolicy::AllowAny;
  e = explain(true, "198.18.100.20:443", "blocked.example.net");
  EXPECT_TRUE(*e.allowed);
  EXPECT_NE(text(e).find("ALLOW_ANY"), std::string::npos) << text(e);
}

TEST_F(ExplainTest, IPv6DestinationsFollowTheIPv6Hooks) {
  auto explain6 = [&](const char* to, std::optional<std::string> sni) {
    ConnectionQuery query{true, "/pod-a", {}, sni};
    EXPECT_TRUE(parseDestination(to, query)) << to;
    return explainConnection(config_, query);
  };
  auto e = explain6("[2001:db8:1::7]:443", "www.googleapis.com");
  EXPECT_FALSE(e.redirected);
  EXPECT_NE(text(e).find("2001:db8:1::/64 from agent.bypassCidrs"), std::string::npos) << text(e);
  e = explain6("[2001:db8:100::10]:443", "www.googleapis.com");
  EXPECT_TRUE(e.redirected);
  EXPECT_NE(text(e).find("to the agent at [2001:db8::1]:15001"), std::string::npos) << text(e);
  EXPECT_EQ(e.allowed, true);
  e = explain6("[2001:db8:100::10]:443", "blocked.example.net");
  EXPECT_EQ(e.allowed, false);
  // v4-mapped is the IPv4 address's decision.
  e = explain6("[::ffff:198.18.2.7]:443", "www.googleapis.com");
  EXPECT_FALSE(e.redirected);
  EXPECT_NE(text(e).find("IPv4-mapped"), std::string::npos) << text(e);
  ConnectionQuery bad;
  EXPECT_FALSE(parseDestination("2001:db8::1:443", bad));
  EXPECT_FALSE(parseDestination("[2001:db8::1]:0", bad));
  EXPECT_FALSE(parseDestination("[nope]:443", bad));
}

TEST_F(ExplainTest, WithoutAnIPv6ListenerIPv6IsRefused) {
  std::string rules = source("examples/seed-native.yaml");
  auto at = rules.find("  listen6:");
  rules.erase(at, rules.find('\n', at) - at + 1);
  Config config = loadConfigFile(write("no6.yaml", rules));
  ConnectionQuery query{true, "/pod-a", {}, std::string("www.googleapis.com")};
  ASSERT_TRUE(parseDestination("[2001:db8:100::10]:443", query));
  auto e = explainConnection(config, query);
  EXPECT_EQ(e.allowed, false);
  EXPECT_NE(text(e).find("no IPv6 listener"), std::string::npos) << text(e);
}

}  // namespace
}  // namespace sluice
