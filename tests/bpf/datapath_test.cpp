// The real loader on this kernel: the object passes the verifier, programs and maps are
// pinned with the types the agent relies on, rules reconcile into the maps, and a second
// load (an agent restart) adopts the pinned maps instead of making new ones.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "bpf_datapath.h"
#include "fd.h"
#include "typed_map.h"

namespace sluice {
namespace {

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "this test loads BPF programs and needs root; CI runs it as root";
    pins_.dir = "/sys/fs/bpf/sluice-datapath-test-" + std::to_string(getpid());
    agent_.listen = *parseIpv4Endpoint("198.18.0.1:15001");
    agent_.gatewayAddress = *parseIpv4Endpoint("198.18.3.2:15443");
    agent_.redirectPorts = {443, 8443};
    agent_.bypass = {*parseIpv4Cidr("10.0.0.0/8")};
  }
  void TearDown() override { std::filesystem::remove_all(pins_.dir); }

  static bpf_prog_info programInfo(const std::filesystem::path& pin) {
    UniqueFd fd(bpf_obj_get(pin.c_str()));
    bpf_prog_info info{};
    __u32 length = sizeof(info);
    EXPECT_TRUE(fd) << pin;
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &length), 0);
    return info;
  }

  PinLayout pins_;
  AgentConfig agent_;
};

TEST_F(DatapathTest, LoadsPinsAndReconcilesRules) {
  BpfDatapath datapath(pins_);
  EXPECT_EQ(programInfo(pins_.program("sl_connect4")).type, BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
  EXPECT_EQ(programInfo(pins_.program("sl_getpeername4")).type, BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
  EXPECT_EQ(programInfo(pins_.program("sl_sockops")).type, BPF_PROG_TYPE_SOCK_OPS);
  EXPECT_EQ(programInfo(pins_.program("sl_connect6")).type, BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
  EXPECT_EQ(programInfo(pins_.program("sl_sendmsg4")).type, BPF_PROG_TYPE_CGROUP_SOCK_ADDR);
  for (const char* map :
       {"sl_config", "sl_ports", "sl_bypass4", "sl_bypass6", "sl_sk_orig", "sl_orig_dst", "sl_stats", "sl_cg_stats"}) {
    EXPECT_TRUE(std::filesystem::exists(pins_.map(map))) << map;
  }

  auto config = TypedMap<__u32, sl_config>::openPinned(pins_.map("sl_config"));
  ASSERT_TRUE(config.lookup(0));
  EXPECT_EQ(config.lookup(0)->enabled, 0) << "nothing is redirected before the rules are written";

  datapath.applyRules(agent_, 7);
  auto cfg = *config.lookup(0);
  EXPECT_EQ(cfg.enabled, 1);
  EXPECT_EQ(cfg.redirect_ip4_be, agent_.listen.addressBe);
  EXPECT_EQ(ntohs(cfg.redirect_port_be), 15001);
  EXPECT_EQ(cfg.rules_version, 7u);
  EXPECT_EQ(cfg.socket_mark, kDefaultSocketMark);
  EXPECT_EQ(cfg.node_netns_cookie, currentNetnsCookie()) << "the mark exempts only in the agent's namespace";
  EXPECT_NE(cfg.node_netns_cookie, 0u);

  auto ports = TypedMap<sl_port_key, __u8>::openPinned(pins_.map("sl_ports"));
  auto portKeys = ports.keys();
  std::vector<uint16_t> got;
  for (auto& k : portKeys) got.push_back(k.port);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<uint16_t>{443, 8443}));

  auto bypass = TypedMap<sl_bypass4_key, __u8>::openPinned(pins_.map("sl_bypass4"));
  std::vector<std::string> cidrs;
  for (auto& k : bypass.keys()) cidrs.push_back(formatCidr(Ipv4Cidr{k.addr_be, static_cast<uint8_t>(k.prefixlen)}));
  std::sort(cidrs.begin(), cidrs.end());
  EXPECT_EQ(cidrs, (std::vector<std::string>{"10.0.0.0/8", "127.0.0.0/8", "198.18.0.1/32", "198.18.3.2/32"}))
      << "configured CIDRs plus loopback, the agent and the gateway";
  auto bypass6 = TypedMap<sl_bypass6_key, __u8>::openPinned(pins_.map("sl_bypass6"));
  EXPECT_EQ(bypass6.keys().size(), 1u) << "::1/128";
  EXPECT_EQ(cfg.block_quic, 1) << "QUIC is blocked unless the rules say otherwise";

  // A second apply with fewer rules removes what is gone (a diff, not an append).
  agent_.redirectPorts = {443};
  agent_.bypass.clear();
  datapath.applyRules(agent_, 8);
  EXPECT_EQ(ports.keys().size(), 1u);
  EXPECT_EQ(bypass.keys().size(), 3u);
}

TEST_F(DatapathTest, RestartAdoptsPinnedMapsAndTakesFlows) {
  sl_endpoint client = toKernelEndpoint(*parseIpv4Endpoint("198.18.1.2:40000"));
  {
    BpfDatapath first(pins_);
    first.applyRules(agent_, 1);
    auto flows = TypedMap<sl_endpoint, sl_orig_dst>::openPinned(pins_.map("sl_orig_dst"));
    sl_orig_dst value{};
    value.dst = toKernelEndpoint(*parseIpv4Endpoint("198.18.100.10:443"));
    value.cgroup_id = 77;
    flows.put(client, value);
  }
  BpfDatapath second(pins_);  // the agent restarted: same maps, same pending flow
  auto taken = second.takeOriginalDestination(client);
  ASSERT_TRUE(taken);
  EXPECT_EQ(formatEndpoint(fromKernelEndpoint(taken->dst)), "198.18.100.10:443");
  EXPECT_EQ(taken->cgroup_id, 77u);
  EXPECT_FALSE(second.takeOriginalDestination(client)) << "taking removes the entry";
  auto config = TypedMap<__u32, sl_config>::openPinned(pins_.map("sl_config"));
  EXPECT_EQ(config.lookup(0)->enabled, 1) << "the config survived the restart";
}

// A write that fails half way (here: more bypass entries than the trie holds, which the
// agent's own check refuses earlier) puts the rule set before back: the config, its
// version and every bypass entry, so a rejected reload cannot leave a new bypass open.
TEST_F(DatapathTest, FailedApplyRestoresTheStateBefore) {
  BpfDatapath datapath(pins_);
  datapath.applyRules(agent_, 3);
  const DatapathState before = datapath.current();
  ASSERT_EQ(before.config.rules_version, 3u);

  AgentConfig tooMany = agent_;
  tooMany.redirectPorts = {443, 8443, 9443};
  tooMany.bypass.clear();
  for (uint32_t i = 0; i < SL_MAX_BYPASS4 + 5; ++i) tooMany.bypass.push_back(Ipv4Cidr{htonl(0xc0a80000 | i), 32});
  EXPECT_THROW(datapath.applyRules(tooMany, 4), std::runtime_error);

  const DatapathState after = datapath.current();
  EXPECT_EQ(after.config.rules_version, 3u) << "the version in force is the old one";
  EXPECT_EQ(std::memcmp(&after.config, &before.config, sizeof(sl_config)), 0);
  EXPECT_EQ(after.bypass4, before.bypass4) << "no bypass CIDR of the rejected rules stays";
  EXPECT_EQ(after.bypass6, before.bypass6);
  EXPECT_EQ(after.redirectPorts, before.redirectPorts);
}

}  // namespace
}  // namespace sluice
