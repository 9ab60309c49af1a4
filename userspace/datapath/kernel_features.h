// What sluice needs from the kernel, the first mainline release that has each, and a
// check the agent runs before loading anything, so an old kernel is refused with a
// sentence naming what is missing instead of a verifier dump.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

namespace sluice {

enum class KernelFeatureId {
  Btf,
  CgroupConnectHooks,
  CgroupSendmsgHooks,
  CgroupGetpeernameHooks,
  SockOps,
  SkStorageMap,
  SkStorageInSockAddr,
  SkStorageInSockOps,
  LpmTrie,
  CgroupBpfLink,
  BpfLinkDetach,
  NetnsCookieInSockAddr,
  AncestorCgroupInSockAddr,
  SoNetnsCookie,
};

struct KernelFeature {
  KernelFeatureId id;
  const char* what;         // names the feature as the kernel documents it
  const char* firstKernel;  // first mainline release with it, "MAJOR.MINOR"
};

// Every feature sluice uses, in the order they are checked.
std::span<const KernelFeature> kernelFeatures();

// The oldest kernel sluice runs on: the newest firstKernel in the table.
std::string kernelFloor();

// Compares "MAJOR.MINOR[.PATCH][-suffix]" release strings by major and minor only.
// Returns <0, 0 or >0. A string that does not start with MAJOR.MINOR sorts lowest.
int compareKernelRelease(const std::string& a, const std::string& b);

// The refusal: the running release, each missing feature with the kernel that has it,
// and the floor. `missing` must not be empty.
std::string missingFeaturesMessage(const std::vector<KernelFeature>& missing, const std::string& runningRelease);

// The features for which `present` returns false.
std::vector<KernelFeature> missingKernelFeatures(const std::function<bool(const KernelFeature&)>& present);

// Probes this kernel with real syscalls (trivial programs loaded and unloaded, a map
// created and closed, a getsockopt); nothing is attached. Needs CAP_BPF.
bool kernelHasFeature(const KernelFeature& feature);

// Whether programs of PROG_TYPE (enum bpf_prog_type, loaded for EXPECTED_ATTACH_TYPE) may
// call HELPER_ID (enum bpf_func_id), from the verifier's answer. Needs CAP_BPF.
bool kernelHasHelper(int progType, int expectedAttachType, int helperId);

// uname -r.
std::string runningKernelRelease();

// Probes every feature; throws std::runtime_error with missingFeaturesMessage if any is
// missing. Returns the running release.
std::string requireKernelFeatures();

}  // namespace sluice
