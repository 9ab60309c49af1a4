#include "pod_identity.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <regex>

#include "bpf_pins.h"

namespace sluice {
namespace {

// FILEID_KERNFS: a cgroup2 file handle is its 64-bit cgroup id.
constexpr int kKernfsHandleType = 0xfe;

}  // namespace

std::optional<std::string> podUidFromCgroupPath(const std::string& path) {
  static const std::regex uid(
      "pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})(\\.slice)?(/|$)");
  std::optional<std::string> found;
  for (auto it = std::sregex_iterator(path.begin(), path.end(), uid); it != std::sregex_iterator(); ++it) {
    found = (*it)[1].str();
  }
  if (!found) return std::nullopt;
  std::replace(found->begin(), found->end(), '_', '-');
  std::transform(found->begin(), found->end(), found->begin(), [](unsigned char c) { return std::tolower(c); });
  return found;
}

PodDirectory::PodDirectory() {
  try {
    mount_.reset(::open(cgroup2Mount().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  } catch (const std::exception& e) {
    spdlog::warn("pod identity unavailable: {}", e.what());
  }
}

std::string PodDirectory::describe(uint64_t cgroupId) {
  auto uid = podUid(cgroupId);
  return "cgroup=" + std::to_string(cgroupId) + " pod=" + (uid ? *uid : "-");
}

std::optional<std::string> PodDirectory::podUid(uint64_t cgroupId) {
  if (auto it = index_.find(cgroupId); it != index_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }
  auto uid = lookup(cgroupId);
  order_.emplace_front(cgroupId, uid);
  index_[cgroupId] = order_.begin();
  if (order_.size() > kCapacity) {
    index_.erase(order_.back().first);
    order_.pop_back();
  }
  return uid;
}

std::optional<std::string> PodDirectory::lookup(uint64_t cgroupId) {
  if (!mount_ || cgroupId == 0) return std::nullopt;
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + sizeof(uint64_t)];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = sizeof(uint64_t);
  handle->handle_type = kKernfsHandleType;
  std::memcpy(handle->f_handle, &cgroupId, sizeof(cgroupId));
  UniqueFd dir(open_by_handle_at(mount_.get(), handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == EPERM && !warned_) {
      warned_ = true;
      spdlog::warn("pod identity unavailable: open_by_handle_at needs CAP_DAC_READ_SEARCH; logs show pod=-");
    }
    return std::nullopt;  // ESTALE: the cgroup is gone
  }
  char path[4096];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(dir.get())).c_str(), path, sizeof(path) - 1);
  if (n <= 0) return std::nullopt;
  return podUidFromCgroupPath(std::string(path, static_cast<size_t>(n)));
}

}  // namespace sluice
