#include "bpf_pins.h"

#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace sluice {

const std::array<ProgramHook, 7> kProgramHooks = {{
    {"sl_connect4", BPF_CGROUP_INET4_CONNECT},
    {"sl_connect6", BPF_CGROUP_INET6_CONNECT},
    {"sl_sendmsg4", BPF_CGROUP_UDP4_SENDMSG},
    {"sl_sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
    {"sl_sockops", BPF_CGROUP_SOCK_OPS},
    {"sl_getpeername4", BPF_CGROUP_INET4_GETPEERNAME},
    {"sl_getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
}};

std::string errnoText(int err) {
  return std::strerror(err < 0 ? -err : err);
}

void ensureBpffs(const std::filesystem::path& pinDir) {
  const std::filesystem::path bpffs = "/sys/fs/bpf";
  struct statfs fs {};
  if (statfs(bpffs.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
    std::filesystem::create_directories(bpffs);
    if (mount("bpf", bpffs.c_str(), "bpf", 0, "mode=0700") != 0) {
      throw std::runtime_error("mounting bpffs at " + bpffs.string() + ": " + errnoText(errno));
    }
  }
  std::filesystem::create_directories(pinDir);
  if (statfs(pinDir.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
    throw std::runtime_error("pin directory " + pinDir.string() + " is not on bpffs");
  }
}

std::filesystem::path cgroup2Mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mountPoint, type;
    fields >> device >> mountPoint >> type;
    if (type == "cgroup2") return mountPoint;
  }
  throw std::runtime_error("no cgroup2 filesystem in /proc/mounts: sluice needs cgroup v2");
}

std::filesystem::path findKubepodsCgroup(const std::filesystem::path& root) {
  for (const char* name : {"kubepods.slice", "kubepods"}) {
    if (std::filesystem::exists(root / name / "cgroup.procs")) return root / name;
  }
  throw std::runtime_error("no kubelet pod cgroup: neither " + (root / "kubepods.slice").string() + " nor " +
                           (root / "kubepods").string() + " exists (is the kubelet running on cgroup v2?)");
}

std::filesystem::path resolveCgroup(const std::string& name) {
  const auto root = cgroup2Mount();
  std::filesystem::path path = name;
  if (path.is_absolute() && !name.starts_with(root.string())) {
    path = root / path.relative_path();
  } else if (path.is_relative()) {
    path = root / path;
  }
  std::error_code ec;
  auto canonical = std::filesystem::canonical(path, ec);
  if (ec) throw std::runtime_error("cgroup " + path.string() + ": " + ec.message());
  auto rel = canonical.lexically_relative(root);
  if (rel.empty() || rel.begin()->string() == "..") {
    throw std::runtime_error("cgroup " + canonical.string() + " is outside the cgroup2 mount " + root.string());
  }
  if (!std::filesystem::exists(canonical / "cgroup.procs")) {
    throw std::runtime_error(canonical.string() + " is not a cgroup directory");
  }
  return canonical;
}

uint64_t cgroupId(const std::filesystem::path& cgroupDir) {
  struct stat st {};
  if (stat(cgroupDir.c_str(), &st) != 0) {
    throw std::runtime_error("stat " + cgroupDir.string() + ": " + errnoText(errno));
  }
  return st.st_ino;
}

std::filesystem::path findCgroupById(uint64_t id) {
  std::error_code ec;
  const auto root = cgroup2Mount();
  if (cgroupId(root) == id) return root;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    struct stat st {};
    if (stat(it->path().c_str(), &st) == 0 && st.st_ino == id) return it->path();
  }
  return {};
}

}  // namespace sluice
