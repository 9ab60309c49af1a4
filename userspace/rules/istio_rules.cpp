#include "istio_rules.h"

#include <algorithm>
#include <map>

#include "shared_zones.h"

namespace sluice {
namespace {

const std::set<std::string> kApiVersions = {"networking.istio.io/v1alpha3", "networking.istio.io/v1beta1",
                                            "networking.istio.io/v1"};

struct RegisteredHost {
  std::set<uint16_t> ports;
  std::vector<uint32_t> staticAddresses;  // resolution STATIC
};

std::string stripNamespace(const std::string& host) {
  // Gateway and VirtualService hosts may be "namespace/host"; sluice has no namespaces.
  auto slash = host.find('/');
  return slash == std::string::npos ? host : host.substr(slash + 1);
}

// VirtualService `gateways` entries may be "namespace/name".
bool namesGateway(const std::vector<std::string>& gateways, const std::string& name) {
  return std::any_of(gateways.begin(), gateways.end(),
                     [&](const std::string& g) { return g == name || stripNamespace(g) == name; });
}

// True when every name `inner` matches is matched by `outer` too (rules as HostMatcher
// reads them: "*.z" matches any name below z, not z itself).
bool coveredBy(const std::string& inner, const std::string& outer) {
  if (inner == outer) return true;
  if (!outer.starts_with("*.")) return false;
  const std::string suffix = outer.substr(1);
  return inner.size() > suffix.size() && inner.ends_with(suffix);
}

bool overlaps(const std::string& a, const std::string& b) {
  return coveredBy(a, b) || coveredBy(b, a);
}

// A host as Gateway and VirtualService spell it ("namespace/host" allowed), validated
// and normalised, with errors at the node's own line.
std::string normalHost(const YamlReader& r, const YAML::Node& node) {
  std::string host = stripNamespace(r.string(node, "host"));
  if (auto error = hostRuleError(host)) r.fail(node, "host '" + host + "': " + *error);
  bool wildcard = host.starts_with("*.");
  std::string normal = *normalizeHostName(wildcard ? host.substr(2) : host);
  return wildcard ? "*." + normal : normal;
}

std::vector<std::string> normalHosts(const YamlReader& r, const YAML::Node& list) {
  if (!list.IsSequence()) r.fail(list, "hosts must be a list");
  std::vector<std::string> out;
  for (const auto& h : list) out.push_back(normalHost(r, h));
  return out;
}

// Fields that narrow who may use a resource (source workloads, namespaces) or where it
// applies (destination addresses). sluice cannot yet enforce them per pod: accepting one
// with a warning would grant the route to every enrolled pod, so each is refused.
struct NarrowingField {
  const char* key;
  const char* narrows;  // "the route to some workloads"
};

// Refuses every narrowing field present in `map` (named `name`), at the field's place.
// exportTo is refused only when it names something other than "*" (every namespace) or
// "." (the resource's own namespace: sluice reads one set of resources for the pods it
// enrolls, so "." restricts nothing there).
void refuseNarrowing(const YamlReader& r, const YAML::Node& map, const std::string& name,
                     std::initializer_list<NarrowingField> fields) {
  if (!map.IsMap()) return;  // requireMap says so
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) continue;
    const std::string key = entry.first.as<std::string>();
    for (const auto& field : fields) {
      if (key != field.key) continue;
      if (key == "exportTo") {
        bool everywhere = true;
        if (entry.second.IsSequence()) {
          for (const auto& ns : entry.second) everywhere &= ns.IsScalar() && (ns.Scalar() == "*" || ns.Scalar() == ".");
        } else {
          everywhere = entry.second.IsNull();
        }
        if (everywhere) continue;
      }
      r.fail(entry.first, "'" + name + "." + key + "' narrows " + field.narrows +
                              "; sluice cannot enforce it and will not widen it to every enrolled pod");
    }
  }
}

constexpr NarrowingField kExportTo{"exportTo", "the resource to some namespaces"};
constexpr NarrowingField kWorkloadSelector{"workloadSelector", "the resource to some workloads"};
constexpr NarrowingField kSourceLabels{"sourceLabels", "the route to some workloads"};
constexpr NarrowingField kSourceNamespace{"sourceNamespace", "the route to one namespace's workloads"};
constexpr NarrowingField kSourceSubnet{"sourceSubnet", "the route to some source addresses"};
constexpr NarrowingField kDestinationSubnets{"destinationSubnets", "the route to some destination addresses"};

// A VirtualService's `gateways` (top level or in a match) may name only `mesh` and
// Gateways the files define: a route bound to a Gateway nothing defines is dangling.
void refuseUnknownGateways(const YamlReader& r, const YAML::Node& gateways, const std::set<std::string>& defined) {
  if (!gateways) return;
  for (const auto& g : gateways) {
    const std::string name = stripNamespace(r.string(g, "gateways"));
    if (name != "mesh" && !defined.contains(name)) {
      r.fail(g, "Gateway '" + name + "' is not defined by any Gateway resource: a dangling route");
    }
  }
}

void checkMetadata(const YamlReader& r, const YAML::Node& doc, const std::string& kind) {
  r.requireMap(doc, kind, {"apiVersion", "kind", "metadata", "spec"}, {"status"});
  YAML::Node meta = r.required(doc, "metadata", kind);
  r.requireMap(meta, kind + ".metadata", {"name", "namespace", "labels", "annotations"},
               {"resourceVersion", "uid", "generation", "creationTimestamp"});
  r.string(r.required(meta, "name", kind + ".metadata"), kind + ".metadata.name");
  if (meta["labels"] && !meta["labels"].IsMap()) r.fail(meta["labels"], "'metadata.labels' must be a mapping");
  if (!r.required(doc, "spec", kind).IsMap()) r.fail(doc["spec"], "'" + kind + ".spec' must be a mapping");
}

void checkServiceEntry(const YamlReader& r, const YAML::Node& spec) {
  refuseNarrowing(r, spec, "ServiceEntry.spec",
                  {kExportTo, kWorkloadSelector, {"addresses", "the service to some destination addresses"}});
  r.requireMap(spec, "ServiceEntry.spec",
               {"hosts", "ports", "resolution", "location", "endpoints", "exportTo", "workloadSelector", "addresses"},
               {"subjectAltNames"});
  YAML::Node hosts = r.sequence(r.required(spec, "hosts", "ServiceEntry.spec"), "ServiceEntry.spec.hosts");
  for (const auto& h : hosts) {
    if (auto risk = broadWildcardRisk(r.hostRule(h, "ServiceEntry.spec.hosts"))) r.warn(h, *risk);
  }
  for (const auto& p : r.sequence(r.required(spec, "ports", "ServiceEntry.spec"), "ServiceEntry.spec.ports")) {
    r.requireMap(p, "ServiceEntry.spec.ports[]", {"number", "name", "protocol"}, {"targetPort"});
    r.port(r.required(p, "number", "ServiceEntry.spec.ports[]"), "ServiceEntry.spec.ports[].number");
    if (p["protocol"]) {
      std::string protocol = r.string(p["protocol"], "ServiceEntry.spec.ports[].protocol");
      if (protocol != "TLS" && protocol != "HTTPS" && protocol != "TCP") {
        r.fail(p["protocol"],
               "protocol '" + protocol + "' is not supported: sluice reads the TLS ClientHello, so TLS, HTTPS or TCP");
      }
    }
  }
  if (spec["location"]) {
    std::string location = r.string(spec["location"], "ServiceEntry.spec.location");
    if (location != "MESH_EXTERNAL" && location != "MESH_INTERNAL") {
      r.fail(spec["location"], "location must be MESH_EXTERNAL or MESH_INTERNAL");
    }
  }
  std::string resolution = spec["resolution"] ? r.string(spec["resolution"], "ServiceEntry.spec.resolution") : "NONE";
  if (resolution == "NONE") {
    r.fail(spec["resolution"] ? spec["resolution"] : spec,
           "resolution NONE is not supported: the egress gateway must know where to connect (use DNS or STATIC)");
  }
  if (resolution != "DNS" && resolution != "STATIC") {
    r.fail(spec["resolution"], "resolution must be DNS or STATIC (sluice), got '" + resolution + "'");
  }
  if (resolution == "STATIC" && !spec["endpoints"]) r.fail(spec, "resolution STATIC needs 'endpoints'");
  if (spec["endpoints"]) {
    if (resolution != "STATIC") r.fail(spec["endpoints"], "'endpoints' are used only with resolution STATIC");
    for (const auto& e : r.sequence(spec["endpoints"], "ServiceEntry.spec.endpoints")) {
      r.requireMap(e, "ServiceEntry.spec.endpoints[]", {"address"},
                   {"ports", "labels", "network", "locality", "weight"});
      auto address = r.string(r.required(e, "address", "ServiceEntry.spec.endpoints[]"), "address");
      if (!parseIpv4(address)) r.fail(e["address"], "endpoint address '" + address + "' is not an IPv4 address");
    }
  }
}

void checkTlsSettings(const YamlReader& r, const YAML::Node& tls, const std::string& name) {
  r.requireMap(tls, name, {"mode", "sni", "subjectAltNames"},
               {"clientCertificate", "privateKey", "caCertificates", "credentialName", "insecureSkipVerify"});
  if (tls["subjectAltNames"]) r.strings(tls["subjectAltNames"], name + ".subjectAltNames");
  std::string mode = r.string(r.required(tls, "mode", name), name + ".mode");
  if (mode != "ISTIO_MUTUAL" && mode != "MUTUAL") {
    r.fail(tls["mode"], "tls mode '" + mode +
                            "': the agent's tunnel to the gateway is always mutual TLS "
                            "(ISTIO_MUTUAL or MUTUAL)");
  }
  if (mode == "MUTUAL") r.warn(tls["mode"], "tls mode MUTUAL: the agent uses its mesh certificate from agent.tls");
}

void checkGateway(const YamlReader& r, const YAML::Node& spec) {
  r.requireMap(spec, "Gateway.spec", {"selector", "servers"});
  YAML::Node selector = r.required(spec, "selector", "Gateway.spec");
  if (!selector.IsMap()) r.fail(selector, "'Gateway.spec.selector' must be a mapping of labels");
  for (const auto& label : selector) r.string(label.second, "Gateway.spec.selector");
  for (const auto& s : r.sequence(r.required(spec, "servers", "Gateway.spec"), "Gateway.spec.servers")) {
    r.requireMap(s, "Gateway.spec.servers[]", {"port", "hosts", "tls", "name"}, {"bind", "defaultEndpoint"});
    YAML::Node port = r.required(s, "port", "Gateway.spec.servers[]");
    r.requireMap(port, "Gateway.spec.servers[].port", {"number", "name", "protocol"}, {"targetPort"});
    r.port(r.required(port, "number", "port"), "Gateway.spec.servers[].port.number");
    std::string protocol = port["protocol"] ? r.string(port["protocol"], "protocol") : "TLS";
    if (protocol != "TLS" && protocol != "HTTPS" && protocol != "TCP") {
      r.fail(port["protocol"], "Gateway server protocol '" + protocol + "' is not supported (TLS, HTTPS or TCP)");
    }
    normalHosts(r, r.required(s, "hosts", "Gateway.spec.servers[]"));
    if (YAML::Node tls = s["tls"]) {
      // Certificate paths are known fields: compileInto says they have no effect.
      refuseNarrowing(r, tls, "Gateway.spec.servers[].tls",
                      {{"subjectAltNames", "the gateway to some clients (list them in gateway.allowedClients)"}});
      r.requireMap(tls, "Gateway.spec.servers[].tls",
                   {"mode", "serverCertificate", "privateKey", "caCertificates", "subjectAltNames"},
                   {"credentialName", "minProtocolVersion", "maxProtocolVersion", "cipherSuites", "httpsRedirect"});
      std::string mode = r.string(r.required(tls, "mode", "tls"), "Gateway.spec.servers[].tls.mode");
      if (mode != "MUTUAL" && mode != "ISTIO_MUTUAL") {
        r.fail(tls["mode"], "tls mode '" + mode +
                                "': sluice-gateway always terminates the agents' mutual TLS (MUTUAL or ISTIO_MUTUAL)");
      }
    }
  }
}

void checkDestinationRule(const YamlReader& r, const YAML::Node& spec) {
  refuseNarrowing(r, spec, "DestinationRule.spec", {kExportTo, kWorkloadSelector});
  r.requireMap(spec, "DestinationRule.spec", {"host", "trafficPolicy", "exportTo", "workloadSelector"}, {"subsets"});
  r.string(r.required(spec, "host", "DestinationRule.spec"), "DestinationRule.spec.host");
  if (YAML::Node policy = spec["trafficPolicy"]) {
    r.requireMap(policy, "trafficPolicy", {"tls", "portLevelSettings"},
                 {"loadBalancer", "connectionPool", "outlierDetection", "tunnel", "proxyProtocol"});
    if (policy["tls"]) checkTlsSettings(r, policy["tls"], "trafficPolicy.tls");
    if (policy["portLevelSettings"]) {
      for (const auto& p : r.sequence(policy["portLevelSettings"], "portLevelSettings")) {
        r.requireMap(p, "portLevelSettings[]", {"port", "tls"}, {"loadBalancer", "connectionPool", "outlierDetection"});
        YAML::Node port = r.required(p, "port", "portLevelSettings[]");
        r.requireMap(port, "portLevelSettings[].port", {"number"});
        r.port(r.required(port, "number", "port"), "portLevelSettings[].port.number");
        if (p["tls"]) checkTlsSettings(r, p["tls"], "portLevelSettings[].tls");
      }
    }
  }
}

void checkRoutes(const YamlReader& r, const YAML::Node& routes, const std::string& name, bool tls) {
  for (const auto& route : r.sequence(routes, name)) {
    r.requireMap(route, name, {"match", "route"});
    if (tls && !route["match"]) r.fail(route, "a tls route needs 'match' with 'sniHosts'");
    if (route["match"]) {
      for (const auto& m : r.sequence(route["match"], name + ".match")) {
        refuseNarrowing(r, m, name + ".match[]", {kSourceLabels, kSourceNamespace, kSourceSubnet, kDestinationSubnets});
        if (tls) {
          r.requireMap(m, name + ".match[]", {"gateways", "port", "sniHosts", "sni_hosts"});
          if (!m["sniHosts"] && !m["sni_hosts"]) r.fail(m, "a tls match needs 'sniHosts'");
        } else {
          r.requireMap(m, name + ".match[]", {"gateways", "port"});
        }
        if (m["port"]) r.port(m["port"], name + ".match[].port");
        if (m["gateways"]) r.strings(m["gateways"], name + ".match[].gateways");
        if (tls) normalHosts(r, m["sniHosts"] ? m["sniHosts"] : m["sni_hosts"]);
      }
    }
    for (const auto& d : r.sequence(r.required(route, "route", name), name + ".route")) {
      r.requireMap(d, name + ".route[]", {"destination", "weight"});
      YAML::Node dest = r.required(d, "destination", name + ".route[]");
      r.requireMap(dest, name + ".route[].destination", {"host", "port"}, {"subset"});
      r.string(r.required(dest, "host", "destination"), "destination.host");
      if (dest["port"]) {
        r.requireMap(dest["port"], "destination.port", {"number"});
        r.port(r.required(dest["port"], "number", "destination.port"), "destination.port.number");
      }
      if (d["weight"]) r.number(d["weight"], name + ".route[].weight", 0, 100);
    }
  }
}

void checkVirtualService(const YamlReader& r, const YAML::Node& spec) {
  refuseNarrowing(r, spec, "VirtualService.spec", {kExportTo});
  r.requireMap(spec, "VirtualService.spec", {"hosts", "gateways", "tls", "tcp", "http", "exportTo"});
  normalHosts(r, r.required(spec, "hosts", "VirtualService.spec"));
  if (spec["gateways"]) r.strings(spec["gateways"], "VirtualService.spec.gateways");
  if (spec["http"]) {
    r.fail(spec["http"],
           "http routes are not supported: sluice never sees the app's plaintext; route by SNI with "
           "'tls' (mesh) and 'tcp' (gateway) routes");
  }
  if (spec["tls"]) checkRoutes(r, spec["tls"], "VirtualService.spec.tls[]", true);
  if (spec["tcp"]) checkRoutes(r, spec["tcp"], "VirtualService.spec.tcp[]", false);
}

}  // namespace

void IstioResources::add(std::shared_ptr<YamlReader> reader, const YAML::Node& doc) {
  const YamlReader& r = *reader;
  std::string apiVersion = r.string(r.required(doc, "apiVersion", "a resource"), "apiVersion");
  std::string kind = r.string(r.required(doc, "kind", "a resource"), "kind");
  if (!kApiVersions.contains(apiVersion)) {
    r.fail(doc["apiVersion"],
           "apiVersion '" + apiVersion + "' is not one sluice reads (networking.istio.io/v1alpha3, v1beta1 or v1)");
  }
  checkMetadata(r, doc, kind);
  Document d{reader, doc, kind, doc["metadata"]["name"].as<std::string>()};
  const YAML::Node spec = doc["spec"];
  if (kind == "ServiceEntry") {
    checkServiceEntry(r, spec);
    serviceEntries_.push_back(d);
  } else if (kind == "Gateway") {
    checkGateway(r, spec);
    gateways_.push_back(d);
  } else if (kind == "DestinationRule") {
    checkDestinationRule(r, spec);
    destinationRules_.push_back(d);
  } else if (kind == "VirtualService") {
    checkVirtualService(r, spec);
    virtualServices_.push_back(d);
  } else {
    r.fail(doc["kind"],
           "kind '" + kind + "' is not supported (ServiceEntry, Gateway, DestinationRule, VirtualService)");
  }
}

// One compilation of a set of resources: each kind is compiled by its own function, in
// the order the kinds depend on each other (registry, Gateways, DestinationRules,
// VirtualServices), then the cross-checks that need all of them.
class IstioCompiler {
 public:
  using Document = IstioResources::Document;

  IstioCompiler(const IstioResources& resources, Config& config)
      : resources_(resources),
        config_(config),
        gatewayService_(config.agent ? config.agent->gatewayService : AgentConfig{}.gatewayService),
        gatewayLabels_(config.gateway.value_or(GatewayConfig{}).labels) {}

  void compile() {
    for (const auto& se : resources_.serviceEntries_) addServiceEntry(se);
    for (const auto& [host, entry] : registry_) registered_.add(host, entry.ports);
    for (const auto& gw : resources_.gateways_) gatewayNames_.insert(gw.name);
    for (const auto& gw : resources_.gateways_) addGateway(gw);
    for (const auto& dr : resources_.destinationRules_) addDestinationRule(dr);
    for (const auto& vs : resources_.virtualServices_) addVirtualService(vs);
    checkSniSettings();
    refuseDanglingDestinationRule();
    refuseDanglingServiceEntries();
    refuseDanglingGatewayServers();
  }

 private:
  // 1. The registry: hosts and ports that ServiceEntries make known.
  void addServiceEntry(const Document& se) {
    const YamlReader& r = *se.reader;
    const YAML::Node spec = se.node["spec"];
    RegisteredHost entry;
    for (const auto& p : spec["ports"]) entry.ports.insert(r.port(p["number"], "number"));
    if (spec["endpoints"]) {
      for (const auto& e : spec["endpoints"])
        entry.staticAddresses.push_back(*parseIpv4(e["address"].as<std::string>()));
    }
    for (const auto& h : spec["hosts"]) {
      auto& slot = registry_[r.hostRule(h, "hosts")];
      slot.ports.insert(entry.ports.begin(), entry.ports.end());
      slot.staticAddresses.insert(slot.staticAddresses.end(), entry.staticAddresses.begin(),
                                  entry.staticAddresses.end());
    }
  }

  void requireRegistered(const YamlReader& r, const YAML::Node& at, const std::string& host, uint16_t port) const {
    if (!registered_.match(host.starts_with("*.") ? "x" + host.substr(1) : host, port)) {
      r.fail(at, "host '" + host + "' on port " + std::to_string(port) +
                     " has no ServiceEntry (REGISTRY_ONLY: every external host must be registered)");
    }
  }
  std::set<uint16_t> registryPorts(const std::string& host) const {
    auto it = registry_.find(host);
    return it == registry_.end() ? std::set<uint16_t>{443} : it->second.ports;
  }
  bool registeredOverlapping(const std::string& host) const {
    return std::any_of(registry_.begin(), registry_.end(),
                       [&](const auto& entry) { return overlaps(host, entry.first); });
  }

  // 2. This gateway's servers: the Gateways whose selector matches our labels.
  void addGateway(const Document& gw) {
    const YamlReader& r = *gw.reader;
    const YAML::Node spec = gw.node["spec"];
    bool ours = true;
    for (const auto& label : spec["selector"]) {
      auto it = gatewayLabels_.find(label.first.as<std::string>());
      if (it == gatewayLabels_.end() || it->second != label.second.as<std::string>()) ours = false;
    }
    if (!ours) {
      r.warn(spec["selector"], "Gateway '" + gw.name + "' selects other workloads than this egress gateway: ignored");
      return;
    }
    ourGatewayNames_.insert(gw.name);
    for (const auto& s : spec["servers"]) {
      uint16_t port = r.port(s["port"]["number"], "number");
      for (const auto& h : s["hosts"]) {
        std::string host = normalHost(r, h);
        requireRegistered(r, h, host, port);
        served_[host].insert(port);
      }
      if (YAML::Node tls = s["tls"]) {
        for (const char* field : {"serverCertificate", "privateKey", "caCertificates"}) {
          if (tls[field]) {
            r.warn(tls[field],
                   std::string("'") + field + "' has no effect: sluice-gateway uses gateway.tls from the native rules");
          }
        }
      }
    }
  }

  // 3. DestinationRules for the gateway service: the outer SNI they ask for must be
  //    the app's SNI, which is what the agent sends.
  void addDestinationRule(const Document& dr) {
    const YamlReader& r = *dr.reader;
    const YAML::Node spec = dr.node["spec"];
    std::string host = spec["host"].as<std::string>();
    if (host != gatewayService_) {
      auto normal = normalizeHostName(host);
      if (!normal || !registeredOverlapping(*normal)) {
        r.fail(spec["host"], "DestinationRule '" + dr.name + "' is for '" + host +
                                 "', which neither a ServiceEntry registers nor is the egress gateway service '" +
                                 gatewayService_ + "': a dangling rule (a file cut short, or a leftover)");
      }
      r.warn(spec["host"], "DestinationRule '" + dr.name + "' is for '" + host + "', not the egress gateway service '" +
                               gatewayService_ + "': no effect");
      return;
    }
    gatewayRules_.push_back(&dr);
    const YAML::Node policy = spec["trafficPolicy"];
    if (!policy) return;
    std::vector<YAML::Node> tlsSettings;
    if (policy["tls"]) tlsSettings.push_back(policy["tls"]);
    if (policy["portLevelSettings"]) {
      for (const auto& p : r.sequence(policy["portLevelSettings"], "portLevelSettings")) {
        if (p["tls"]) tlsSettings.push_back(p["tls"]);
      }
    }
    for (const auto& tls : tlsSettings) {
      if (tls["sni"]) sniSettings_.push_back({&dr, tls["sni"]});
      // The gateway identities the agent may trust: the one it verifies must be listed.
      if (tls["subjectAltNames"] && config_.agent) {
        auto names = r.strings(tls["subjectAltNames"], "subjectAltNames");
        if (std::find(names.begin(), names.end(), config_.agent->gatewayIdentity) == names.end()) {
          r.fail(tls["subjectAltNames"],
                 "'subjectAltNames' narrows which gateway identities the agent trusts, and "
                 "does not list agent.gateway.identity '" +
                     config_.agent->gatewayIdentity + "', the one sluice-agent verifies: sluice will not widen it");
        }
      }
    }
  }

  // 4. VirtualServices: mesh routes feed the agent, gateway routes feed the gateway.
  void addVirtualService(const Document& vs) {
    const YamlReader& r = *vs.reader;
    const YAML::Node spec = vs.node["spec"];
    const std::vector<std::string> vsGateways =
        spec["gateways"] ? r.strings(spec["gateways"], "gateways") : std::vector<std::string>{"mesh"};
    const std::vector<std::string> vsHosts = normalHosts(r, spec["hosts"]);
    refuseUnknownGateways(r, spec["gateways"], gatewayNames_);
    for (const auto& h : spec["hosts"]) {
      std::string host = normalHost(r, h);
      if (std::none_of(registry_.begin(), registry_.end(),
                       [&](const auto& entry) { return coveredBy(host, entry.first); })) {
        r.fail(h, "VirtualService '" + vs.name + "' routes host '" + host +
                      "', which no ServiceEntry registers: a dangling route (REGISTRY_ONLY: every external host "
                      "must be registered)");
      }
      referenced_.insert(host);
    }
    for (const char* section : {"tls", "tcp"}) {
      if (!spec[section]) continue;
      const bool tls = std::string(section) == "tls";
      for (const auto& route : spec[section]) {
        std::vector<YAML::Node> matches;
        if (route["match"]) {
          for (const auto& m : route["match"]) matches.push_back(m);
        } else {
          matches.push_back(YAML::Node(YAML::NodeType::Map));
        }
        for (const auto& m : matches) addRouteMatch(r, route, m, tls, vsGateways, vsHosts);
      }
    }
  }

  // One match of a tls/tcp route: which hosts it covers, and on which gateways.
  void addRouteMatch(const YamlReader& r, const YAML::Node& route, const YAML::Node& m, bool tls,
                     const std::vector<std::string>& vsGateways, const std::vector<std::string>& vsHosts) {
    const std::vector<std::string> gateways = m["gateways"] ? r.strings(m["gateways"], "gateways") : vsGateways;
    refuseUnknownGateways(r, m["gateways"], gatewayNames_);
    std::vector<std::string> hosts = vsHosts;
    if (tls) {
      const YAML::Node sniHosts = m["sniHosts"] ? m["sniHosts"] : m["sni_hosts"];
      hosts = normalHosts(r, sniHosts);
      for (size_t i = 0; i < hosts.size(); ++i) {
        if (std::none_of(vsHosts.begin(), vsHosts.end(),
                         [&](const std::string& h) { return coveredBy(hosts[i], h); })) {
          r.fail(sniHosts[i], "sniHosts '" + hosts[i] +
                                  "' is not within the VirtualService's hosts: Istio routes only those, "
                                  "and sluice will not widen the route");
        }
      }
    }
    referenced_.insert(hosts.begin(), hosts.end());
    auto portsOf = [&](const std::string& host) {
      return m["port"] ? std::set<uint16_t>{r.port(m["port"], "port")} : registryPorts(host);
    };
    if (namesGateway(gateways, "mesh")) addMeshRoute(r, route, hosts, portsOf);
    const bool onOurGateway = std::any_of(ourGatewayNames_.begin(), ourGatewayNames_.end(),
                                          [&](const std::string& n) { return namesGateway(gateways, n); });
    if (!onOurGateway) return;
    for (const auto& host : hosts) {
      for (uint16_t port : portsOf(host)) addGatewayRoute(r, route, host, port);
    }
  }

  // From `mesh`: the agent sends these hosts, and only to the egress gateway.
  template <class PortsOf>
  void addMeshRoute(const YamlReader& r, const YAML::Node& route, const std::vector<std::string>& hosts,
                    const PortsOf& portsOf) {
    for (const auto& d : route["route"]) {
      std::string dest = d["destination"]["host"].as<std::string>();
      if (dest != gatewayService_) {
        r.fail(d["destination"]["host"], "mesh traffic routed to '" + dest +
                                             "': sluice sends external traffic only through the egress gateway '" +
                                             gatewayService_ + "' (agent.gateway.service)");
      }
    }
    for (const auto& host : hosts) {
      std::set<uint16_t> ports = portsOf(host);
      for (uint16_t port : ports) requireRegistered(r, route, host, port);
      config_.agentHosts.push_back(HostRule{host, ports});
      meshRouted_.insert(host);
    }
  }

  // On this gateway: the host and port it serves, and the weighted destinations.
  void addGatewayRoute(const YamlReader& r, const YAML::Node& route, const std::string& host, uint16_t port) {
    auto servedIt = served_.find(host);
    if (servedIt == served_.end() || !servedIt->second.contains(port)) {
      r.fail(route, "host '" + host + "' port " + std::to_string(port) +
                        " is routed on the gateway but no Gateway server of it lists that host and port");
    }
    requireRegistered(r, route, host, port);
    GatewayRoute gatewayRoute;
    for (const auto& d : route["route"]) {
      UpstreamDestination dest;
      dest.host = d["destination"]["host"].as<std::string>();
      dest.port = d["destination"]["port"] ? r.port(d["destination"]["port"]["number"], "number") : port;
      dest.weight = d["weight"] ? static_cast<uint32_t>(d["weight"].as<uint64_t>()) : 100;
      auto normal = normalizeHostName(dest.host);
      if (!normal) r.fail(d["destination"]["host"], "destination '" + dest.host + "' is not a host name");
      dest.host = *normal;
      requireRegistered(r, d["destination"], dest.host, dest.port);
      referenced_.insert(dest.host);
      auto reg = registry_.find(dest.host);
      if (reg != registry_.end()) dest.addressesBe = reg->second.staticAddresses;
      if (dest.weight > 0) gatewayRoute.destinations.push_back(dest);
    }
    if (gatewayRoute.destinations.empty()) r.fail(route, "every destination has weight 0");
    config_.gatewayHosts.push_back(HostRule{host, {port}});
    gatewayRouted_.insert(host);
    config_.gatewayRoutes[host + ":" + std::to_string(port)] = gatewayRoute;
  }

  void checkSniSettings() const {
    for (const auto& [dr, sni] : sniSettings_) {
      std::string value = dr->reader->string(sni, "sni");
      auto normal = normalizeHostName(value);
      if (!normal || !meshRouted_.contains(*normal)) {
        dr->reader->fail(sni, "sni '" + value +
                                  "' is not a host that a VirtualService routes to the gateway; "
                                  "sluice sends the app's own SNI to the gateway");
      }
    }
  }

  // 5. Dangling resources: what nothing uses is a file cut short or a leftover, and
  //    sluice will not guess which. (Without any VirtualService there is no route at
  //    all: the reload's empty-rules check speaks for that case.)
  void refuseDanglingDestinationRule() const {
    if (gatewayRules_.empty() || !meshRouted_.empty()) return;
    const Document& dr = *gatewayRules_.front();
    dr.reader->fail(dr.node["spec"]["host"], "DestinationRule '" + dr.name +
                                                 "' is for the egress gateway service, but no VirtualService routes "
                                                 "mesh traffic to it: a dangling rule");
  }

  void refuseDanglingServiceEntries() const {
    const bool anyRoute = !resources_.virtualServices_.empty();
    for (const auto& se : resources_.serviceEntries_) {
      for (const auto& h : se.node["spec"]["hosts"]) {
        const std::string host = se.reader->hostRule(h, "hosts");
        const bool used = std::any_of(referenced_.begin(), referenced_.end(),
                                      [&](const std::string& ref) { return overlaps(ref, host); });
        if (!used && anyRoute) {
          se.reader->fail(h, "ServiceEntry '" + se.name + "' registers host '" + host +
                                 "', which no VirtualService routes: a dangling entry (a file cut short, or a "
                                 "route removed without its entry)");
        }
        if ((used || !anyRoute) && !meshRouted_.contains(host)) {
          se.reader->warn(h, "host '" + host +
                                 "' is registered but no VirtualService routes it from 'mesh' "
                                 "through the egress gateway: sluice refuses it");
        }
      }
    }
  }

  void refuseDanglingGatewayServers() const {
    if (resources_.virtualServices_.empty()) return;
    for (const auto& gw : resources_.gateways_) {
      if (!ourGatewayNames_.contains(gw.name)) continue;
      for (const auto& s : gw.node["spec"]["servers"]) {
        for (const auto& h : s["hosts"]) {
          const std::string host = normalHost(*gw.reader, h);
          if (std::none_of(gatewayRouted_.begin(), gatewayRouted_.end(),
                           [&](const std::string& routed) { return overlaps(routed, host); })) {
            gw.reader->fail(h, "Gateway '" + gw.name + "' serves host '" + host +
                                   "', but no VirtualService routes it on that gateway: a dangling server");
          }
        }
      }
    }
  }

  const IstioResources& resources_;
  Config& config_;
  const std::string gatewayService_;
  const std::map<std::string, std::string> gatewayLabels_;

  std::map<std::string, RegisteredHost> registry_;
  HostMatcher registered_;
  std::set<std::string> gatewayNames_, ourGatewayNames_;
  std::map<std::string, std::set<uint16_t>> served_;  // host -> ports, of Gateways that are ours
  std::vector<std::pair<const Document*, YAML::Node>> sniSettings_;
  std::vector<const Document*> gatewayRules_;  // DestinationRules for the egress gateway service
  std::set<std::string> meshRouted_;
  std::set<std::string> referenced_;     // every host a VirtualService names
  std::set<std::string> gatewayRouted_;  // hosts routed on this gateway
};

void IstioResources::compileInto(Config& config) const {
  IstioCompiler(*this, config).compile();
}

}  // namespace sluice
