#include "kernel_features.h"

#include <array>
#include <cstdio>

namespace sluice {
namespace {

using enum KernelFeatureId;

// First releases from the kernel's own history (uapi/linux/bpf.h and net/core/filter.c
// at each tag); docs.kernel.org and docs.ebpf.io give the same.
constexpr std::array kFeatures{
    KernelFeature{Btf, "kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y), for CO-RE", "5.4"},
    KernelFeature{CgroupConnectHooks, "cgroup/connect4 and connect6 hooks (BPF_PROG_TYPE_CGROUP_SOCK_ADDR)", "4.17"},
    KernelFeature{CgroupSendmsgHooks, "cgroup/sendmsg4 and sendmsg6 hooks", "4.18"},
    KernelFeature{CgroupGetpeernameHooks, "cgroup/getpeername4 and getpeername6 hooks", "5.8"},
    KernelFeature{SockOps, "sockops programs (BPF_PROG_TYPE_SOCK_OPS)", "4.13"},
    KernelFeature{SkStorageMap, "socket storage maps (BPF_MAP_TYPE_SK_STORAGE)", "5.2"},
    KernelFeature{SkStorageInSockAddr, "bpf_sk_storage_get in cgroup/connect and sendmsg programs", "5.3"},
    KernelFeature{SkStorageInSockOps, "bpf_sk_storage_get in sockops programs", "5.3"},
    KernelFeature{LpmTrie, "longest-prefix-match maps (BPF_MAP_TYPE_LPM_TRIE)", "4.11"},
    KernelFeature{CgroupBpfLink, "bpf_link for cgroup hooks (BPF_LINK_CREATE, BPF_LINK_UPDATE)", "5.7"},
    KernelFeature{BpfLinkDetach, "detaching a pinned bpf_link (BPF_LINK_DETACH)", "5.9"},
    KernelFeature{NetnsCookieInSockAddr, "bpf_get_netns_cookie in cgroup/connect and sendmsg programs", "5.7"},
    KernelFeature{AncestorCgroupInSockAddr,
                  "bpf_get_current_ancestor_cgroup_id in cgroup/connect and sendmsg programs (exempt cgroups)", "5.7"},
    KernelFeature{SoNetnsCookie, "getsockopt(SO_NETNS_COOKIE)", "5.14"},
};

// Parses the leading "MAJOR.MINOR" of a release; false if there is none.
bool majorMinor(const std::string& release, int& major, int& minor) {
  return std::sscanf(release.c_str(), "%d.%d", &major, &minor) == 2;
}

}  // namespace

std::span<const KernelFeature> kernelFeatures() {
  return kFeatures;
}

int compareKernelRelease(const std::string& a, const std::string& b) {
  int aMajor = -1, aMinor = -1, bMajor = -1, bMinor = -1;
  majorMinor(a, aMajor, aMinor);
  majorMinor(b, bMajor, bMinor);
  if (aMajor != bMajor) return aMajor < bMajor ? -1 : 1;
  if (aMinor != bMinor) return aMinor < bMinor ? -1 : 1;
  return 0;
}

std::string kernelFloor() {
  std::string floor = "0.0";
  for (const auto& f : kFeatures) {
    if (compareKernelRelease(f.firstKernel, floor) > 0) floor = f.firstKernel;
  }
  return floor;
}

std::string missingFeaturesMessage(const std::vector<KernelFeature>& missing, const std::string& running) {
  std::string text = "kernel " + running + " lacks what sluice needs:";
  for (const auto& f : missing) text += std::string("\n  - ") + f.what + " (Linux " + f.firstKernel + " and later)";
  text += "\nsluice needs Linux " + kernelFloor() + " or later with BTF; nothing was loaded or attached";
  return text;
}

std::vector<KernelFeature> missingKernelFeatures(const std::function<bool(const KernelFeature&)>& present) {
  std::vector<KernelFeature> missing;
  for (const auto& f : kFeatures) {
    if (!present(f)) missing.push_back(f);
  }
  return missing;
}

}  // namespace sluice
