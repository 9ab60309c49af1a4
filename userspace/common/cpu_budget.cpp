#include "cpu_budget.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice {
namespace fs = std::filesystem;

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
    auto cores = parseCpuMax(text);
    // Compared as a double first: a quota of more cores than `unsigned` holds is no cap.
    if (cores && std::ceil(*cores) < static_cast<double>(budget)) budget = static_cast<unsigned>(std::ceil(*cores));
  }
  return std::max(1u, budget);
}

namespace {

// mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
std::string unescapeMountPath(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(text[i + 2])) &&
        std::isdigit(static_cast<unsigned char>(text[i + 3]))) {
      out.push_back(static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string readAll(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

unsigned affinityCpus() {
  // A fixed cpu_set_t holds 1024 CPUs; a bigger machine needs a bigger set (EINVAL).
  for (int cpus = CPU_SETSIZE; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (!set) break;
    const size_t size = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(size, set);
    const int rc = sched_getaffinity(0, size, set);
    const unsigned count = rc == 0 ? static_cast<unsigned>(CPU_COUNT_S(size, set)) : 0;
    CPU_FREE(set);
    if (rc == 0) return count;
    if (errno != EINVAL) break;
  }
  return std::thread::hardware_concurrency();
}

}  // namespace

std::vector<CgroupLocation> cgroupCandidates(const std::string& mountinfo, const std::string& procCgroup) {
  std::vector<CgroupLocation> found;
  // cgroup v2's line in /proc/self/cgroup: "0::/PATH".
  std::optional<std::string> path;
  std::istringstream cgroups(procCgroup);
  for (std::string line; std::getline(cgroups, line);) {
    if (line.rfind("0::/", 0) == 0) path = line.substr(3);
  }
  if (!path) return found;
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
  std::istringstream mounts(mountinfo);
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mountPoint, field, fsType;
    if (!(fields >> id >> parent >> device >> root >> mountPoint)) continue;
    while (fields >> field && field != "-") {
    }
    if (!(fields >> fsType) || fsType != "cgroup2") continue;
    root = unescapeMountPath(root);
    mountPoint = unescapeMountPath(mountPoint);
    const fs::path below = fs::path(*path).lexically_relative(root);
    if (below.empty() || *below.begin() == "..") continue;  // the cgroup is not under this mount
    std::string dir = (fs::path(mountPoint) / below).lexically_normal().string();
    if (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
    found.insert(found.begin(), CgroupLocation{mountPoint, dir});
  }
  return found;
}

bool cgroupHolds(const std::string& dir, pid_t pid) {
  std::ifstream procs(fs::path(dir) / "cgroup.procs");
  for (pid_t listed; procs >> listed;) {
    if (listed == pid) return true;
  }
  return false;
}

std::vector<std::string> cgroupCpuLimits(const CgroupLocation& location) {
  std::vector<std::string> limits;
  // Up to the mount point and no further: above it is not this hierarchy. (The root
  // cgroup has no cpu.max; a container's namespace root, its own cgroup, has one.)
  const fs::path mount(location.mountPoint);
  for (fs::path at(location.dir);; at = at.parent_path()) {
    std::error_code ec;
    if (fs::exists(at / "cpu.max", ec)) limits.push_back(readAll(at / "cpu.max"));
    if (at == mount || at == at.parent_path()) break;
  }
  return limits;
}

unsigned usableCpus() {
  std::vector<std::string> limits;
  for (const auto& candidate : cgroupCandidates(readAll("/proc/self/mountinfo"), readAll("/proc/self/cgroup"))) {
    if (cgroupHolds(candidate.dir, getpid())) {
      limits = cgroupCpuLimits(candidate);
      break;
    }
  }
  return cpuBudget(affinityCpus(), limits);
}

}  // namespace sluice
