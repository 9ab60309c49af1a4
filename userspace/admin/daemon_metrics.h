// The metrics both daemons export, read at scrape time from what the daemon knows:
// build, rules version and reloads, certificate expiry and rotations, the drain.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

struct DaemonFacts {
  std::string daemon;  // agent, gateway
  uint64_t rulesVersion = 0;
  uint64_t rulesReloaded = 0;  // reloads taken since start
  uint64_t rulesRejected = 0;
  double certificateNotAfterSeconds = 0;  // Unix time
  uint64_t certificateReloaded = 0;
  uint64_t certificateRejected = 0;
  bool draining = false;     // SIGTERM came: listeners closed, flows finishing
  uint64_t drainResets = 0;  // flows reset at the drain deadline (or by a second signal)
};

std::vector<prometheus::MetricFamily> daemonFamilies(const DaemonFacts& facts);

}  // namespace sluice
