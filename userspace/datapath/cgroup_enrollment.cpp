#include "cgroup_enrollment.h"

#include <bpf/bpf.h>
#include <fcntl.h>

#include <cerrno>
#include <optional>
#include <stdexcept>

#include "fd.h"

namespace sluice {

static UniqueFd openPinned(const std::filesystem::path& pin) {
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) throw std::runtime_error("opening pin " + pin.string() + ": " + errnoText(errno));
  return UniqueFd(fd);
}

bool CgroupEnrollment::enable(const std::filesystem::path& cgroupDir) {
  const uint64_t id = cgroupId(cgroupDir);
  const auto linkDir = pins_.cgroupLinks(id);
  if (std::filesystem::exists(linkDir)) return false;
  UniqueFd cgroup(open(cgroupDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup) throw std::runtime_error("opening cgroup " + cgroupDir.string() + ": " + errnoText(errno));
  std::filesystem::create_directories(linkDir);
  try {
    for (const auto& hook : kProgramHooks) {
      UniqueFd program = openPinned(pins_.program(hook.name));
      UniqueFd link(
          bpf_link_create(program.get(), cgroup.get(), static_cast<bpf_attach_type>(hook.attachType), nullptr));
      if (!link) {
        throw std::runtime_error("attaching " + std::string(hook.name) + " to " + cgroupDir.string() + ": " +
                                 errnoText(errno));
      }
      const auto pin = linkDir / hook.name;
      if (bpf_obj_pin(link.get(), pin.c_str()) != 0) {
        int err = errno;
        bpf_link_detach(link.get());
        throw std::runtime_error("pinning link " + pin.string() + ": " + errnoText(err));
      }
    }
  } catch (...) {
    disable(id);
    throw;
  }
  return true;
}

bool CgroupEnrollment::disable(uint64_t id) {
  const auto linkDir = pins_.cgroupLinks(id);
  if (!std::filesystem::exists(linkDir)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(linkDir)) {
    int fd = bpf_obj_get(entry.path().c_str());
    if (fd >= 0) {
      // Detach explicitly: other holders of the link (none expected) must not keep it.
      bpf_link_detach(fd);
      close(fd);
    }
    std::filesystem::remove(entry.path());
  }
  std::filesystem::remove(linkDir);
  return true;
}

std::optional<uint64_t> CgroupEnrollment::linkDirId(const std::filesystem::directory_entry& entry) {
  const std::string name = entry.path().filename().string();
  if (!entry.is_directory() || name.empty() || name.size() > 20) return std::nullopt;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  try {
    return std::stoull(name);
  } catch (const std::out_of_range&) {
    return std::nullopt;
  }
}

std::vector<std::filesystem::path> CgroupEnrollment::strayEntries() const {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::exists(pins_.linksDir())) return out;
  for (const auto& entry : std::filesystem::directory_iterator(pins_.linksDir())) {
    if (!linkDirId(entry)) out.push_back(entry.path());
  }
  return out;
}

std::vector<uint64_t> CgroupEnrollment::reapRemoved() const {
  std::vector<uint64_t> reaped;
  if (!std::filesystem::exists(pins_.linksDir())) return reaped;
  for (const auto& entry : std::filesystem::directory_iterator(pins_.linksDir())) {
    auto id = linkDirId(entry);
    if (!id) continue;
    // The kernel auto-detaches a cgroup link when its cgroup is released; the link then
    // reports cgroup id 0. A directory with no readable link is one a crash left half made.
    bool alive = false;
    for (const auto& link : std::filesystem::directory_iterator(entry.path())) {
      UniqueFd fd(bpf_obj_get(link.path().c_str()));
      bpf_link_info info{};
      __u32 length = sizeof(info);
      if (fd && bpf_obj_get_info_by_fd(fd.get(), &info, &length) == 0 && info.cgroup.cgroup_id != 0) alive = true;
    }
    if (alive) continue;
    std::filesystem::remove_all(entry.path());
    reaped.push_back(*id);
  }
  return reaped;
}

std::vector<EnrolledCgroup> CgroupEnrollment::list() const {
  std::vector<EnrolledCgroup> out;
  if (!std::filesystem::exists(pins_.linksDir())) return out;
  for (const auto& dir : std::filesystem::directory_iterator(pins_.linksDir())) {
    auto id = linkDirId(dir);
    if (!id) continue;
    EnrolledCgroup cgroup;
    cgroup.id = *id;
    cgroup.path = findCgroupById(cgroup.id);
    for (const auto& link : std::filesystem::directory_iterator(dir.path())) {
      cgroup.programs.push_back(link.path().filename().string());
    }
    out.push_back(std::move(cgroup));
  }
  return out;
}

std::vector<std::string> CgroupEnrollment::foreignPrograms(const std::filesystem::path& cgroupDir) const {
  std::vector<std::string> out;
  UniqueFd cgroup(open(cgroupDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup) return out;
  for (const auto& hook : kProgramHooks) {
    UniqueFd ours(bpf_obj_get(pins_.program(hook.name).c_str()));
    bpf_prog_info ourInfo{};
    __u32 length = sizeof(ourInfo);
    if (ours) bpf_obj_get_info_by_fd(ours.get(), &ourInfo, &length);
    __u32 ids[64];
    __u32 count = 64;
    __u32 flags = 0;
    if (bpf_prog_query(cgroup.get(), static_cast<bpf_attach_type>(hook.attachType), 0, &flags, ids, &count) != 0) {
      continue;
    }
    for (__u32 i = 0; i < count; ++i) {
      if (ids[i] == ourInfo.id) continue;
      UniqueFd other(bpf_prog_get_fd_by_id(ids[i]));
      bpf_prog_info info{};
      length = sizeof(info);
      std::string name = "?";
      if (other && bpf_obj_get_info_by_fd(other.get(), &info, &length) == 0) name = info.name;
      out.push_back(std::string(hook.name) + " hook: program id " + std::to_string(ids[i]) + " '" + name +
                    "' is attached too");
    }
  }
  return out;
}

void CgroupEnrollment::adoptLinks() const {
  if (!std::filesystem::exists(pins_.linksDir())) return;
  for (const auto& dir : std::filesystem::directory_iterator(pins_.linksDir())) {
    auto id = linkDirId(dir);
    if (!id) continue;  // stray: reported by strayEntries, never adopted
    std::optional<UniqueFd> cgroup;
    for (const auto& hook : kProgramHooks) {
      const auto linkPin = dir.path() / hook.name;
      UniqueFd program = openPinned(pins_.program(hook.name));
      if (std::filesystem::exists(linkPin)) {
        UniqueFd link = openPinned(linkPin);
        if (bpf_link_update(link.get(), program.get(), nullptr) != 0) {
          throw std::runtime_error("updating link " + linkPin.string() + ": " + errnoText(errno));
        }
        continue;
      }
      // A hook this agent has and the one that enabled the cgroup had not: attach it.
      if (!cgroup) {
        auto path = findCgroupById(*id);
        if (path.empty()) break;  // the cgroup is gone; its links went with it
        cgroup.emplace(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!*cgroup) throw std::runtime_error("opening cgroup " + path.string() + ": " + errnoText(errno));
      }
      UniqueFd link(
          bpf_link_create(program.get(), cgroup->get(), static_cast<bpf_attach_type>(hook.attachType), nullptr));
      if (!link || bpf_obj_pin(link.get(), linkPin.c_str()) != 0) {
        throw std::runtime_error("attaching " + std::string(hook.name) + " for " + dir.path().string() + ": " +
                                 errnoText(errno));
      }
    }
  }
}

}  // namespace sluice
