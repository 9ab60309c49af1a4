#include "agent_admin.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bpf_stats.h"
#include "daemon_metrics.h"
#include "explain.h"
#include "kernel_counters.h"
#include "log_record.h"
#include "pod_identity.h"
#include "typed_map.h"

namespace sluice {
namespace {

using nlohmann::ordered_json;
using prometheus::MetricType;

double unixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

ordered_json certificateJson(const CertificateInfo& c) {
  return {{"uri", c.uri()},
          {"serial", c.serial},
          {"notBefore", utcTimestamp(c.notBefore)},
          {"notAfter", utcTimestamp(c.notAfter)}};
}

ordered_json gatewayJson(const GatewayHealth::View& g, const std::string& identity) {
  ordered_json j = {{"address", g.gateway},
                    {"identity", identity},
                    {"reachable", g.reachable},
                    {"known", g.known},
                    {"consecutiveFailures", g.consecutiveFailures}};
  if (!g.lastError.empty()) j["lastError"] = g.lastError;
  if (g.lastChangeUnixSeconds) {
    j["since"] = utcTimestamp(std::chrono::system_clock::time_point(std::chrono::seconds(g.lastChangeUnixSeconds)));
  }
  return j;
}

// Kernel counters as metric families: node totals per reason, per pod (bounded), the
// hand-off map's occupancy.
std::vector<prometheus::MetricFamily> kernelFamilies(const PinLayout& pins, PodDirectory& pods) {
  std::vector<prometheus::MetricFamily> out;
  KernelCounters counters = readKernelCounters(pins);
  auto node = makeFamily("sluice_kernel_decisions_total",
                         "Decisions of the BPF programs on this node, by reason (see the README)", MetricType::Counter);
  for (size_t i = 0; i < SL_STAT_COUNT; ++i) {
    addSample(node, {{"reason", kStatNames[i]}}, static_cast<double>(counters.node[i]));
  }
  out.push_back(std::move(node));

  // Per pod: cgroups of one pod summed; non-pod cgroups as "cgroup:<id>"; beyond
  // kMaxPodSeries the quietest are summed into "other".
  std::map<std::string, StatCounts> perPod;
  for (const auto& [id, counts] : counters.perCgroup) {
    std::string pod = id == 0 ? "node" : pods.podUid(id).value_or("cgroup:" + std::to_string(id));
    auto& sum = perPod[pod];
    for (size_t i = 0; i < SL_STAT_COUNT; ++i) sum[i] += counts[i];
  }
  std::vector<std::pair<std::string, StatCounts>> ranked(perPod.begin(), perPod.end());
  auto total = [](const StatCounts& c) {
    uint64_t t = 0;
    for (auto v : c) t += v;
    return t;
  };
  std::sort(ranked.begin(), ranked.end(),
            [&](const auto& a, const auto& b) { return total(a.second) > total(b.second); });
  if (ranked.size() > kMaxPodSeries) {
    StatCounts other{};
    for (size_t k = kMaxPodSeries; k < ranked.size(); ++k) {
      for (size_t i = 0; i < SL_STAT_COUNT; ++i) other[i] += ranked[k].second[i];
    }
    ranked.resize(kMaxPodSeries);
    ranked.emplace_back("other", other);
  }
  auto pod = makeFamily("sluice_kernel_pod_decisions_total",
                        "Decisions of the BPF programs per pod (UID; cgroup:<id> for a cgroup that is not a pod's; "
                        "at most 50 pods, the rest as other), by reason; zero counts omitted",
                        MetricType::Counter);
  for (const auto& [name, counts] : ranked) {
    for (size_t i = 0; i < SL_STAT_COUNT; ++i) {
      if (counts[i]) addSample(pod, {{"pod", name}, {"reason", kStatNames[i]}}, static_cast<double>(counts[i]));
    }
  }
  out.push_back(std::move(pod));
  auto entries =
      makeFamily("sluice_handoff_map_entries",
                 "Flows published by sockops and not yet taken by the agent (sl_orig_dst)", MetricType::Gauge);
  addSample(entries, {}, static_cast<double>(counters.handoffEntries));
  out.push_back(std::move(entries));
  auto capacity = makeFamily("sluice_handoff_map_capacity", "Size of the hand-off map; when full, flows are refused",
                             MetricType::Gauge);
  addSample(capacity, {}, static_cast<double>(counters.handoffCapacity));
  out.push_back(std::move(capacity));
  return out;
}

struct Readiness {
  bool ready = true;
  ordered_json body;
};

Readiness readiness(const AgentAdminContext& c) {
  Readiness r;
  ordered_json checks;
  // Rules: loaded, and the kernel runs that version.
  const uint64_t version = c.reloader->version();
  std::optional<sl_config> config;
  std::string datapathError;
  try {
    config = TypedMap<__u32, sl_config>::openPinned(c.pins.map("sl_config")).lookup(0);
  } catch (const std::exception& e) {
    datapathError = e.what();
  }
  const bool kernelConfigured = config && config->enabled && config->rules_version == static_cast<uint32_t>(version);
  checks["rules"] = {
      {"ok", kernelConfigured}, {"version", version}, {"kernelVersion", config ? config->rules_version : 0}};
  if (!datapathError.empty()) checks["rules"]["error"] = datapathError;
  r.ready = r.ready && kernelConfigured;
  // Programs: every program linked at every enrolled cgroup.
  ordered_json cgroups = ordered_json::array();
  bool attached = true;
  for (const auto& dir : c.enrolled()) {
    size_t links = 0;
    uint64_t id = 0;
    try {
      id = cgroupId(dir);
      for (const auto& hook : kProgramHooks) links += std::filesystem::exists(c.pins.cgroupLinks(id) / hook.name);
    } catch (const std::exception&) {
    }
    const bool ok = links == kProgramHooks.size();
    attached = attached && ok;
    cgroups.push_back({{"path", dir.string()}, {"id", id}, {"links", links}, {"ok", ok}});
  }
  checks["programs"] = {{"ok", attached}, {"cgroups", cgroups}};
  r.ready = r.ready && attached;
  // Gateways: at least one reachable.
  const auto gateway = c.health->view();
  checks["gateways"] = ordered_json::array({gatewayJson(gateway, c.reloader->running().agent->gatewayIdentity)});
  r.ready = r.ready && gateway.reachable;
  // Draining after SIGTERM: the listeners are closed.
  const bool draining = c.drain && c.drain->draining;
  checks["draining"] = {{"ok", !draining}, {"draining", draining}};
  r.ready = r.ready && !draining;
  r.body = {{"ready", r.ready}, {"daemon", "agent"}, {"checks", checks}};
  return r;
}

ordered_json configJson(const AgentAdminContext& c) {
  const Config& config = c.reloader->running();
  const AgentConfig& agent = *config.agent;
  ordered_json hosts = ordered_json::array();
  for (const auto& h : config.agentHosts) hosts.push_back({{"name", h.name}, {"ports", h.ports}});
  ordered_json bypass = ordered_json::array();
  for (const auto& cidr : agent.bypass) bypass.push_back(formatCidr(cidr));
  for (const auto& cidr : agent.bypass6) bypass.push_back(formatCidr(cidr));
  ordered_json sources = ordered_json::array();
  for (const auto& s : config.sources) sources.push_back(s.string());
  return {
      {"daemon", "agent"},
      {"rulesVersion", c.reloader->version()},
      {"sources", sources},
      {"outboundPolicy", toString(config.outboundPolicy)},
      {"hosts", hosts},
      {"listen", formatEndpoint(agent.listen)},
      {"listen6", agent.listen6 ? ordered_json(formatIpv6(*agent.listen6)) : ordered_json(nullptr)},
      {"redirectPorts", agent.redirectPorts},
      {"blockQuic", agent.blockQuic},
      {"bypassCidrs", bypass},
      {"cgroups", agent.cgroups},
      {"kubepodsCgroup", agent.kubepodsCgroup},
      {"exemptCgroups", agent.exemptCgroups},
      {"echPolicy", toString(agent.echPolicy)},
      {"clientHelloTimeoutMs", agent.clientHelloTimeout.count()},
      {"socketMark", agent.socketMark},
      {"gateways", ordered_json::array({gatewayJson(c.health->view(), agent.gatewayIdentity)})},
      {"certificate", certificateJson(c.certificates->certificate())},
  };
}

AdminResponse json(const ordered_json& body, unsigned status = 200) {
  return {status, "application/json", body.dump(2) + "\n"};
}

}  // namespace

void installAgentAdmin(AdminServer& server, AgentAdminContext context) {
  auto pods = std::make_shared<PodDirectory>();
  context.metrics->addCollector([context, pods] {
    DaemonFacts facts;
    facts.daemon = "agent";
    facts.rulesVersion = context.reloader->version();
    facts.rulesReloaded = facts.rulesVersion - 1;
    facts.rulesRejected = context.reloader->rejected();
    facts.certificateNotAfterSeconds = unixSeconds(context.certificates->certificate().notAfter);
    facts.certificateReloaded = context.certificates->reloads();
    facts.certificateRejected = context.certificates->rejected();
    if (context.drain) {
      facts.draining = context.drain->draining;
      facts.drainResets = context.drain->resetAtDeadline;
    }
    auto families = daemonFamilies(facts);
    for (auto& f : kernelFamilies(context.pins, *pods)) families.push_back(std::move(f));
    auto reachable = makeFamily("sluice_gateway_reachable",
                                "1 if the agent's last tunnel or probe reached the gateway, else 0", MetricType::Gauge);
    const auto g = context.health->view();
    addSample(reachable, {{"gateway", g.gateway}}, g.reachable ? 1 : 0);
    families.push_back(std::move(reachable));
    return families;
  });
  server.route("/metrics", [context] {
    return AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8", context.metrics->serialize()};
  });
  server.route("/healthz", [] { return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  server.route("/readyz", [context] {
    Readiness r = readiness(context);
    return json(r.body, r.ready ? 200 : 503);
  });
  server.route("/config", [context] { return json(configJson(context)); });
  // sluicectl explain --running: the same pure function over the rules in force. The
  // caller says whether the app's cgroup is enabled (it reads the pins itself).
  server.route("/explain", [context](const AdminRequest& request) {
    ConnectionQuery query;
    auto to = request.query.find("to");
    if (to == request.query.end() || !parseDestination(to->second, query)) {
      return json({{"error", "to=IPV4:PORT or to=[IPV6]:PORT is required"}}, 400);
    }
    auto get = [&](const char* key) {
      auto it = request.query.find(key);
      return it == request.query.end() ? std::string() : it->second;
    };
    query.cgroupEnabled = get("enabled") == "1";
    query.enabledBy = get("enabledBy");
    if (request.query.contains("sni")) query.sni = get("sni");
    Explanation e = explainConnection(context.reloader->running(), query);
    return json({{"rulesVersion", context.reloader->version()},
                 {"redirected", e.redirected},
                 {"allowed", e.allowed ? ordered_json(*e.allowed) : ordered_json(nullptr)},
                 {"lines", e.lines}});
  });
}

}  // namespace sluice
