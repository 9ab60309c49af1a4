// Which pod a connection came from: the cgroup id the kernel recorded, turned into its
// cgroup path (open_by_handle_at on the cgroup2 mount; needs CAP_DAC_READ_SEARCH) and
// from the path the pod UID the kubelet put there, for both cgroup drivers:
//   cgroupfs  /kubepods/burstable/pod1b4e28ba-2fa1-11d2-883f-0016d3cca427/<container>
//   systemd   /kubepods.slice/kubepods-burstable.slice/
//             kubepods-burstable-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice/cri-...scope
#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include "fd.h"

namespace sluice {

// The pod UID (dashed, lower case) in a cgroup path, the innermost one; none if absent.
std::optional<std::string> podUidFromCgroupPath(const std::string& path);

class PodDirectory {
 public:
  // Opens the cgroup2 mount; without it (or without the capability) every lookup says
  // "unknown", once logged, and connections are not affected.
  PodDirectory();
  // "cgroup=ID pod=UID" or "cgroup=ID pod=-", for log lines.
  std::string describe(uint64_t cgroupId);
  std::optional<std::string> podUid(uint64_t cgroupId);

 private:
  std::optional<std::string> lookup(uint64_t cgroupId);

  UniqueFd mount_;
  bool warned_ = false;
  // Bounded LRU: pods come and go, the agent runs for months.
  static constexpr size_t kCapacity = 4096;
  std::list<std::pair<uint64_t, std::optional<std::string>>> order_;
  std::unordered_map<uint64_t, decltype(order_)::iterator> index_;
};

}  // namespace sluice
