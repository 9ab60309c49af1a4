#include "cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice {

std::optional<double> parseCpuMax(const std::string& text) {
  std::istringstream in(text);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || period <= 0 || quota == "max") return std::nullopt;
  try {
    size_t used = 0;
    const long long q = std::stoll(quota, &used);
    if (used != quota.size() || q <= 0) return std::nullopt;
    return static_cast<double>(q) / static_cast<double>(period);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

unsigned cpuBudget(unsigned affinityCpus, const std::vector<std::string>& cpuMaxTexts) {
  unsigned budget = std::max(1u, affinityCpus);
  for (const auto& text : cpuMaxTexts) {
    if (auto cores = parseCpuMax(text)) budget = std::min(budget, static_cast<unsigned>(std::ceil(*cores)));
  }
  return std::max(1u, budget);
}

std::optional<CgroupLocation> ownCgroup(const std::string& mountinfo, const std::string& procCgroup) {
  // cgroup v2's line in /proc/self/cgroup: "0::/PATH".
  std::optional<std::string> path;
  std::istringstream cgroups(procCgroup);
  for (std::string line; std::getline(cgroups, line);) {
    if (line.rfind("0::/", 0) == 0) path = line.substr(3);
  }
  if (!path) return std::nullopt;
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
  std::istringstream mounts(mountinfo);
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mountPoint, field, fsType;
    if (!(fields >> id >> parent >> device >> root >> mountPoint)) continue;
    while (fields >> field && field != "-") {
    }
    if (!(fields >> fsType) || fsType != "cgroup2") continue;
    const std::filesystem::path rootPath(root), cgroupPath(*path);
    const std::filesystem::path below = cgroupPath.lexically_relative(rootPath);
    if (below.empty() || *below.begin() == "..") continue;  // the cgroup is not under this mount
    std::filesystem::path dir = (std::filesystem::path(mountPoint) / below).lexically_normal();
    std::string text = dir.string();
    if (text.size() > 1 && text.ends_with('/')) text.pop_back();
    return CgroupLocation{mountPoint, text};
  }
  return std::nullopt;
}

namespace {

std::string readAll(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

unsigned affinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::thread::hardware_concurrency();
}

}  // namespace

unsigned usableCpus() {
  std::vector<std::string> limits;
  if (auto cgroup = ownCgroup(readAll("/proc/self/mountinfo"), readAll("/proc/self/cgroup"))) {
    // Up to the mount point and no further: above it is not this hierarchy. (The root
    // cgroup has no cpu.max; a container's namespace root, its own cgroup, has one.)
    const std::filesystem::path mount(cgroup->mountPoint);
    for (std::filesystem::path at(cgroup->dir);; at = at.parent_path()) {
      std::error_code ec;
      if (std::filesystem::exists(at / "cpu.max", ec)) limits.push_back(readAll(at / "cpu.max"));
      if (at == mount || at == at.parent_path()) break;
    }
  }
  return cpuBudget(affinityCpus(), limits);
}

}  // namespace sluice
