#include "kernel_features.h"

#include <gtest/gtest.h>

#include <set>

namespace sluice {
namespace {

TEST(KernelFeatures, FloorIsTheNewestFirstKernel) {
  // SO_NETNS_COOKIE (5.14) is the newest thing sluice uses.
  EXPECT_EQ(kernelFloor(), "5.14");
  for (const auto& f : kernelFeatures()) EXPECT_LE(compareKernelRelease(f.firstKernel, kernelFloor()), 0) << f.what;
}

TEST(KernelFeatures, EveryFeatureIsListedOnceWithARelease) {
  std::set<KernelFeatureId> ids;
  for (const auto& f : kernelFeatures()) {
    EXPECT_TRUE(ids.insert(f.id).second) << f.what;
    EXPECT_GT(compareKernelRelease(f.firstKernel, "4.0"), 0) << f.what;
  }
  EXPECT_EQ(ids.size(), 14u);
}

TEST(KernelFeatures, ReleasesCompareByMajorAndMinor) {
  EXPECT_LT(compareKernelRelease("5.9", "5.14"), 0);  // numerically, not as text
  EXPECT_GT(compareKernelRelease("6.1.0-56-amd64", "5.14"), 0);
  EXPECT_EQ(compareKernelRelease("5.14.21-150500.55-default", "5.14"), 0);
  EXPECT_GT(compareKernelRelease("6.18.44-fc-v669", "6.1.0-56-amd64"), 0);
  EXPECT_LT(compareKernelRelease("garbage", "4.13"), 0);
}

TEST(KernelFeatures, MissingOnesAreThoseTheProbeDenies) {
  auto missing = missingKernelFeatures([](const KernelFeature& f) {
    return f.id != KernelFeatureId::CgroupGetpeernameHooks && f.id != KernelFeatureId::SoNetnsCookie;
  });
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0].id, KernelFeatureId::CgroupGetpeernameHooks);
  EXPECT_EQ(missing[1].id, KernelFeatureId::SoNetnsCookie);
  EXPECT_TRUE(missingKernelFeatures([](const KernelFeature&) { return true; }).empty());
}

TEST(KernelFeatures, RefusalNamesEachMissingFeatureItsKernelAndTheFloor) {
  auto missing = missingKernelFeatures([](const KernelFeature& f) {
    return f.id != KernelFeatureId::CgroupGetpeernameHooks && f.id != KernelFeatureId::SoNetnsCookie;
  });
  EXPECT_EQ(missingFeaturesMessage(missing, "5.4.0-150-generic"),
            "kernel 5.4.0-150-generic lacks what sluice needs:\n"
            "  - cgroup/getpeername4 and getpeername6 hooks (Linux 5.8 and later)\n"
            "  - getsockopt(SO_NETNS_COOKIE) (Linux 5.14 and later)\n"
            "sluice needs Linux 5.14 or later with BTF; nothing was loaded or attached");
}

}  // namespace
}  // namespace sluice
