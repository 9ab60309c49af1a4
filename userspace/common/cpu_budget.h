// How many worker loops "one per core" means: the CPUs the process may run on (its
// affinity mask: a cpuset, taskset, a CPU manager's exclusive cores), capped by a cgroup
// v2 CPU limit (cpu.max, as a container's resources.limits.cpu sets it) on its cgroup or
// an ancestor, rounded up. A loop per online core would spread one core's worth of quota
// over many threads that wake each other for a share of it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice {

// cpu.max's "QUOTA PERIOD" as cores (150000 100000 -> 1.5); nullopt for "max ..." (no
// limit) or anything else.
std::optional<double> parseCpuMax(const std::string& text);

// `affinityCpus` capped by the smallest limit among `cpuMaxTexts` (rounded up); at least 1.
unsigned cpuBudget(unsigned affinityCpus, const std::vector<std::string>& cpuMaxTexts);

// Where the process's cgroup is, from /proc/self/mountinfo and /proc/self/cgroup: the
// cgroup2 mount point, and the cgroup's directory (the mount point joined with the cgroup
// path below the mount's root). nullopt when there is no cgroup2 mount or the cgroup is
// not under it.
struct CgroupLocation {
  std::string mountPoint;
  std::string dir;
};
std::optional<CgroupLocation> ownCgroup(const std::string& mountinfo, const std::string& procCgroup);

// cpuBudget of this process: its affinity mask and the cpu.max of its cgroup and every
// ancestor up to the mount point.
unsigned usableCpus();

}  // namespace sluice
