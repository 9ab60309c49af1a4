// The kubelet's pod parent is found for both cgroup drivers, preferring the systemd
// one, and its absence is an error that names where it looked.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bpf_pins.h"

namespace sluice {
namespace {

class KubepodsCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("sluice-kubepods-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void makeCgroup(const std::string& name) {
    std::filesystem::create_directories(root_ / name);
    std::ofstream(root_ / name / "cgroup.procs") << "";
  }
  std::filesystem::path root_;
};

TEST_F(KubepodsCgroupTest, FindsEitherDriversParent) {
  makeCgroup("kubepods");
  EXPECT_EQ(findKubepodsCgroup(root_), root_ / "kubepods") << "cgroupfs driver";
  makeCgroup("kubepods.slice");
  EXPECT_EQ(findKubepodsCgroup(root_), root_ / "kubepods.slice") << "systemd driver";
}

TEST_F(KubepodsCgroupTest, NamesWhereItLookedWhenThereIsNone) {
  std::filesystem::create_directories(root_ / "kubepods");  // a directory, not a cgroup
  try {
    findKubepodsCgroup(root_);
    FAIL() << "found a kubepods cgroup in an empty hierarchy";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((root_ / "kubepods.slice").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find((root_ / "kubepods").string() + " exists"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sluice
