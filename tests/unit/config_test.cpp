#include "config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "rules_fixture.h"
#include "shared_zones.h"

namespace sluice {
namespace {

class ConfigTest : public RulesFixture {
 protected:
  void SetUp() override {
    RulesFixture::SetUp();
    example_ = source("examples/seed-native.yaml");
    ASSERT_FALSE(example_.empty());
  }

  Config load(const std::string& text) { return loadConfigText(text, dir_ / "rules.yaml"); }
  std::string replaced(const std::string& from, const std::string& to) {
    auto pos = example_.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    std::string out = example_;
    out.replace(pos, from.size(), to);
    return out;
  }

  // The example with `lines` added to its last section, the gateway's.
  std::string gatewayWith(const std::string& lines) { return example_ + lines; }

  std::string example_;
};

TEST_F(ConfigTest, TheSeedExampleLoads) {
  Config c = load(example_);
  ASSERT_EQ(c.agentHosts.size(), 1u);
  EXPECT_EQ(c.agentHosts[0].name, "www.googleapis.com");
  EXPECT_EQ(c.agentHosts[0].ports, std::set<uint16_t>{443});
  EXPECT_EQ(c.gatewayHosts.size(), 1u);
  EXPECT_EQ(c.outboundPolicy, OutboundPolicy::RegistryOnly);
  ASSERT_TRUE(c.agent && c.gateway);
  EXPECT_EQ(formatEndpoint(c.agent->listen), "198.18.0.1:15001");
  EXPECT_EQ(c.agent->redirectPorts, std::set<uint16_t>{443});
  EXPECT_EQ(c.agent->bypass.size(), 3u);
  EXPECT_EQ(c.agent->cgroups, std::vector<std::string>{"sluice-sl/pod-a"});
  EXPECT_EQ(c.agent->tls.cert, dir_ / "pki/agent.pem") << "relative to the rules file";
  EXPECT_EQ(c.agent->gatewayIdentity, "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account");
  EXPECT_EQ(formatEndpoint(c.gateway->dnsServer), "198.18.100.53:53");
  EXPECT_TRUE(c.gateway->allowedClients.contains("spiffe://cluster.local/ns/sluice-system/sa/sluice-agent"));
  EXPECT_TRUE(c.agentMatcher().match("www.googleapis.com", 443));
  EXPECT_TRUE(c.gatewayMatcher().match("www.googleapis.com", 443));
}

TEST_F(ConfigTest, AddressGuardFieldsTakeBothFamiliesAndDefaultToNothingOpened) {
  Config c =
      load(gatewayWith("  denyCidrs: [10.96.0.0/12, 'fd00:10::/64']\n"
                       "  allowPrivateCidrs: [192.168.10.0/24, 'fd00:20::/64']\n"));
  ASSERT_TRUE(c.gateway);
  ASSERT_EQ(c.gateway->denyCidrs.v4.size(), 1u);
  EXPECT_EQ(formatCidr(c.gateway->denyCidrs.v4[0]), "10.96.0.0/12");
  ASSERT_EQ(c.gateway->denyCidrs.v6.size(), 1u);
  EXPECT_EQ(formatCidr(c.gateway->denyCidrs.v6[0]), "fd00:10::/64");
  ASSERT_EQ(c.gateway->allowPrivateCidrs.v4.size(), 1u);
  EXPECT_EQ(formatCidr(c.gateway->allowPrivateCidrs.v4[0]), "192.168.10.0/24");
  ASSERT_EQ(c.gateway->allowPrivateCidrs.v6.size(), 1u);
  EXPECT_EQ(formatCidr(c.gateway->allowPrivateCidrs.v6[0]), "fd00:20::/64");
  Config agent =
      load(replaced("  clientHelloTimeoutMs", "  allowPrivateCidrs: [10.20.0.0/16]\n  clientHelloTimeoutMs"));
  ASSERT_EQ(agent.agent->allowPrivateCidrs.v4.size(), 1u);
  EXPECT_EQ(formatCidr(agent.agent->allowPrivateCidrs.v4[0]), "10.20.0.0/16");

  Config defaults = load(example_);
  EXPECT_TRUE(defaults.gateway->denyCidrs.empty());
  EXPECT_TRUE(defaults.gateway->allowPrivateCidrs.empty()) << "private ranges are refused unless opted in";
  EXPECT_TRUE(defaults.agent->allowPrivateCidrs.empty());
}

TEST_F(ConfigTest, InvalidFilesNameThePlaceAndTheProblem) {
  struct Row {
    const char* name;
    std::string text;
    const char* expected;  // regex the message must contain
  };
  std::vector<Row> rows = {
      {"bad yaml", "hosts: [a\n", "rules.yaml:2:1: .*"},
      {"empty", "", "the file is empty"},
      {"unknown top-level field", example_ + "extra: 1\n", ":[0-9]+:1: unknown field 'extra' in 'the top level'"},
      {"unknown host field", replaced("    ports: [443]\n", "    ports: [443]\n    weight: 3\n"),
       ":9:5: unknown field 'weight' in 'hosts\\[\\]'"},
      {"port out of range", replaced("ports: [443]", "ports: [70000]"),
       ":8:13: 'hosts\\[\\].ports' is 70000, outside 1..65535"},
      {"port not a number", replaced("ports: [443]", "ports: [https]"), "must be a whole number, got 'https'"},
      {"broad wildcard", replaced("- name: www.googleapis.com", "- name: '*.com'"), "too broad"},
      {"inner wildcard", replaced("- name: www.googleapis.com", "- name: 'a*.example.com'"),
       "wildcard is allowed only as a whole first label"},
      {"duplicate host", replaced("hosts:\n", "hosts:\n  - name: WWW.googleapis.com\n"), "listed twice"},
      {"missing certificate", replaced("cert: pki/agent.pem", "cert: pki/missing.pem"),
       "'agent.tls.cert' names '.*missing.pem', which cannot be read"},
      {"bad listen", replaced("listen: 198.18.0.1:15001", "listen: node:15001"), "must be IPv4-address:port"},
      {"cidr with host bits", replaced("- 198.18.1.0/24", "- 198.18.1.7/24"), "zero host bits"},
      // The address guard's fields (the gateway section ends the example).
      {"deny not a list", gatewayWith("  denyCidrs: 10.0.0.0/8\n"), ":42:14: 'gateway.denyCidrs' must be a list"},
      {"deny host bits", gatewayWith("  denyCidrs: [10.0.0.1/8]\n"),
       ":42:15: '10.0.0.1/8' is not an IPv4 CIDR with zero host bits"},
      {"deny bad v6", gatewayWith("  denyCidrs: ['fd00::1/8']\n"),
       ":42:15: 'fd00::1/8' is not an IPv6 CIDR with zero host bits"},
      {"deny not a string", gatewayWith("  denyCidrs: [{a: 1}]\n"), ":42:15: 'gateway.denyCidrs' must be a string"},
      {"opt in loopback", gatewayWith("  allowPrivateCidrs: [127.0.0.0/8]\n"),
       ":42:23: '127.0.0.0/8' in 'gateway.allowPrivateCidrs' is not inside a private range \\(10.0.0.0/8, "
       "172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7, fec0::/10, 64:ff9b:1::/48\\)"},
      {"opt in metadata", gatewayWith("  allowPrivateCidrs: [169.254.169.254/32]\n"), "is not inside a private range"},
      {"opt in everything", gatewayWith("  allowPrivateCidrs: [0.0.0.0/0]\n"), "is not inside a private range"},
      {"opt in wider than 10/8", gatewayWith("  allowPrivateCidrs: [10.0.0.0/7]\n"), "is not inside a private range"},
      {"opt in public", gatewayWith("  allowPrivateCidrs: [198.18.0.0/15]\n"), "is not inside a private range"},
      {"opt in v6 link-local", gatewayWith("  allowPrivateCidrs: ['fe80::/10']\n"), "is not inside a private range"},
      {"opt in not a list", gatewayWith("  allowPrivateCidrs: yes\n"), "'gateway.allowPrivateCidrs' must be a list"},
      {"agent opts in loopback",
       replaced("  clientHelloTimeoutMs", "  allowPrivateCidrs: ['::1/128']\n  clientHelloTimeoutMs"),
       ":23:23: '::1/128' in 'agent.allowPrivateCidrs' is not inside a private range"},
      {"misspelt guard field", gatewayWith("  denyCidr: [10.0.0.0/8]\n"),
       ":42:3: unknown field 'denyCidr' in 'gateway'"},
      {"identity not spiffe", replaced("identity: spiffe://cluster.local/ns/istio-system", "identity: https://x"),
       "must be a SPIFFE ID"},
      {"no clients",
       replaced("  allowedClients:\n    - spiffe://cluster.local/ns/sluice-system/sa/sluice-agent\n",
                "  allowedClients: []\n"),
       "at least one SPIFFE ID"},
      {"second agent section", example_ + "---\nagent: {}\n", "a second 'agent' section"},
      {"bad echPolicy",
       replaced("  clientHelloTimeoutMs: 5000\n", "  clientHelloTimeoutMs: 5000\n  echPolicy: sometimes\n"),
       ":[0-9]+:14: 'agent.echPolicy' must be allow or deny, got 'sometimes'"},
      {"dns floor above the cap", gatewayWith("  dnsCacheMs: 2000\n  dnsMinCacheMs: 3000\n"),
       ":43:18: 'gateway.dnsMinCacheMs' \\(3000\\) must not exceed 'gateway.dnsCacheMs' \\(2000\\)"},
      {"dns floor above the default cap", gatewayWith("  dnsMinCacheMs: 6000\n"),
       "'gateway.dnsMinCacheMs' \\(6000\\) must not exceed 'gateway.dnsCacheMs' \\(5000\\)"},
      {"cut short", example_.substr(0, example_.size() - 20), ":[0-9]+:[0-9]+: the file ends inside a line"},
  };
  for (const auto& row : rows) {
    try {
      load(row.text);
      ADD_FAILURE() << row.name << ": loaded";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(std::regex_search(e.what(), std::regex(row.expected))) << row.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("rules.yaml"), std::string::npos) << row.name << ": " << e.what();
    }
  }
}

TEST_F(ConfigTest, SocketMarks) {
  Config c = load(example_);
  EXPECT_EQ(c.agent->socketMark, kDefaultSocketMark);
  EXPECT_EQ(c.gateway->socketMark, kDefaultSocketMark);

  c = load(replaced("  redirectPorts: [443]", "  redirectPorts: [443]\n  socketMark: 0x2051"));
  EXPECT_EQ(c.agent->socketMark, 0x2051u);
  EXPECT_TRUE(c.warnings.empty());

  c = load(replaced("  redirectPorts: [443]", "  redirectPorts: [443]\n  socketMark: 0x4001"));
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("agent.socketMark' uses mark bits that kube-proxy"), std::string::npos) << c.warnings[0];

  try {
    load(replaced("  dns: 198.18.100.53:53", "  dns: 198.18.100.53:53\n  socketMark: 0"));
    FAIL() << "mark 0 accepted";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex(R"(rules\.yaml:\d+:\d+: 'gateway\.socketMark' is 0, outside)")))
        << e.what();
  }
}

TEST_F(ConfigTest, EchPolicyIsDenyUnlessAllowed) {
  EXPECT_EQ(load(example_).agent->echPolicy, EchPolicy::Deny);
  auto allow = replaced("  clientHelloTimeoutMs: 5000\n", "  clientHelloTimeoutMs: 5000\n  echPolicy: allow\n");
  EXPECT_EQ(load(allow).agent->echPolicy, EchPolicy::Allow);
}

TEST_F(ConfigTest, AnExplicitEmptyHostListIsMeant) {
  EXPECT_FALSE(load(example_).emptyByIntent);
  Config c = load(replaced("hosts:\n  - name: www.googleapis.com\n    ports: [443]\n", "hosts: []\n"));
  EXPECT_TRUE(c.emptyByIntent);
  EXPECT_TRUE(c.agentHosts.empty());
}

TEST_F(ConfigTest, BroadWildcardsWarnOfSharedZones) {
  auto warningsFor = [&](const std::string& host) {
    return load(replaced("- name: www.googleapis.com", "- name: '" + host + "'")).warnings;
  };
  auto mentions = [](const std::vector<std::string>& warnings, const std::string& what) {
    return std::any_of(warnings.begin(), warnings.end(),
                       [&](const std::string& w) { return w.find(what) != std::string::npos; });
  };
  EXPECT_TRUE(mentions(warningsFor("*.cloudfront.net"), "rules.yaml:7:11: '*.cloudfront.net' covers cloudfront.net"));
  EXPECT_TRUE(mentions(warningsFor("*.cloudfront.net"), "domain fronting"));
  EXPECT_TRUE(mentions(warningsFor("*.amazonaws.com"), "covers amazonaws.com"));
  EXPECT_TRUE(mentions(warningsFor("*.s3.amazonaws.com"), "covers s3.amazonaws.com"));
  EXPECT_TRUE(mentions(warningsFor("*.github.io"), "where anyone can get a name"));
  EXPECT_TRUE(mentions(warningsFor("*.herokuapp.com"), "covers herokuapp.com"));
  EXPECT_TRUE(mentions(warningsFor("*.co.uk"), "covers a public suffix (co.uk)"));
  EXPECT_TRUE(mentions(warningsFor("*.com.au"), "covers a public suffix (com.au)"));
  EXPECT_FALSE(mentions(warningsFor("*.example.co.uk"), "covers"));
  EXPECT_FALSE(mentions(warningsFor("*.mycorp.github.io"), "covers"));
  EXPECT_FALSE(mentions(warningsFor("*.example.com"), "covers"));
  EXPECT_FALSE(mentions(warningsFor("www.googleapis.com"), "covers"));
}

TEST(PublicSuffixList, ExactWildcardAndExceptionRules) {
  const std::string list =
      "// ===BEGIN ICANN DOMAINS===\nuk\nco.uk\n*.ck\n!www.ck\n// ===BEGIN PRIVATE DOMAINS===\n"
      "myshopify.com\nblogspot.com  // trailing comment\n";
  EXPECT_TRUE(listedPublicSuffix("co.uk", list));
  EXPECT_TRUE(listedPublicSuffix("myshopify.com", list));
  EXPECT_TRUE(listedPublicSuffix("blogspot.com", list));
  EXPECT_TRUE(listedPublicSuffix("anything.ck", list));
  EXPECT_FALSE(listedPublicSuffix("www.ck", list)) << "an exception";
  EXPECT_FALSE(listedPublicSuffix("example.co.uk", list));
  EXPECT_FALSE(listedPublicSuffix("googleapis.com", list));
}

}  // namespace
}  // namespace sluice
