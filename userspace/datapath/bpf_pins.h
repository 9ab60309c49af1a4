// Where sluice's kernel objects live: pins under bpffs, and the cgroup2 hierarchy.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include "sluice_abi.h"

namespace sluice {

inline const std::filesystem::path kDefaultPinDir = "/sys/fs/bpf/sluice";

// The programs and the cgroup hook each one is attached to.
struct ProgramHook {
  const char* name;  // as in bpf/sluice.bpf.c, also the pin and link file name
  int attachType;    // enum bpf_attach_type
};
extern const std::array<ProgramHook, 7> kProgramHooks;

// Pins: <dir>/sl_* maps, <dir>/progs/<program>, <dir>/links/<cgroup id>/<program>.
struct PinLayout {
  std::filesystem::path dir;
  std::filesystem::path map(const std::string& name) const { return dir / name; }
  std::filesystem::path program(const std::string& name) const { return dir / "progs" / name; }
  std::filesystem::path linksDir() const { return dir / "links"; }
  std::filesystem::path cgroupLinks(uint64_t cgroupId) const { return linksDir() / std::to_string(cgroupId); }
};

// Mounts bpffs at /sys/fs/bpf if the pin directory's filesystem is not bpffs, then
// creates the directory. Throws with the reason.
void ensureBpffs(const std::filesystem::path& pinDir);

// The cgroup v2 mount point, from /proc/mounts (not always /sys/fs/cgroup). Throws.
std::filesystem::path cgroup2Mount();

// A cgroup named relative to the cgroup2 mount (or absolute, under it). Throws if it
// does not exist or lies outside the hierarchy.
std::filesystem::path resolveCgroup(const std::string& name);

// The kubelet's pod parent under the cgroup2 mount: kubepods.slice (systemd driver) or
// kubepods (cgroupfs driver). Throws naming both if neither exists.
std::filesystem::path findKubepodsCgroup(const std::filesystem::path& cgroup2Root);

// On cgroup v2 the cgroup id is the directory's inode number.
uint64_t cgroupId(const std::filesystem::path& cgroupDir);

// The cgroup directory with this id, searched under the mount; empty if gone.
std::filesystem::path findCgroupById(uint64_t id);

std::string errnoText(int err);

}  // namespace sluice
