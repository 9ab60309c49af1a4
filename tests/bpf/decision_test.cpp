// The kernel side's decision, table-driven through BPF_PROG_TEST_RUN: sl_decide (the code
// connect4/6 and sendmsg4/6 run) wrapped in an XDP program, with the maps filled as the
// agent fills them. Each row: a destination, port, family, socket type -> verdict, counter.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "datapath_state.h"
#include "sluice_test_bpf.skel.h"

namespace sluice {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kStream = 1, kDgram = 2;
// Network namespace cookies as bpf_get_netns_cookie() gives them: the agent's (the node's)
// and a pod's.
constexpr uint64_t kNodeNetns = 0x1000, kPodNetns = 0x2000;

struct Row {
  const char* name;
  const char* address;  // IPv4 or IPv6 text
  uint16_t port;
  uint8_t type;
  uint8_t protocol;
  uint32_t mark;
  sl_verdict verdict;
  uint32_t stat;
  uint64_t netns = kPodNetns;  // the socket's network namespace cookie
};

class DecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "BPF_PROG_TEST_RUN needs root; CI runs it as root";
    pinDir_ = "/sys/fs/bpf/sluice-decision-test-" + std::to_string(getpid());
    std::filesystem::create_directories(pinDir_);
    LIBBPF_OPTS(bpf_object_open_opts, options, .pin_root_path = pinDir_.c_str());
    skel_ = sluice_test_bpf__open_opts(&options);
    ASSERT_NE(skel_, nullptr);
    ASSERT_EQ(sluice_test_bpf__load(skel_), 0);

    AgentConfig agent;
    agent.listen = *parseIpv4Endpoint("198.18.0.1:15001");
    agent.listen6 = *parseIpv6("2001:db8::1");
    agent.gatewayAddress = *parseIpv4Endpoint("198.18.3.2:15443");
    agent.redirectPorts = {443};
    agent.bypass = {*parseIpv4Cidr("10.0.0.0/8")};
    agent.bypass6 = {*parseIpv6Cidr("2001:db8:1::/48")};
    apply(desiredDatapath(agent, 1, kNodeNetns));
  }
  void TearDown() override {
    sluice_test_bpf__destroy(skel_);
    std::filesystem::remove_all(pinDir_);
  }

  // The agent's reconciler is tested elsewhere; here the maps are written directly.
  void apply(const DatapathState& state) {
    state_ = state;
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.sl_config), &zero, &state.config, BPF_ANY), 0);
    for (uint16_t port : state.redirectPorts) {
      sl_port_key key{port, 0};
      uint8_t one = 1;
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.sl_ports), &key, &one, BPF_ANY), 0);
    }
    for (auto& [prefix, address] : state.bypass4) {
      sl_bypass4_key key{prefix, address};
      uint8_t one = 1;
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.sl_bypass4), &key, &one, BPF_ANY), 0);
    }
    for (auto& [prefix, address] : state.bypass6) {
      sl_bypass6_key key{prefix, {}};
      std::memcpy(key.addr, address.data(), 16);
      uint8_t one = 1;
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.sl_bypass6), &key, &one, BPF_ANY), 0);
    }
  }

  sl_decision_case run(const Row& row) {
    sl_decision_case in{};
    if (auto v4 = parseIpv4(row.address)) {
      std::memcpy(in.input.addr, &*v4, 4);
      in.input.family = SL_FAMILY_INET;
    } else {
      auto v6 = parseIpv6(row.address);
      EXPECT_TRUE(v6) << row.address;
      std::memcpy(in.input.addr, v6->data(), 16);
      in.input.family = SL_FAMILY_INET6;
    }
    in.input.port_be = htons(row.port);
    in.input.type = row.type;
    in.input.protocol = row.protocol;
    in.input.mark = row.mark;
    in.input.netns_cookie = row.netns;
    in.verdict = 99;
    sl_decision_case out{};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = &in, .data_out = &out, .data_size_in = sizeof(in),
                .data_size_out = sizeof(out));
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.sl_test_decide), &opts);
    EXPECT_EQ(err, 0) << row.name << ": BPF_PROG_TEST_RUN failed";
    EXPECT_EQ(opts.retval, XDP_PASS) << row.name;
    return out;
  }

  void check(const std::vector<Row>& rows) {
    for (const auto& row : rows) {
      auto out = run(row);
      EXPECT_EQ(out.verdict, static_cast<uint32_t>(row.verdict)) << row.name;
      EXPECT_EQ(out.stat, row.stat) << row.name;
    }
  }

  std::string pinDir_;
  sluice_test_bpf* skel_ = nullptr;
  DatapathState state_;
};

TEST_F(DecisionTest, Table) {
  check({
      {"v4 tcp external 443", "198.18.100.10", 443, kStream, kTcp, 0, SL_VERDICT_REDIRECT, SL_STAT_REDIRECTED},
      {"v4 tcp other port", "198.18.100.10", 8443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_PORT_IGNORED},
      {"v4 tcp bypassed CIDR", "10.1.2.3", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v4 tcp loopback", "127.0.0.53", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v4 tcp the agent itself", "198.18.0.1", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v4 tcp the gateway", "198.18.3.2", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v4 tcp agent's marked socket", "198.18.100.10", 443, kStream, kTcp, kDefaultSocketMark, SL_VERDICT_PASS,
       SL_STAT_AGENT_SOCKET, kNodeNetns},
      {"v4 tcp other mark", "198.18.100.10", 443, kStream, kTcp, 7, SL_VERDICT_REDIRECT, SL_STAT_REDIRECTED},
      {"v4 udp 443 (QUIC)", "198.18.100.10", 443, kDgram, kUdp, 0, SL_VERDICT_REFUSE, SL_STAT_QUIC_BLOCKED},
      {"v4 udp 53", "198.18.100.53", 53, kDgram, kUdp, 0, SL_VERDICT_PASS, SL_STAT_PORT_IGNORED},
      {"v4 udp 443 bypassed", "10.0.0.1", 443, kDgram, kUdp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v6 tcp external 443", "2001:db8:100::10", 443, kStream, kTcp, 0, SL_VERDICT_REDIRECT, SL_STAT_REDIRECTED},
      {"v6 tcp bypassed /48", "2001:db8:1::5", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v6 tcp loopback", "::1", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v6 tcp other port", "2001:db8:100::10", 80, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_PORT_IGNORED},
      {"v4-mapped tcp external", "::ffff:198.18.100.10", 443, kStream, kTcp, 0, SL_VERDICT_REDIRECT,
       SL_STAT_REDIRECTED},
      {"v4-mapped tcp bypassed v4 CIDR", "::ffff:10.9.9.9", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
      {"v6 udp 443 (QUIC)", "2001:db8:100::10", 443, kDgram, kUdp, 0, SL_VERDICT_REFUSE, SL_STAT_QUIC_BLOCKED},
      {"raw socket", "198.18.100.10", 443, 3, 0, 0, SL_VERDICT_PASS, SL_STAT_COUNT},
  });
}

TEST_F(DecisionTest, FailsClosedWithoutConfigAndWithoutAnIpv6Listener) {
  DatapathState s = state_;
  std::memset(s.config.redirect_ip6, 0, 16);
  s.config.block_quic = 0;
  apply(s);
  check({
      {"v6 with no IPv6 listener", "2001:db8:100::10", 443, kStream, kTcp, 0, SL_VERDICT_REFUSE,
       SL_STAT_NO_IPV6_LISTENER},
      {"v4-mapped still goes to the IPv4 listener", "::ffff:198.18.100.10", 443, kStream, kTcp, 0, SL_VERDICT_REDIRECT,
       SL_STAT_REDIRECTED},
      {"QUIC allowed when not blocked", "198.18.100.10", 443, kDgram, kUdp, 0, SL_VERDICT_PASS, SL_STAT_PORT_IGNORED},
  });
  s.config.enabled = 0;
  apply(s);
  check({
      {"v4 before the agent wrote its config", "198.18.100.10", 443, kStream, kTcp, 0, SL_VERDICT_REFUSE,
       SL_STAT_NOT_CONFIGURED},
      {"v6 before the agent wrote its config", "2001:db8:100::10", 443, kStream, kTcp, 0, SL_VERDICT_REFUSE,
       SL_STAT_NOT_CONFIGURED},
      {"bypass still applies", "10.0.0.1", 443, kStream, kTcp, 0, SL_VERDICT_PASS, SL_STAT_BYPASSED},
  });
}

// The agent's mark is settable from a pod (CAP_NET_RAW, kernel 5.17+): it exempts a
// socket only in the node's network namespace.
TEST_F(DecisionTest, MarkExemptsOnlyInTheNodeNamespace) {
  const uint32_t mark = kDefaultSocketMark;
  check({
      {"marked, node namespace", "198.18.100.10", 443, kStream, kTcp, mark, SL_VERDICT_PASS, SL_STAT_AGENT_SOCKET,
       kNodeNetns},
      {"marked, pod namespace: redirected", "198.18.100.10", 443, kStream, kTcp, mark, SL_VERDICT_REDIRECT,
       SL_STAT_REDIRECTED, kPodNetns},
      {"marked, pod namespace, IPv6: redirected", "2001:db8:100::10", 443, kStream, kTcp, mark, SL_VERDICT_REDIRECT,
       SL_STAT_REDIRECTED, kPodNetns},
      {"marked, pod namespace, v4-mapped: redirected", "::ffff:198.18.100.10", 443, kStream, kTcp, mark,
       SL_VERDICT_REDIRECT, SL_STAT_REDIRECTED, kPodNetns},
      {"marked, pod namespace, QUIC: refused", "198.18.100.10", 443, kDgram, kUdp, mark, SL_VERDICT_REFUSE,
       SL_STAT_QUIC_BLOCKED, kPodNetns},
      {"other mark, node namespace: redirected", "198.18.100.10", 443, kStream, kTcp, mark + 1, SL_VERDICT_REDIRECT,
       SL_STAT_REDIRECTED, kNodeNetns},
  });
  DatapathState s = state_;
  s.config.node_netns_cookie = 0;
  apply(s);
  check({{"no node namespace written: no mark exempts", "198.18.100.10", 443, kStream, kTcp, mark, SL_VERDICT_REDIRECT,
          SL_STAT_REDIRECTED, kNodeNetns}});
  s = state_;
  s.config.socket_mark = 0;
  apply(s);
  check({{"mark 0 configured: unmarked sockets are not the agent's", "198.18.100.10", 443, kStream, kTcp, 0,
          SL_VERDICT_REDIRECT, SL_STAT_REDIRECTED, kNodeNetns}});
}

}  // namespace
}  // namespace sluice
