#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
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
  // A wildcard over a zone where anyone can get a name is named as the risk it is.
  EXPECT_TRUE(std::any_of(c.warnings.begin(), c.warnings.end(), [](const std::string& w) {
    return w.find("istio.yaml:5:11: '*.googleapis.com' covers storage.googleapis.com, where anyone can get a name") !=
           std::string::npos;
  }));
}

struct ErrorRow {
  const char* name;
  std::string text;
  const char* expected;  // regex
};

void expectRefused(const std::vector<ErrorRow>& rows, const std::function<void(const std::string&)>& load) {
  for (const auto& row : rows) {
    try {
      load(row.text);
      ADD_FAILURE() << row.name << ": loaded";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(std::regex_search(e.what(), std::regex(row.expected))) << row.name << ": " << e.what();
    }
  }
}

// sluice cannot select source pods yet: a field that narrows who or where is an error
// at its place, never a warning that silently grants the route to every enrolled pod.
TEST_F(IstioRulesTest, InvalidResourcesNameThePlaceAndTheProblem) {
  std::vector<ErrorRow> rows = {
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
  expectRefused(rows, [&](const std::string& text) { loadWithNode(text); });
}

TEST_F(IstioRulesTest, FieldsThatNarrowWhoOrWhereAreRefusedNotWidened) {
  const std::string tlsMatch = "      port: 443\n      sni_hosts:";
  const std::string tcpMatch = "      - istio-egressgateway\n      port: 443";
  const std::string widened = "; sluice cannot enforce it and will not widen it to every enrolled pod";
  auto inTls = [&](const std::string& field) {
    return seedWith(tlsMatch, "      port: 443\n      " + field + "\n      sni_hosts:");
  };
  auto inTcp = [&](const std::string& field) {
    return seedWith(tcpMatch, "      - istio-egressgateway\n      " + field + "\n      port: 443");
  };
  const std::string drHost = "  host: istio-egressgateway.istio-system.svc.cluster.local\n";
  std::vector<ErrorRow> rows = {
      {"tls sourceLabels", inTls("sourceLabels: {app: payments}"),
       "istio.yaml:63:7: 'VirtualService.spec.tls\\[\\].match\\[\\].sourceLabels' narrows the route to some "
       "workloads"},
      {"tls sourceNamespace", inTls("sourceNamespace: payments"),
       "istio.yaml:63:7: 'VirtualService.spec.tls\\[\\].match\\[\\].sourceNamespace' narrows the route to one "
       "namespace's workloads"},
      {"tls destinationSubnets", inTls("destinationSubnets: [198.18.100.0/24]"),
       "istio.yaml:63:7: .*destinationSubnets' narrows the route to some destination addresses"},
      {"tcp sourceLabels", inTcp("sourceLabels: {app: payments}"),
       "istio.yaml:74:7: 'VirtualService.spec.tcp\\[\\].match\\[\\].sourceLabels' narrows"},
      {"tcp sourceSubnet", inTcp("sourceSubnet: 198.18.1.0/24"), "istio.yaml:74:7: .*sourceSubnet' narrows"},
      {"tcp destinationSubnets", inTcp("destinationSubnets: [198.18.100.0/24]"),
       "istio.yaml:74:7: .*destinationSubnets' narrows"},
      {"VirtualService exportTo",
       seedWith("  gateways:\n  - mesh\n", "  exportTo: [payments]\n  gateways:\n  - mesh\n"),
       "istio.yaml:55:3: 'VirtualService.spec.exportTo' narrows the resource to some namespaces"},
      {"ServiceEntry exportTo", seedWith("  resolution: DNS", "  resolution: DNS\n  exportTo: [\".\", payments]"),
       "istio.yaml:13:3: 'ServiceEntry.spec.exportTo' narrows the resource to some namespaces"},
      {"ServiceEntry addresses", seedWith("  resolution: DNS", "  resolution: DNS\n  addresses: [198.18.100.10]"),
       "istio.yaml:13:3: 'ServiceEntry.spec.addresses' narrows the service to some destination addresses"},
      {"ServiceEntry workloadSelector",
       seedWith("  resolution: DNS", "  resolution: DNS\n  workloadSelector: {labels: {app: x}}"),
       "istio.yaml:13:3: 'ServiceEntry.spec.workloadSelector' narrows the resource to some workloads"},
      {"DestinationRule workloadSelector",
       seedWith(drHost, drHost + "  workloadSelector: {matchLabels: {app: payments}}\n"),
       "istio.yaml:40:3: 'DestinationRule.spec.workloadSelector' narrows the resource to some workloads"},
      {"DestinationRule exportTo", seedWith(drHost, drHost + "  exportTo: [payments]\n"),
       "istio.yaml:40:3: 'DestinationRule.spec.exportTo' narrows"},
      {"Gateway client SANs",
       seedWith("      mode: MUTUAL\n", "      mode: MUTUAL\n      subjectAltNames: [spiffe://x/y]\n"),
       "istio.yaml:30:7: 'Gateway.spec.servers\\[\\].tls.subjectAltNames' narrows the gateway to some clients"},
      {"DestinationRule gateway SANs without ours",
       seedWith("        mode: ISTIO_MUTUAL\n",
                "        mode: ISTIO_MUTUAL\n        subjectAltNames: [spiffe://other/gw]\n"),
       "istio.yaml:46:26: 'subjectAltNames' narrows which gateway identities the agent trusts, and does not list "
       "agent.gateway.identity"},
      {"sniHosts wider than hosts",
       seedWith("      sni_hosts:\n      - www.googleapis.com", "      sni_hosts:\n      - '*.googleapis.com'"),
       "istio.yaml:64:9: sniHosts '\\*.googleapis.com' is not within the VirtualService's hosts"},
  };
  for (const auto& row : rows) {
    try {
      loadWithNode(row.text);
      ADD_FAILURE() << row.name << ": loaded";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(std::regex_search(e.what(), std::regex(row.expected))) << row.name << ": " << e.what();
      // (The per-pod fields say so; sniHosts and the gateway's identities are not per pod.)
      if (std::string(row.name).find("sniHosts") == std::string::npos &&
          std::string(row.name).find("gateway SANs") == std::string::npos) {
        EXPECT_NE(std::string(e.what()).find(widened), std::string::npos) << row.name << ": " << e.what();
      }
    }
  }
  // exportTo that restricts nothing ("*": every namespace, ".": the resources' own) loads.
  std::string open = seedWith("  resolution: DNS", "  resolution: DNS\n  exportTo: [\"*\"]");
  open.replace(open.find("  gateways:\n  - mesh\n"), 20, "  exportTo: [\".\"]\n  gateways:\n  - mesh\n");
  open.replace(open.find("        mode: ISTIO_MUTUAL\n"), 27,
               "        mode: ISTIO_MUTUAL\n        subjectAltNames: "
               "[spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account]\n");
  Config c = loadWithNode(open);
  EXPECT_TRUE(c.agentMatcher().match("www.googleapis.com", 443));
}

// What nothing uses is a file cut short or a leftover: refused, naming what and where.
TEST_F(IstioRulesTest, DanglingResourcesAreRefused) {
  const std::string beforeVs =
      seed().substr(0, seed().find("---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService"));
  std::string noSni = beforeVs;
  noSni.erase(noSni.find("        sni: www.googleapis.com"),
              std::string("        sni: www.googleapis.com    \n").size());
  std::vector<ErrorRow> rows = {
      {"entry nothing routes",
       seedWith("  - www.googleapis.com\n  ports:", "  - www.googleapis.com\n  - extra.example.com\n  ports:"),
       "istio.yaml:8:5: ServiceEntry 'googleapis' registers host 'extra.example.com', which no VirtualService "
       "routes: a dangling entry"},
      {"route to an unregistered host",
       seedWith("  - www.googleapis.com\n  gateways:", "  - www.googleapis.com\n  - other.example.com\n  gateways:"),
       "istio.yaml:55:5: VirtualService 'direct-traffic-through-egress-gateway' routes host 'other.example.com', "
       "which no ServiceEntry registers: a dangling route"},
      {"rule for a host nothing uses",
       seed() + "---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata:\n  name: "
                "leftover\nspec:\n  host: details\n",
       "istio.yaml:87:9: DestinationRule 'leftover' is for 'details', which neither a ServiceEntry registers nor "
       "is the egress gateway service"},
      {"gateway rule with no route to the gateway", noSni,
       "istio.yaml:39:9: DestinationRule 'egressgateway-for-googleapis' is for the egress gateway service, but no "
       "VirtualService routes mesh traffic to it"},
      {"route on a Gateway nothing defines",
       seedWith("  - istio-egressgateway\n  tls:", "  - istio-egressgateway\n  - other-gateway\n  tls:"),
       "istio.yaml:58:5: Gateway 'other-gateway' is not defined by any Gateway resource: a dangling route"},
      {"gateway server nothing routes", seed().substr(0, seed().find("  tcp:\n")),
       "istio.yaml:27:7: Gateway 'istio-egressgateway' serves host 'www.googleapis.com', but no VirtualService "
       "routes it on that gateway"},
  };
  expectRefused(rows, [&](const std::string& text) { loadWithNode(text); });
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

TEST_F(IstioRulesTest, AKubectlListIsItsItems) {
  // `kubectl get serviceentry,gateway,destinationrule,virtualservice -o yaml` writes a List.
  std::string items;
  std::string text = seed();
  // Each document of the seed becomes one item, indented under `items:`.
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n---", start);
    std::string doc = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (doc.find("kind:") != std::string::npos) {
      std::string indented;
      bool first = true;
      size_t at = 0;
      while (at < doc.size()) {
        size_t nl = doc.find('\n', at);
        std::string line = doc.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? doc.size() : nl + 1;
        if (line.empty() || line.front() == '#' || line == "---") continue;
        indented += (first ? "- " : "  ") + line + "\n";
        first = false;
      }
      items += indented;
    }
    if (end == std::string::npos) break;
    start = end + 4;
  }
  Config fromList = loadWithNode("apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:\n" + items);
  Config fromSeed = loadWithNode(seed());
  EXPECT_EQ(fromList.agentHosts.size(), fromSeed.agentHosts.size());
  EXPECT_EQ(fromList.gatewayHosts.size(), fromSeed.gatewayHosts.size());
  EXPECT_EQ(fromList.agentMatcher().match("www.googleapis.com", 443),
            fromSeed.agentMatcher().match("www.googleapis.com", 443));
  EXPECT_THROW(loadWithNode("apiVersion: v1\nkind: List\nitems: 3\n"), ConfigError);
}

}  // namespace
}  // namespace sluice
