// How many worker loops "one per core" means: the CPUs the process may run on (its
// affinity mask: a cpuset, taskset, a CPU manager's exclusive cores), capped by a cgroup
// v2 CPU limit (cpu.max, as a container's resources.limits.cpu sets it) on its cgroup or
// an ancestor, rounded up. A loop per online core would spread one core's worth of quota
// over many threads that wake each other for a share of it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace sluice {

// cpu.max's "QUOTA PERIOD" as cores (150000 100000 -> 1.5); nullopt for "max ..." (no
// limit) or anything else.
std::optional<double> parseCpuMax(const std::string& text);

// `affinityCpus` capped by the smallest limit among `cpuMaxTexts` (rounded up); at least 1.
unsigned cpuBudget(unsigned affinityCpus, const std::vector<std::string>& cpuMaxTexts);

// Where the process's cgroup may be, from /proc/self/mountinfo and /proc/self/cgroup:
// for each cgroup2 mount whose root holds the cgroup, the mount point and the cgroup's
// directory under it; the last mount first (a later mount at the same point hides an
// earlier one, as a pod that mounts the host's tree over its own /sys/fs/cgroup does).
// Which one is really ours, cgroupHolds tells.
struct CgroupLocation {
  std::string mountPoint;
  std::string dir;
  bool operator==(const CgroupLocation&) const = default;
};
std::vector<CgroupLocation> cgroupCandidates(const std::string& mountinfo, const std::string& procCgroup);

// The cgroup directory lists `pid` in its cgroup.procs.
bool cgroupHolds(const std::string& dir, pid_t pid);

// The cpu.max texts of `location.dir` and each ancestor up to the mount point.
std::vector<std::string> cgroupCpuLimits(const CgroupLocation& location);

// cpuBudget of this process: its affinity mask and the cpu.max of its cgroup and every
// ancestor it can see. Inside a cgroup namespace whose view is replaced by the host's
// tree (the agent DaemonSet mounts it), the process cannot find its cgroup: no limit is
// applied, and --threads says how many loops.
unsigned usableCpus();

}  // namespace sluice
