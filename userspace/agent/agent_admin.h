// What the agent's admin endpoint serves: /metrics (the flow metrics, the kernel counters
// read from the pinned maps at scrape time, rules and certificate facts), /healthz,
// /readyz (rules loaded, programs attached to every enrolled cgroup, the kernel config
// at the running version, the gateway reachable, not draining) and /config (the rules in force).
// Everything runs on the control thread; data-path state is read through atomics,
// prometheus-cpp metrics and map syscalls.
#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include "admin_server.h"
#include "bpf_pins.h"
#include "certificate_reloader.h"
#include "drain.h"
#include "gateway_health.h"
#include "metrics_registry.h"
#include "rules_reloader.h"

namespace sluice {

struct AgentAdminContext {
  PinLayout pins;
  const RulesReloader* reloader;
  const CertificateReloader* certificates;
  const GatewayHealth* health;
  MetricsRegistry* metrics;
  // The cgroups the rules in force enroll.
  std::function<std::vector<std::filesystem::path>()> enrolled;
  const DrainStatus* drain = nullptr;  // draining: /readyz says not ready
};

// Per-pod kernel counters: at most this many pods (the busiest by total) get their own
// series; the rest are summed into pod="other".
inline constexpr size_t kMaxPodSeries = 50;

void installAgentAdmin(AdminServer& server, AgentAdminContext context);

}  // namespace sluice
