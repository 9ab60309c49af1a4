#include "env_expand.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <regex>

#include "config.h"
#include "rules_fixture.h"

namespace sluice {
namespace {

EnvironmentLookup fixed(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ExpandVariables, ReplacesEveryReference) {
  auto env = fixed({{"NODE_IP", "198.18.0.7"}, {"PORT", "15001"}});
  EXPECT_EQ(expandVariables("${NODE_IP}:${PORT}", env), "198.18.0.7:15001");
  EXPECT_EQ(expandVariables("no reference", env), "no reference");
  EXPECT_EQ(expandVariables("cost $5, $$ and $${NODE_IP}", env), "cost $5, $$ and ${NODE_IP}");
}

TEST(ExpandVariables, RefusesWhatItCannotExpand) {
  auto env = fixed({{"NODE_IP", "198.18.0.7"}, {"BROKEN", "a\nb"}});
  for (const char* bad : {"${UNSET}", "${NODE_IP", "${}", "${1X}", "${NODE-IP}", "${BROKEN}"}) {
    EXPECT_THROW(expandVariables(bad, env), std::invalid_argument) << bad;
  }
  try {
    expandVariables("${UNSET}", env);
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "environment variable UNSET is not set (or is empty)");
  }
}

class EnvRulesTest : public RulesFixture {
 protected:
  std::string nodeRules() {
    std::string text = source("examples/seed-native.yaml");
    auto pos = text.find("listen: 198.18.0.1:15001");
    EXPECT_NE(pos, std::string::npos);
    text.replace(pos, std::string("listen: 198.18.0.1:15001").size(), "listen: ${SL_TEST_NODE_IP}:15001");
    return text;
  }
};

TEST_F(EnvRulesTest, NativeValuesTakeTheEnvironment) {
  ::setenv("SL_TEST_NODE_IP", "198.18.9.9", 1);
  Config c = loadConfigText(nodeRules(), dir_ / "rules.yaml");
  EXPECT_EQ(formatEndpoint(c.agent->listen), "198.18.9.9:15001");
  ::unsetenv("SL_TEST_NODE_IP");
}

TEST_F(EnvRulesTest, AnUnsetVariableNamesThePlace) {
  ::unsetenv("SL_TEST_NODE_IP");
  try {
    loadConfigText(nodeRules(), dir_ / "rules.yaml");
    FAIL() << "an unset variable was accepted";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(std::regex_search(
        e.what(), std::regex(R"(rules\.yaml:\d+:\d+: environment variable SL_TEST_NODE_IP is not set)")))
        << e.what();
  }
}

TEST_F(EnvRulesTest, IstioResourcesStayVerbatim) {
  ::setenv("SL_TEST_NODE_IP", "198.18.9.9", 1);
  const std::string entry =
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: x\nspec:\n"
      "  hosts: [\"${SL_TEST_NODE_IP}.example.com\"]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
      "  resolution: DNS\n";
  try {
    loadConfigText(entry, dir_ / "istio.yaml");
    FAIL() << "a host with '${' was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("${SL_TEST_NODE_IP}.example.com"), std::string::npos)
        << "the host is refused as written, unexpanded: " << e.what();
  }
  ::unsetenv("SL_TEST_NODE_IP");
}

}  // namespace
}  // namespace sluice
