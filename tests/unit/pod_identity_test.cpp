#include "pod_identity.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(PodUid, BothCgroupDrivers) {
  EXPECT_EQ(podUidFromCgroupPath("/sys/fs/cgroup/kubepods/burstable/pod1b4e28ba-2fa1-11d2-883f-0016d3cca427/"
                                 "0123456789abcdef"),
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
  EXPECT_EQ(podUidFromCgroupPath("/sys/fs/cgroup/kubepods/pod1B4E28BA-2FA1-11D2-883F-0016D3CCA427"),
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
      << "guaranteed QoS: directly under kubepods; case folded";
  EXPECT_EQ(podUidFromCgroupPath("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/"
                                 "kubepods-besteffort-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice/"
                                 "cri-containerd-0123.scope"),
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
}

TEST(PodUid, NoneWhereThereIsNoPod) {
  EXPECT_FALSE(podUidFromCgroupPath("/sys/fs/cgroup/system.slice/sshd.service"));
  EXPECT_FALSE(podUidFromCgroupPath("/sys/fs/cgroup/kubepods/burstable"));
  EXPECT_FALSE(podUidFromCgroupPath("/sys/fs/cgroup/podcast/pod1b4e28ba-2fa1-11d2-883f-0016d3cca42"))
      << "one hex digit short";
  EXPECT_FALSE(podUidFromCgroupPath("/x/pod1b4e28ba-2fa1-11d2-883f-0016d3cca427extra")) << "not a whole segment";
}

}  // namespace
}  // namespace sluice
