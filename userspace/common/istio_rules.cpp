#include "istio_rules.h"

#include <algorithm>
#include <map>

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
  r.requireMap(spec, "ServiceEntry.spec", {"hosts", "ports", "resolution", "location", "endpoints"},
               {"addresses", "exportTo", "subjectAltNames"});
  YAML::Node hosts = r.sequence(r.required(spec, "hosts", "ServiceEntry.spec"), "ServiceEntry.spec.hosts");
  for (const auto& h : hosts) r.hostRule(h, "ServiceEntry.spec.hosts");
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
  r.requireMap(
      tls, name, {"mode", "sni"},
      {"clientCertificate", "privateKey", "caCertificates", "credentialName", "subjectAltNames", "insecureSkipVerify"});
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
      r.requireMap(tls, "Gateway.spec.servers[].tls", {"mode", "serverCertificate", "privateKey", "caCertificates"},
                   {"credentialName", "subjectAltNames", "minProtocolVersion", "maxProtocolVersion", "cipherSuites",
                    "httpsRedirect"});
      std::string mode = r.string(r.required(tls, "mode", "tls"), "Gateway.spec.servers[].tls.mode");
      if (mode != "MUTUAL" && mode != "ISTIO_MUTUAL") {
        r.fail(tls["mode"], "tls mode '" + mode +
                                "': sluice-gateway always terminates the agents' mutual TLS (MUTUAL or ISTIO_MUTUAL)");
      }
    }
  }
}

void checkDestinationRule(const YamlReader& r, const YAML::Node& spec) {
  r.requireMap(spec, "DestinationRule.spec", {"host", "trafficPolicy"}, {"subsets", "exportTo", "workloadSelector"});
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
    if (route["match"]) {
      for (const auto& m : r.sequence(route["match"], name + ".match")) {
        if (tls) {
          r.requireMap(m, name + ".match[]", {"gateways", "port", "sniHosts", "sni_hosts"},
                       {"destinationSubnets", "sourceLabels", "sourceNamespace"});
          if (!m["sniHosts"] && !m["sni_hosts"]) r.fail(m, "a tls match needs 'sniHosts'");
        } else {
          r.requireMap(m, name + ".match[]", {"gateways", "port"},
                       {"destinationSubnets", "sourceLabels", "sourceNamespace"});
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
  r.requireMap(spec, "VirtualService.spec", {"hosts", "gateways", "tls", "tcp", "http"}, {"exportTo"});
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

void IstioResources::compileInto(Config& config) const {
  const std::string gatewayService = config.agent ? config.agent->gatewayService : AgentConfig{}.gatewayService;
  const GatewayConfig gatewayIdentity = config.gateway.value_or(GatewayConfig{});

  // 1. The registry: hosts and ports that ServiceEntries make known.
  std::map<std::string, RegisteredHost> registry;
  for (const auto& se : serviceEntries_) {
    const YamlReader& r = *se.reader;
    const YAML::Node spec = se.node["spec"];
    RegisteredHost entry;
    for (const auto& p : spec["ports"]) entry.ports.insert(r.port(p["number"], "number"));
    if (spec["endpoints"]) {
      for (const auto& e : spec["endpoints"])
        entry.staticAddresses.push_back(*parseIpv4(e["address"].as<std::string>()));
    }
    for (const auto& h : spec["hosts"]) {
      auto& slot = registry[r.hostRule(h, "hosts")];
      slot.ports.insert(entry.ports.begin(), entry.ports.end());
      slot.staticAddresses.insert(slot.staticAddresses.end(), entry.staticAddresses.begin(),
                                  entry.staticAddresses.end());
    }
  }
  HostMatcher registered;
  for (const auto& [host, entry] : registry) registered.add(host, entry.ports);
  auto requireRegistered = [&](const YamlReader& r, const YAML::Node& at, const std::string& host, uint16_t port) {
    if (!registered.match(host.starts_with("*.") ? "x" + host.substr(1) : host, port)) {
      r.fail(at, "host '" + host + "' on port " + std::to_string(port) +
                     " has no ServiceEntry (REGISTRY_ONLY: every external host must be registered)");
    }
  };
  auto registryPorts = [&](const std::string& host) {
    auto it = registry.find(host);
    return it == registry.end() ? std::set<uint16_t>{443} : it->second.ports;
  };

  // 2. This gateway's servers: the Gateways whose selector matches our labels.
  std::map<std::string, std::set<uint16_t>> served;  // host -> ports, of Gateways that are ours
  std::set<std::string> ourGatewayNames;
  for (const auto& gw : gateways_) {
    const YamlReader& r = *gw.reader;
    const YAML::Node spec = gw.node["spec"];
    bool ours = true;
    for (const auto& label : spec["selector"]) {
      auto it = gatewayIdentity.labels.find(label.first.as<std::string>());
      if (it == gatewayIdentity.labels.end() || it->second != label.second.as<std::string>()) ours = false;
    }
    if (!ours) {
      r.warn(spec["selector"], "Gateway '" + gw.name + "' selects other workloads than this egress gateway: ignored");
      continue;
    }
    ourGatewayNames.insert(gw.name);
    for (const auto& s : spec["servers"]) {
      uint16_t port = r.port(s["port"]["number"], "number");
      for (const auto& h : s["hosts"]) {
        std::string host = normalHost(r, h);
        requireRegistered(r, h, host, port);
        served[host].insert(port);
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
  std::vector<std::pair<const Document*, YAML::Node>> sniSettings;
  for (const auto& dr : destinationRules_) {
    const YamlReader& r = *dr.reader;
    const YAML::Node spec = dr.node["spec"];
    std::string host = spec["host"].as<std::string>();
    if (host != gatewayService) {
      r.warn(spec["host"], "DestinationRule '" + dr.name + "' is for '" + host + "', not the egress gateway service '" +
                               gatewayService + "': no effect");
      continue;
    }
    if (YAML::Node policy = spec["trafficPolicy"]) {
      if (policy["tls"] && policy["tls"]["sni"]) sniSettings.push_back({&dr, policy["tls"]["sni"]});
      if (policy["portLevelSettings"]) {
        for (const auto& p : r.sequence(policy["portLevelSettings"], "portLevelSettings")) {
          if (p["tls"] && p["tls"]["sni"]) sniSettings.push_back({&dr, p["tls"]["sni"]});
        }
      }
    }
  }

  // 4. VirtualServices: mesh routes feed the agent, gateway routes feed the gateway.
  std::set<std::string> meshRouted;
  for (const auto& vs : virtualServices_) {
    const YamlReader& r = *vs.reader;
    const YAML::Node spec = vs.node["spec"];
    std::vector<std::string> vsGateways =
        spec["gateways"] ? r.strings(spec["gateways"], "gateways") : std::vector<std::string>{"mesh"};
    std::vector<std::string> vsHosts = normalHosts(r, spec["hosts"]);
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
        for (const auto& m : matches) {
          std::vector<std::string> gateways = m["gateways"] ? r.strings(m["gateways"], "gateways") : vsGateways;
          std::vector<std::string> hosts =
              tls ? normalHosts(r, m["sniHosts"] ? m["sniHosts"] : m["sni_hosts"]) : vsHosts;
          if (namesGateway(gateways, "mesh")) {
            for (const auto& d : route["route"]) {
              std::string dest = d["destination"]["host"].as<std::string>();
              if (dest != gatewayService) {
                r.fail(d["destination"]["host"], "mesh traffic routed to '" + dest +
                                                     "': sluice sends external traffic only through the egress "
                                                     "gateway '" +
                                                     gatewayService + "' (agent.gateway.service)");
              }
            }
            for (const auto& host : hosts) {
              std::set<uint16_t> ports =
                  m["port"] ? std::set<uint16_t>{r.port(m["port"], "port")} : registryPorts(host);
              for (uint16_t port : ports) requireRegistered(r, route, host, port);
              config.agentHosts.push_back(HostRule{host, ports});
              meshRouted.insert(host);
            }
          }
          bool onOurGateway = std::any_of(ourGatewayNames.begin(), ourGatewayNames.end(),
                                          [&](const std::string& n) { return namesGateway(gateways, n); });
          if (!onOurGateway) continue;
          for (const auto& host : hosts) {
            std::set<uint16_t> ports = m["port"] ? std::set<uint16_t>{r.port(m["port"], "port")} : registryPorts(host);
            for (uint16_t port : ports) {
              auto servedIt = served.find(host);
              if (servedIt == served.end() || !servedIt->second.contains(port)) {
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
                auto reg = registry.find(dest.host);
                if (reg != registry.end()) dest.addressesBe = reg->second.staticAddresses;
                if (dest.weight > 0) gatewayRoute.destinations.push_back(dest);
              }
              if (gatewayRoute.destinations.empty()) r.fail(route, "every destination has weight 0");
              config.gatewayHosts.push_back(HostRule{host, {port}});
              config.gatewayRoutes[host + ":" + std::to_string(port)] = gatewayRoute;
            }
          }
        }
      }
    }
  }
  for (const auto& [dr, sni] : sniSettings) {
    std::string value = dr->reader->string(sni, "sni");
    auto normal = normalizeHostName(value);
    if (!normal || !meshRouted.contains(*normal)) {
      dr->reader->fail(sni, "sni '" + value +
                                "' is not a host that a VirtualService routes to the gateway; "
                                "sluice sends the app's own SNI to the gateway");
    }
  }
  for (const auto& [host, entry] : registry) {
    if (!meshRouted.contains(host)) {
      for (const auto& se : serviceEntries_) {
        for (const auto& h : se.node["spec"]["hosts"]) {
          if (se.reader->hostRule(h, "hosts") == host) {
            se.reader->warn(h, "host '" + host +
                                   "' is registered but no VirtualService routes it from 'mesh' "
                                   "through the egress gateway: sluice refuses it");
          }
        }
      }
    }
  }
}

}  // namespace sluice
