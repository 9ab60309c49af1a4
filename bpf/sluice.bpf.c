// SPDX-License-Identifier: GPL-2.0
/* sluice's kernel side: redirect a pod's outbound TCP to the node agent.
 *
 *   cgroup/connect4,6     decide (sl_decide); on redirect, remember the original
 *                         destination in socket storage and rewrite it to the agent
 *   cgroup/sendmsg4,6     the same decision for unconnected UDP: QUIC to a redirected
 *                         port is refused when the rules say so
 *   sockops               at TCP_CONNECT_CB (source port known, SYN not sent) publish
 *                         (source addr, source port) -> original destination for the
 *                         agent; delete it again when the socket closes first
 *   cgroup/getpeername4,6 answer getpeername() with the original destination
 *
 * Attached per enabled cgroup (see userspace/agent/cgroup_enrollment.h for why), so
 * this runs only for tasks of enabled cgroups and their descendants. */
// vmlinux.h first: the libbpf headers use its types.
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "sluice_abi.h"
#include "sluice_redirect.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr* ctx) {
  return sl_hook4(ctx, 1);
}

SEC("cgroup/connect6")
int sl_connect6(struct bpf_sock_addr* ctx) {
  return sl_hook6(ctx, 1);
}

/* sendmsg only ever refuses (QUIC); it never rewrites a datagram's destination. */
SEC("cgroup/sendmsg4")
int sl_sendmsg4(struct bpf_sock_addr* ctx) {
  return sl_hook4(ctx, 0);
}

SEC("cgroup/sendmsg6")
int sl_sendmsg6(struct bpf_sock_addr* ctx) {
  return sl_hook6(ctx, 0);
}

SEC("sockops")
int sl_sockops(struct bpf_sock_ops* skops) {
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
      sl_publish_flow(skops);
      break;
    case BPF_SOCK_OPS_STATE_CB:
      if (skops->args[1] == BPF_TCP_CLOSE) sl_forget_flow(skops);
      break;
  }
  return 1;
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr* ctx) {
  sl_restore_peer4(ctx);
  return SL_SOCK_ADDR_PROCEED;
}

SEC("cgroup/getpeername6")
int sl_getpeername6(struct bpf_sock_addr* ctx) {
  sl_restore_peer6(ctx);
  return SL_SOCK_ADDR_PROCEED;
}
