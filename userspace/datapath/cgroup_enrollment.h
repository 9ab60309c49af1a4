// Enabling sluice for a cgroup = attaching the pinned programs to it with bpf_links that
// are pinned under <pin dir>/links/<cgroup id>/, so they outlive the process that made
// them (agent or sluicectl) and an agent restart can adopt them.
//
// Why attach per cgroup rather than once at the root with a map of enabled cgroup ids:
// the kernel already computes effective programs for every descendant cgroup, so
// containers created later inside an enabled pod cgroup are covered with no work of
// ours, and cgroups that are not enabled run no sluice code at all on connect(). A
// root attachment would put a map lookup on every connect() of the whole node and need
// an ancestor walk per call to cover nested cgroups.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bpf_pins.h"

namespace sluice {

struct EnrolledCgroup {
  uint64_t id = 0;
  std::filesystem::path path;  // empty if the cgroup no longer exists
  std::vector<std::string> programs;
};

class CgroupEnrollment {
 public:
  explicit CgroupEnrollment(PinLayout pins) : pins_(std::move(pins)) {}

  // Attaches every program pinned under progs/ to the cgroup. Returns false if it was
  // already enabled. Throws with the reason; on failure nothing is left attached.
  bool enable(const std::filesystem::path& cgroupDir);
  // Detaches and unpins the cgroup's links. Returns false if it was not enabled.
  bool disable(uint64_t cgroupId);
  // Enabled cgroups; entries under links/ that are not a cgroup id directory are skipped
  // (see strayEntries).
  std::vector<EnrolledCgroup> list() const;
  // Entries under links/ sluice did not make (a stray name, a file): reported, never fatal.
  std::vector<std::filesystem::path> strayEntries() const;
  // Removes the link pins of cgroups that no longer exist (the kernel detached their
  // links when the cgroup went); returns the ids reaped.
  std::vector<uint64_t> reapRemoved() const;
  // Programs on the cgroup's hooks that are not sluice's (another agent, a CNI, systemd):
  // they run too, before or after ours, so an operator must know. One line each.
  std::vector<std::string> foreignPrograms(const std::filesystem::path& cgroupDir) const;
  // Points every existing link at the currently pinned programs (agent restart): the
  // swap is atomic per link, so there is no moment without the redirect.
  void adoptLinks() const;

 private:
  // The cgroup id a links/ entry names, if it is one of ours.
  static std::optional<uint64_t> linkDirId(const std::filesystem::directory_entry& entry);

  PinLayout pins_;
};

}  // namespace sluice
