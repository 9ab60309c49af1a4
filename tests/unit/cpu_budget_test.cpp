// What "one worker loop per core" counts: the affinity mask, capped by cgroup v2 CPU limits.
#include "cpu_budget.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

namespace sluice {
namespace {

TEST(CpuBudgetTest, ParsesCpuMax) {
  EXPECT_EQ(parseCpuMax("max 100000"), std::nullopt);
  EXPECT_EQ(parseCpuMax("max 100000\n"), std::nullopt);
  EXPECT_DOUBLE_EQ(*parseCpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*parseCpuMax("50000 100000"), 0.5);
  EXPECT_EQ(parseCpuMax(""), std::nullopt);
  EXPECT_EQ(parseCpuMax("100000"), std::nullopt);
  EXPECT_EQ(parseCpuMax("12x 100000"), std::nullopt);
  EXPECT_EQ(parseCpuMax("100000 0"), std::nullopt);
  EXPECT_EQ(parseCpuMax("-5 100000"), std::nullopt);
}

TEST(CpuBudgetTest, LimitRoundsUpAndCapsAffinity) {
  EXPECT_EQ(cpuBudget(16, {}), 16u);
  EXPECT_EQ(cpuBudget(16, {"max 100000"}), 16u);
  EXPECT_EQ(cpuBudget(16, {"150000 100000"}), 2u);  // 1.5 cores: two loops, not one
  EXPECT_EQ(cpuBudget(16, {"50000 100000"}), 1u);
  EXPECT_EQ(cpuBudget(2, {"800000 100000"}), 2u);  // a limit above the mask changes nothing
  // The tightest of the cgroup and its ancestors wins, wherever it is.
  EXPECT_EQ(cpuBudget(16, {"max 100000", "400000 100000", "800000 100000"}), 4u);
  EXPECT_EQ(cpuBudget(0, {}), 1u);
}

constexpr const char* kHostMountinfo =
    "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
    "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    "31 25 0:27 / /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n";

TEST(CpuBudgetTest, FindsOwnCgroupOnTheHost) {
  auto at = ownCgroup(kHostMountinfo, "1:cpu:/x\n0::/kubepods.slice/pod1/cri-abc\n");
  ASSERT_TRUE(at);
  EXPECT_EQ(at->mountPoint, "/sys/fs/cgroup");
  EXPECT_EQ(at->dir, "/sys/fs/cgroup/kubepods.slice/pod1/cri-abc");
  at = ownCgroup(kHostMountinfo, "0::/\n");
  ASSERT_TRUE(at);
  EXPECT_EQ(at->dir, "/sys/fs/cgroup");
}

TEST(CpuBudgetTest, FindsOwnCgroupBelowAMountedSubtree) {
  // A container without a cgroup namespace, given only its own subtree.
  const char* mountinfo = "40 30 0:26 /kubepods.slice/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
  auto at = ownCgroup(mountinfo, "0::/kubepods.slice/pod1/cri-abc\n");
  ASSERT_TRUE(at);
  EXPECT_EQ(at->dir, "/sys/fs/cgroup/cri-abc");
  // Not under the mounted subtree (a sibling with a common prefix): not found.
  EXPECT_EQ(ownCgroup(mountinfo, "0::/kubepods.slice/pod10/cri-abc\n"), std::nullopt);
}

TEST(CpuBudgetTest, NoCgroup2MeansNoLimit) {
  EXPECT_EQ(ownCgroup("22 1 0:21 / /proc rw - proc proc rw\n", "0::/a\n"), std::nullopt);
  EXPECT_EQ(ownCgroup(kHostMountinfo, "1:cpu:/x\n"), std::nullopt);  // cgroup v1 only
}

// The real thing on this thread: a mask of one CPU gives one loop whatever the machine has.
TEST(CpuBudgetTest, FollowsTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  const unsigned all = usableCpus();
  EXPECT_GE(all, 1u);
  EXPECT_LE(all, static_cast<unsigned>(CPU_COUNT(&saved)));
  int first = 0;
  while (!CPU_ISSET(first, &saved)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const unsigned pinned = usableCpus();
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(pinned, 1u);
}

}  // namespace
}  // namespace sluice
