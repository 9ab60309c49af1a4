#include <gtest/gtest.h>

#include <regex>

#include "config.h"
#include "rules_fixture.h"

namespace sluice {
namespace {

class IstioRulesTest : public RulesFixture {
 protected:
  Config loadWithNode(const std::string& istio) {
    auto node = write("sluice-node.yaml", source("examples/istio/sluice-node.yaml"));
    auto rules = write("istio.yaml", istio);
    return loadConfigFiles({node, rules});
  }
  std::string seed() { return source("examples/istio/seed-egress.yaml"); }
  std::string seedWith(const std::string& from, const std::string& to) {
    std::string text = seed();
    auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return text.replace(pos, from.size(), to);
  }
};

TEST_F(IstioRulesTest, TheSeedMeansWhatTheIstioTaskMeans) {
  Config c = loadWithNode(seed());
  ASSERT_EQ(c.agentHosts.size(), 1u);
  EXPECT_EQ(c.agentHosts[0].name, "www.googleapis.com");
  EXPECT_EQ(c.agentHosts[0].ports, std::set<uint16_t>{443});
  ASSERT_EQ(c.gatewayHosts.size(), 1u);
  EXPECT_EQ(c.gatewayHosts[0].name, "www.googleapis.com");
  auto route = c.routeFor("www.googleapis.com", "www.googleapis.com", 443);
  ASSERT_EQ(route.destinations.size(), 1u);
  EXPECT_EQ(route.destinations[0].host, "www.googleapis.com");
  EXPECT_EQ(route.destinations[0].port, 443);
  EXPECT_EQ(route.destinations[0].weight, 100u);
  EXPECT_TRUE(route.destinations[0].addressesBe.empty()) << "resolution DNS";
  EXPECT_FALSE(c.agentMatcher().match("blocked.example.net", 443));
  // Nothing silently ignored: the Gateway's certificate paths are named, with lines.
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_NE(c.warnings[0].find("istio.yaml:30:26: 'serverCertificate' has no effect"), std::string::npos)
      << c.warnings[0];
}

TEST_F(IstioRulesTest, TheCommittedSeedIsTheTaskTextByteForByte) {
  const std::filesystem::path doc = std::string(SLUICE_SOURCE_DIR) + "/../shared/seed/egress-control-with-istio.md";
  if (!std::filesystem::exists(doc)) GTEST_SKIP() << doc << " is not beside this checkout";
  std::ifstream in(doc);
  std::string text(std::istreambuf_iterator<char>(in), {});
  const std::string open = "kubectl apply -f - <<EOF\n";
  auto start = text.find(open) + open.size();
  auto end = text.find("    EOF\n", start);
  // The task's YAML sits in a list item, indented by four spaces; as a user copies it:
  std::string block = text.substr(start, end - start), dedented;
  size_t pos = 0;
  while (pos < block.size()) {
    auto eol = block.find('\n', pos);
    std::string line = block.substr(pos, eol - pos);
    dedented += (line.rfind("    ", 0) == 0 ? line.substr(4) : line) + "\n";
    pos = eol + 1;
  }
  EXPECT_EQ(seed(), dedented);
}

TEST_F(IstioRulesTest, WildcardsStaticEndpointsAndWeights) {
  Config c = loadWithNode(R"(apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: apis}
spec:
  hosts: ["*.googleapis.com", mirror.example.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 198.18.100.10}, {address: 198.18.100.11}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.googleapis.com"]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-gateway}
spec:
  hosts: ["*.googleapis.com"]
  gateways: [mesh, istio-system/istio-egressgateway]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: ["*.googleapis.com"]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
  tcp:
  - match: [{gateways: [istio-egressgateway], port: 443}]
    route:
    - {destination: {host: mirror.example.org, port: {number: 443}}, weight: 80}
    - {destination: {host: mirror.example.org, port: {number: 443}}, weight: 20}
)");
  EXPECT_EQ(c.agentMatcher().match("storage.googleapis.com", 443), "*.googleapis.com");
  EXPECT_FALSE(c.agentMatcher().match("googleapis.com", 443));
  EXPECT_EQ(c.gatewayMatcher().match("storage.googleapis.com", 443), "*.googleapis.com");
  auto route = c.routeFor("*.googleapis.com", "storage.googleapis.com", 443);
  ASSERT_EQ(route.destinations.size(), 2u);
  EXPECT_EQ(route.destinations[0].weight, 80u);
  EXPECT_EQ(route.destinations[0].host, "mirror.example.org");
  EXPECT_EQ(route.destinations[0].addressesBe.size(), 2u) << "STATIC endpoints of the destination's entry";
  EXPECT_FALSE(c.agentMatcher().match("mirror.example.org", 443)) << "registered but not routed from mesh";
  bool warned = false;
  for (auto& w : c.warnings)
    warned |= w.find("'mirror.example.org' is registered but no VirtualService") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(IstioRulesTest, InvalidResourcesNameThePlaceAndTheProblem) {
  struct Row {
    const char* name;
    std::string text;
    const char* expected;  // regex
  };
  std::vector<Row> rows = {
      {"unknown kind", seedWith("kind: Gateway", "kind: Sidecar"), "istio.yaml:15:7: kind 'Sidecar' is not supported"},
      {"unknown apiVersion",
       seedWith("apiVersion: networking.istio.io/v1alpha3\nkind: Gateway",
                "apiVersion: networking.istio.io/v2\nkind: Gateway"),
       "istio.yaml:14:13: apiVersion 'networking.istio.io/v2'"},
      {"unknown spec field", seedWith("  resolution: DNS", "  resolution: DNS\n  colour: blue"),
       "istio.yaml:13:3: unknown field 'colour' in 'ServiceEntry.spec'"},
      {"http route", seedWith("  tcp:\n", "  http:\n  - route: []\n  tcp:\n"), "http routes are not supported"},
      {"resolution NONE", seedWith("resolution: DNS", "resolution: NONE"),
       "istio.yaml:12:15: resolution NONE is not supported"},
      {"protocol HTTP", seedWith("    protocol: TLS\n  resolution", "    protocol: HTTP\n  resolution"),
       "protocol 'HTTP' is not supported"},
      {"passthrough gateway", seedWith("mode: MUTUAL", "mode: PASSTHROUGH"),
       "tls mode 'PASSTHROUGH': sluice-gateway always terminates"},
      {"DR sni elsewhere", seedWith("sni: www.googleapis.com", "sni: other.example.com"),
       ":46:14: sni 'other.example.com' is not a host that a VirtualService routes"},
      {"mesh route elsewhere",
       seedWith("    - destination:\n        host: istio-egressgateway.istio-system.svc.cluster.local",
                "    - destination:\n        host: www.googleapis.com"),
       "mesh traffic routed to 'www.googleapis.com': sluice sends external traffic only through the egress gateway"},
      {"host without ServiceEntry", seedWith("  - www.googleapis.com\n  ports:", "  - other.googleapis.com\n  ports:"),
       "has no ServiceEntry"},
      {"bad wildcard", seedWith("      - www.googleapis.com\n    route", "      - 'w*.googleapis.com'\n    route"),
       "wildcard is allowed only as a whole first label"},
      {"DR tls DISABLE", seedWith("mode: ISTIO_MUTUAL", "mode: DISABLE"), "always mutual TLS"},
  };
  for (const auto& row : rows) {
    try {
      loadWithNode(row.text);
      ADD_FAILURE() << row.name << ": loaded";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(std::regex_search(e.what(), std::regex(row.expected))) << row.name << ": " << e.what();
    }
  }
}

TEST_F(IstioRulesTest, OutboundPolicyComesFromTheNativeSection) {
  auto node = source("examples/istio/sluice-node.yaml");
  node.replace(node.find("REGISTRY_ONLY"), 13, "ALLOW_ANY");
  auto nodePath = write("sluice-node.yaml", node);
  auto rules = write("istio.yaml", seed());
  EXPECT_EQ(loadConfigFiles({nodePath, rules}).outboundPolicy, OutboundPolicy::AllowAny);
  node.replace(node.find("ALLOW_ANY"), 9, "SOMETIMES");
  write("sluice-node.yaml", node);
  EXPECT_THROW(loadConfigFiles({nodePath, rules}), ConfigError);
}

}  // namespace
}  // namespace sluice
