#include "daemon_metrics.h"

#include "logging.h"
#include "metrics_registry.h"
#include "version.h"

namespace sluice {

std::vector<prometheus::MetricFamily> daemonFamilies(const DaemonFacts& f) {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  auto info = makeFamily("sluice_build_info", "Always 1; the version and git revision as labels", MetricType::Gauge);
  addSample(info, {{"daemon", f.daemon}, {"version", SLUICE_VERSION}, {"revision", SLUICE_REVISION}}, 1);
  out.push_back(std::move(info));
  auto version = makeFamily("sluice_rules_version", "Version of the rule set in force (1 at start, +1 per reload)",
                            MetricType::Gauge);
  addSample(version, {}, static_cast<double>(f.rulesVersion));
  out.push_back(std::move(version));
  auto reloads =
      makeFamily("sluice_rules_reloads_total",
                 "Rules reloads by result: ok (taken) or rejected (the running rules stayed)", MetricType::Counter);
  addSample(reloads, {{"result", "ok"}}, static_cast<double>(f.rulesReloaded));
  addSample(reloads, {{"result", "rejected"}}, static_cast<double>(f.rulesRejected));
  out.push_back(std::move(reloads));
  auto expiry = makeFamily("sluice_certificate_expiry_timestamp_seconds",
                           "notAfter of the mesh certificate in use, Unix time", MetricType::Gauge);
  addSample(expiry, {}, f.certificateNotAfterSeconds);
  out.push_back(std::move(expiry));
  auto rotations = makeFamily("sluice_certificate_reloads_total",
                              "Certificate reloads by result: ok (new files in use) or rejected (kept the old)",
                              MetricType::Counter);
  addSample(rotations, {{"result", "ok"}}, static_cast<double>(f.certificateReloaded));
  addSample(rotations, {{"result", "rejected"}}, static_cast<double>(f.certificateRejected));
  out.push_back(std::move(rotations));
  auto draining =
      makeFamily("sluice_draining", "1 while draining after SIGTERM (listeners closed, flows finishing), else 0",
                 MetricType::Gauge);
  addSample(draining, {}, f.draining ? 1 : 0);
  out.push_back(std::move(draining));
  auto resets = makeFamily("sluice_drain_resets_total",
                           "Flows reset because the drain deadline came (or a second signal) before they ended",
                           MetricType::Counter);
  addSample(resets, {}, static_cast<double>(f.drainResets));
  out.push_back(std::move(resets));
  auto dropped =
      makeFamily("sluice_log_lines_dropped_total",
                 "Log lines dropped because the log queue was full (a slow or blocked stderr)", MetricType::Counter);
  addSample(dropped, {}, static_cast<double>(droppedLogLines()));
  out.push_back(std::move(dropped));
  return out;
}

}  // namespace sluice
