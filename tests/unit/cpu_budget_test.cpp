// What "one worker loop per core" counts: the affinity mask, capped by cgroup v2 CPU limits.
#include "cpu_budget.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

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
  EXPECT_EQ(parseCpuMax("99999999999999999999999 100000"), std::nullopt);  // out of range
}

TEST(CpuBudgetTest, LimitRoundsUpAndCapsAffinity) {
  EXPECT_EQ(cpuBudget(16, {}), 16u);
  EXPECT_EQ(cpuBudget(16, {"max 100000"}), 16u);
  EXPECT_EQ(cpuBudget(16, {"150000 100000"}), 2u);  // 1.5 cores: two loops, not one
  EXPECT_EQ(cpuBudget(16, {"50000 100000"}), 1u);
  EXPECT_EQ(cpuBudget(2, {"800000 100000"}), 2u);  // a limit above the mask changes nothing
  // The kernel takes quotas of more cores than an unsigned holds: no cap, not a wrap.
  EXPECT_EQ(cpuBudget(16, {"17592186044415 1000"}), 16u);
  // The tightest of the cgroup and its ancestors wins, wherever it is.
  EXPECT_EQ(cpuBudget(16, {"max 100000", "400000 100000", "800000 100000"}), 4u);
  EXPECT_EQ(cpuBudget(0, {}), 1u);
}

constexpr const char* kHostMountinfo =
    "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
    "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
    "31 25 0:27 / /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n";

TEST(CpuBudgetTest, FindsOwnCgroupOnTheHost) {
  auto found = cgroupCandidates(kHostMountinfo, "1:cpu:/x\n0::/kubepods.slice/pod1/cri-abc\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0], (CgroupLocation{"/sys/fs/cgroup", "/sys/fs/cgroup/kubepods.slice/pod1/cri-abc"}));
  found = cgroupCandidates(kHostMountinfo, "0::/\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].dir, "/sys/fs/cgroup");
}

TEST(CpuBudgetTest, FindsOwnCgroupBelowAMountedSubtree) {
  // A container without a cgroup namespace, given only its own subtree.
  const char* mountinfo = "40 30 0:26 /kubepods.slice/pod1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
  auto found = cgroupCandidates(mountinfo, "0::/kubepods.slice/pod1/cri-abc\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].dir, "/sys/fs/cgroup/cri-abc");
  // Not under the mounted subtree (a sibling with a common prefix): not a candidate.
  EXPECT_TRUE(cgroupCandidates(mountinfo, "0::/kubepods.slice/pod10/cri-abc\n").empty());
}

TEST(CpuBudgetTest, LaterMountAtTheSamePointComesFirst) {
  // The runtime's view of the pod's own cgroup, then the host's tree mounted over it (the
  // agent DaemonSet): the host's is what /sys/fs/cgroup shows now.
  const char* mountinfo =
      "40 30 0:26 /kubepods/pod1/cri /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
      "41 30 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  auto found = cgroupCandidates(mountinfo, "0::/kubepods/pod1/cri\n");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], (CgroupLocation{"/sys/fs/cgroup", "/sys/fs/cgroup/kubepods/pod1/cri"}));
  EXPECT_EQ(found[1], (CgroupLocation{"/sys/fs/cgroup", "/sys/fs/cgroup"}));
  // In a cgroup namespace the host's root lies above the namespace's ("/../../.."): the
  // process cannot name its cgroup there, so that mount is no candidate.
  const char* namespaced =
      "40 30 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n"
      "41 30 0:26 /../../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  found = cgroupCandidates(namespaced, "0::/\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].dir, "/sys/fs/cgroup");
}

TEST(CpuBudgetTest, DecodesEscapedMountPaths) {
  const char* mountinfo = "30 25 0:26 / /run/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
  auto found = cgroupCandidates(mountinfo, "0::/a\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].dir, "/run/my cgroup/a");
}

TEST(CpuBudgetTest, NoCgroup2MeansNoCandidate) {
  EXPECT_TRUE(cgroupCandidates("22 1 0:21 / /proc rw - proc proc rw\n", "0::/a\n").empty());
  EXPECT_TRUE(cgroupCandidates(kHostMountinfo, "1:cpu:/x\n").empty());  // cgroup v1 only
}

class CgroupTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    top_ = fs::temp_directory_path() / ("sl-cpu-budget-" + std::to_string(getpid()));
    fs::create_directories(top_ / "mount/a/b");
  }
  void TearDown() override { fs::remove_all(top_); }
  void write(const fs::path& file, const std::string& text) { std::ofstream(top_ / file) << text; }
  fs::path top_;
};

TEST_F(CgroupTreeTest, ReadsLimitsUpToTheMountPointOnly) {
  write("cpu.max", "100000 100000\n");  // above the mount: another hierarchy, never read
  write("mount/a/cpu.max", "200000 100000\n");
  write("mount/a/b/cpu.max", "max 100000\n");
  auto limits = cgroupCpuLimits({(top_ / "mount").string(), (top_ / "mount/a/b").string()});
  EXPECT_EQ(limits, (std::vector<std::string>{"max 100000\n", "200000 100000\n"}));
  EXPECT_EQ(cpuBudget(8, limits), 2u);
}

TEST_F(CgroupTreeTest, HoldsOnlyTheListedProcesses) {
  write("mount/a/cgroup.procs", "12\n345\n");
  EXPECT_TRUE(cgroupHolds((top_ / "mount/a").string(), 345));
  EXPECT_FALSE(cgroupHolds((top_ / "mount/a").string(), 34));
  EXPECT_FALSE(cgroupHolds((top_ / "mount/a/b").string(), 12));  // no cgroup.procs
}

// The real thing on this thread: the loops follow the affinity mask.
TEST(CpuBudgetTest, FollowsTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  const unsigned all = usableCpus();
  EXPECT_GE(all, 1u);
  EXPECT_LE(all, static_cast<unsigned>(CPU_COUNT(&saved)));
  cpu_set_t some;
  CPU_ZERO(&some);
  for (int cpu = 0, taken = 0; cpu < CPU_SETSIZE && taken < 2; ++cpu) {
    if (!CPU_ISSET(cpu, &saved)) continue;
    CPU_SET(cpu, &some);
    const unsigned expected = std::min(static_cast<unsigned>(++taken), all);
    ASSERT_EQ(sched_setaffinity(0, sizeof some, &some), 0);
    const unsigned got = usableCpus();
    ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
    EXPECT_EQ(got, expected) << "with " << taken << " CPU(s) in the mask";
  }
}

}  // namespace
}  // namespace sluice
