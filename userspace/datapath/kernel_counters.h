// The kernel's counters as userspace reads them from the pinned maps: the node totals
// (sl_stats), the same per cgroup (sl_cg_stats) and the hand-off map's occupancy.
// Read at scrape time (metrics) and by `sluicectl status`; only syscalls, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>

#include "bpf_pins.h"
#include "sluice_abi.h"

namespace sluice {

using StatCounts = std::array<uint64_t, SL_STAT_COUNT>;

struct KernelCounters {
  StatCounts node{};
  std::map<uint64_t, StatCounts> perCgroup;  // cgroup id -> counts (summed over CPUs)
  uint64_t handoffEntries = 0;               // flows waiting for the agent (sl_orig_dst)
  uint64_t handoffCapacity = SL_MAX_PENDING_FLOWS;
};

// Throws if the maps are not pinned under `pins.dir`.
KernelCounters readKernelCounters(const PinLayout& pins);

}  // namespace sluice
