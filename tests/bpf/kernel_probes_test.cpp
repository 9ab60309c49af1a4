// The agent's kernel feature probes on the running kernel (the host's, and in the vm tier
// Debian 12's 6.1): every feature sluice needs is found, so the agent starts.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include "kernel_features.h"

namespace sluice {
namespace {

TEST(KernelProbes, EveryNeededFeatureIsPresentOnThisKernel) {
  ASSERT_EQ(geteuid(), 0u) << "the probes load BPF programs and need root; CI runs this as root";
  for (const auto& f : kernelFeatures())
    EXPECT_TRUE(kernelHasFeature(f)) << f.what << " (Linux " << f.firstKernel << ")";
  EXPECT_NO_THROW(requireKernelFeatures());
}

// The helper probe can say no: the verifier's refusal is recognised on this kernel's wording.
TEST(KernelProbes, AHelperTheHookCannotUseIsReportedMissing) {
  EXPECT_FALSE(kernelHasHelper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, BPF_FUNC_xdp_adjust_head));
  EXPECT_TRUE(kernelHasHelper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, BPF_FUNC_get_netns_cookie));
}

TEST(KernelProbes, ThisKernelIsAtLeastTheFloor) {
  EXPECT_GE(compareKernelRelease(requireKernelFeatures(), kernelFloor()), 0);
}

}  // namespace
}  // namespace sluice
