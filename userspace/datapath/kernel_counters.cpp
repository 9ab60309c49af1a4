#include "kernel_counters.h"

#include <bpf/libbpf.h>

#include "typed_map.h"

namespace sluice {

KernelCounters readKernelCounters(const PinLayout& pins) {
  KernelCounters out;
  const int cpus = libbpf_num_possible_cpus();
  auto stats = TypedMap<__u32, __u64>::openPinned(pins.map("sl_stats"));
  for (__u32 i = 0; i < SL_STAT_COUNT; ++i) {
    for (__u64 v : stats.lookupPerCpu(i, cpus)) out.node[i] += v;
  }
  auto perCgroup = TypedMap<__u64, sl_cgroup_stats>::openPinned(pins.map("sl_cg_stats"));
  for (__u64 id : perCgroup.keys()) {
    StatCounts counts{};
    for (const auto& v : perCgroup.lookupPerCpu(id, cpus)) {
      for (__u32 i = 0; i < SL_STAT_COUNT; ++i) counts[i] += v.count[i];
    }
    out.perCgroup[id] = counts;
  }
  out.handoffEntries = TypedMap<sl_endpoint, sl_orig_dst>::openPinned(pins.map("sl_orig_dst")).keys().size();
  return out;
}

}  // namespace sluice
