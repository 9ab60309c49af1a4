#include "gateway_admin.h"

#include <nlohmann/json.hpp>

#include "daemon_metrics.h"
#include "log_record.h"

namespace sluice {
namespace {

using nlohmann::ordered_json;

AdminResponse json(const ordered_json& body, unsigned status = 200) {
  return {status, "application/json", body.dump(2) + "\n"};
}

ordered_json certificateJson(const CertificateInfo& c) {
  return {{"uri", c.uri()},
          {"serial", c.serial},
          {"notBefore", utcTimestamp(c.notBefore)},
          {"notAfter", utcTimestamp(c.notAfter)}};
}

ordered_json configJson(const GatewayAdminContext& c) {
  const Config& config = c.reloader->running();
  const GatewayConfig& gateway = *config.gateway;
  ordered_json hosts = ordered_json::array();
  for (const auto& h : config.gatewayHosts) hosts.push_back({{"name", h.name}, {"ports", h.ports}});
  auto cidrs = [](const CidrSet& set) {
    ordered_json list = ordered_json::array();
    for (const auto& cidr : set.v4) list.push_back(formatCidr(cidr));
    for (const auto& cidr : set.v6) list.push_back(formatCidr(cidr));
    return list;
  };
  ordered_json routes = ordered_json::object();
  for (const auto& [key, route] : config.gatewayRoutes) {
    ordered_json destinations = ordered_json::array();
    for (const auto& d : route.destinations) {
      ordered_json addresses = ordered_json::array();
      for (auto a : d.addressesBe) addresses.push_back(formatIpv4(a));
      destinations.push_back({{"host", d.host}, {"port", d.port}, {"weight", d.weight}, {"addresses", addresses}});
    }
    routes[key] = destinations;
  }
  ordered_json sources = ordered_json::array();
  for (const auto& s : config.sources) sources.push_back(s.string());
  return {{"daemon", "gateway"},
          {"rulesVersion", c.reloader->version()},
          {"sources", sources},
          {"hosts", hosts},
          {"routes", routes},
          {"listen", formatEndpoint(gateway.listen)},
          {"dns", formatEndpoint(gateway.dnsServer)},
          {"dnsCacheMs", gateway.dnsCacheLifetime.count()},
          {"dnsMinCacheMs", std::min(gateway.dnsMinCacheLifetime, gateway.dnsCacheLifetime).count()},
          {"allowedClients", gateway.allowedClients},
          {"denyCidrs", cidrs(gateway.denyCidrs)},
          {"allowPrivateCidrs", cidrs(gateway.allowPrivateCidrs)},
          {"socketMark", gateway.socketMark},
          {"certificate", certificateJson(c.certificates->certificate())}};
}

}  // namespace

void installGatewayAdmin(AdminServer& server, GatewayAdminContext context) {
  context.metrics->addCollector([context] {
    DaemonFacts facts;
    facts.daemon = "gateway";
    facts.rulesVersion = context.reloader->version();
    facts.rulesReloaded = facts.rulesVersion - 1;
    facts.rulesRejected = context.reloader->rejected();
    facts.certificateNotAfterSeconds =
        std::chrono::duration<double>(context.certificates->certificate().notAfter.time_since_epoch()).count();
    facts.certificateReloaded = context.certificates->reloads();
    facts.certificateRejected = context.certificates->rejected();
    if (context.drain) {
      facts.draining = context.drain->draining;
      facts.drainResets = context.drain->resetAtDeadline;
    }
    return daemonFamilies(facts);
  });
  server.route("/metrics", [context] {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", context.metrics->serialize()};
  });
  server.route("/healthz", [] { return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  server.route("/readyz", [context] {
    const auto& certificate = context.certificates->certificate();
    const auto now = std::chrono::system_clock::now();
    const bool valid = certificate.notBefore <= now && now < certificate.notAfter;
    const bool rules = context.reloader->running().gateway.has_value();
    const bool draining = context.drain && context.drain->draining;
    const bool ready = valid && rules && !draining;
    ordered_json body = {{"ready", ready},
                         {"daemon", "gateway"},
                         {"checks",
                          {{"rules", {{"ok", rules}, {"version", context.reloader->version()}}},
                           {"certificate", {{"ok", valid}, {"notAfter", utcTimestamp(certificate.notAfter)}}},
                           {"draining", {{"ok", !draining}, {"draining", draining}}}}}};
    return json(body, ready ? 200 : 503);
  });
  server.route("/config", [context] { return json(configJson(context)); });
}

}  // namespace sluice
