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

}  // namespace
}  // namespace sluice
