// A rules file cut short (a writer that crashed, a full disk, a reader that came too
// early) is not a policy: at every byte boundary of the seed's rules files, either the
// files do not load, or the reload decision both daemons use refuses them, or what each
// daemon would enforce is exactly what the whole file says.
#include <gtest/gtest.h>

#include <sstream>

#include "config.h"
#include "reload_admission.h"
#include "rules_fixture.h"

namespace sluice {
namespace {

class TruncatedRulesTest : public RulesFixture {};

// Everything a daemon enforces from its rules, in one comparable text: the hosts it
// allows, where the gateway sends them, and the settings that decide whether an allowed
// connection works (identities, addresses, ports, bypass ranges, cgroups).
std::string enforced(const Config& c, RulesDaemon daemon) {
  std::ostringstream out;
  for (const auto& h : allowedHosts(c, daemon)) out << "allow " << h << "\n";
  if (daemon == RulesDaemon::Agent && c.agent) {
    const AgentConfig& a = *c.agent;
    out << "listen " << formatEndpoint(a.listen) << " gateway " << formatEndpoint(a.gatewayAddress) << " "
        << a.gatewayIdentity << " " << a.gatewayService << " ech " << toString(a.echPolicy) << " quic " << a.blockQuic
        << " hello " << a.maxClientHelloBytes << " " << a.clientHelloTimeout.count() << "\n";
    for (auto p : a.redirectPorts) out << "port " << p << "\n";
    for (const auto& b : a.bypass) out << "bypass " << b.addressBe << "/" << int(b.prefixLength) << "\n";
    out << "bypass6 " << a.bypass6.size() << " listen6 " << a.listen6.has_value() << "\n";
    for (const auto& g : a.cgroups) out << "cgroup " << g << "\n";
    out << "tls " << a.tls.ca << a.tls.cert << a.tls.key << "\n";
  }
  if (daemon == RulesDaemon::Gateway && c.gateway) {
    const GatewayConfig& g = *c.gateway;
    out << "listen " << formatEndpoint(g.listen) << " dns " << formatEndpoint(g.dnsServer) << " name " << g.name
        << "\n";
    for (const auto& id : g.allowedClients) out << "client " << id << "\n";
    for (const auto& [k, v] : g.labels) out << "label " << k << "=" << v << "\n";
    out << "tls " << g.tls.ca << g.tls.cert << g.tls.key << "\n";
    for (const auto& [key, route] : c.gatewayRoutes) {
      for (const auto& d : route.destinations) out << "route " << key << " " << d.host << ":" << d.port << "\n";
    }
  }
  return out.str();
}

struct Outcome {
  int unloadable = 0, refused = 0, same = 0;
};

// Cuts `cutFile` (one of `files`, written with `texts`) at every `step` bytes and checks
// each cut with both daemons' reload decision, starting from the whole files' rules.
Outcome cutEverywhere(const std::vector<std::filesystem::path>& files, const std::vector<std::string>& texts,
                      size_t cutFile, size_t step, const std::function<void(size_t, const std::string&)>& write) {
  for (size_t i = 0; i < files.size(); ++i) write(i, texts[i]);
  const Config whole = loadConfigFiles(files);
  Outcome outcome;
  for (size_t cut = 0; cut < texts[cutFile].size(); cut += step) {
    write(cutFile, texts[cutFile].substr(0, cut));
    Config next;
    try {
      next = loadConfigFiles(files);
    } catch (const ConfigError&) {
      ++outcome.unloadable;
      continue;
    }
    for (RulesDaemon daemon : {RulesDaemon::Agent, RulesDaemon::Gateway}) {
      auto refusal = reloadRefusal(next, daemon, allowedHosts(whole, daemon).size(), false);
      if (refusal) {
        ++outcome.refused;
      } else {
        ++outcome.same;
        EXPECT_EQ(enforced(next, daemon), enforced(whole, daemon))
            << toString(daemon) << " would take a file cut at byte " << cut << ":\n"
            << texts[cutFile].substr(0, cut);
      }
    }
  }
  return outcome;
}

TEST_F(TruncatedRulesTest, NoCutOfTheNativeSeedChangesWhatIsEnforced) {
  const std::string native = source("examples/seed-native.yaml");
  std::vector<std::filesystem::path> files{dir_ / "rules.yaml"};
  for (size_t step : {20, 1}) {
    auto o = cutEverywhere(files, {native}, 0, step, [&](size_t, const std::string& t) { write("rules.yaml", t); });
    EXPECT_GT(o.unloadable, 0);
    if (step == 1) EXPECT_EQ(o.unloadable + (o.refused + o.same) / 2, static_cast<int>(native.size()));
  }
}

TEST_F(TruncatedRulesTest, NoCutOfTheIstioSeedOrItsNodeFileChangesWhatIsEnforced) {
  const std::string node = source("examples/istio/sluice-node.yaml");
  const std::string seed = source("examples/istio/seed-egress.yaml");
  std::vector<std::filesystem::path> files{dir_ / "sluice-node.yaml", dir_ / "seed-egress.yaml"};
  auto writeIt = [&](size_t i, const std::string& t) { write(files[i].filename(), t); };
  for (size_t step : {20, 1}) {
    Outcome seedCuts = cutEverywhere(files, {node, seed}, 1, step, writeIt);
    Outcome nodeCuts = cutEverywhere(files, {node, seed}, 0, step, writeIt);
    EXPECT_GT(seedCuts.unloadable, 0);
    EXPECT_GT(nodeCuts.unloadable, 0);
  }
}

// The cut the issue found: the seed's Istio file cut after its first resources loaded
// with no allowed host. Now refused, for the reason, by both daemons.
TEST_F(TruncatedRulesTest, AReloadToNoAllowedHostIsRefusedUnlessMeant) {
  auto node = write("sluice-node.yaml", source("examples/istio/sluice-node.yaml"));
  const std::string seed = source("examples/istio/seed-egress.yaml");
  auto rules = write("seed-egress.yaml", seed);
  const Config whole = loadConfigFiles({node, rules});
  write("seed-egress.yaml", seed.substr(0, seed.find("---\napiVersion: networking.istio.io/v1alpha3\nkind: Gateway")));
  const Config cut = loadConfigFiles({node, rules});
  EXPECT_TRUE(allowedHosts(cut, RulesDaemon::Agent).empty());
  for (RulesDaemon daemon : {RulesDaemon::Agent, RulesDaemon::Gateway}) {
    auto refusal = reloadRefusal(cut, daemon, allowedHosts(whole, daemon).size(), false);
    ASSERT_TRUE(refusal) << toString(daemon);
    EXPECT_NE(refusal->find("the new rules allow no host where the running rules allow 1"), std::string::npos)
        << *refusal;
    EXPECT_NE(refusal->find("--allow-empty-rules"), std::string::npos) << *refusal;
    EXPECT_FALSE(reloadRefusal(cut, daemon, allowedHosts(whole, daemon).size(), true)) << "the flag permits it";
    EXPECT_FALSE(reloadRefusal(cut, daemon, 0, false)) << "nothing was allowed before either";
  }
  // An explicit empty list in the files permits it too.
  write("sluice-node.yaml", source("examples/istio/sluice-node.yaml") + "hosts: []\n");
  const Config meant = loadConfigFiles({node, rules});
  EXPECT_TRUE(meant.emptyByIntent);
  EXPECT_FALSE(reloadRefusal(meant, RulesDaemon::Agent, 1, false));
  // A daemon's own section missing is refused whatever the hosts.
  const Config agentOnly = loadConfigText("hosts: [{name: a.example.com}]\n", dir_ / "x.yaml");
  EXPECT_EQ(reloadRefusal(agentOnly, RulesDaemon::Agent, 1, true),
            "no 'agent' section in the rules files: sluice-agent needs one");
}

TEST_F(TruncatedRulesTest, AFileEndingInsideALineIsRefusedAtItsEnd) {
  try {
    loadConfigText("hosts:\n  - name: www.googleapis.c", dir_ / "rules.yaml");
    ADD_FAILURE() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rules.yaml:2:27: the file ends inside a line (no final line break)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sluice
