// SPDX-License-Identifier: GPL-2.0
/* sluice's kernel side: redirect a pod's outbound TCP to the node agent.
 *
 *   cgroup/connect4     remember the original destination in socket storage and rewrite
 *                       the destination to the agent's listener
 *   sockops             at TCP_CONNECT_CB, when the source port is known and before the
 *                       SYN leaves, publish (source addr, source port) -> original
 *                       destination for the agent; delete it again when the socket closes
 *   cgroup/getpeername4 answer getpeername() with the original destination
 *
 * The programs are attached per enabled cgroup (see userspace/agent/cgroup_enrollment.cpp
 * for why), so everything here runs only for tasks of enabled cgroups and descendants. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_abi.h"
#include "sluice_redirect.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("cgroup/connect4")
int sl_connect4(struct bpf_sock_addr *ctx) {
  int verdict = sl_redirect_connect4(ctx);
  return verdict == SL_VERDICT_REFUSE ? SL_SOCK_ADDR_REJECT : SL_SOCK_ADDR_PROCEED;
}

SEC("sockops")
int sl_sockops(struct bpf_sock_ops *skops) {
  switch (skops->op) {
  case BPF_SOCK_OPS_TCP_CONNECT_CB:
    sl_publish_flow(skops);
    break;
  case BPF_SOCK_OPS_STATE_CB:
    if (skops->args[1] == BPF_TCP_CLOSE)
      sl_forget_flow(skops);
    break;
  }
  return 1;
}

SEC("cgroup/getpeername4")
int sl_getpeername4(struct bpf_sock_addr *ctx) {
  sl_restore_peer4(ctx);
  return SL_SOCK_ADDR_PROCEED;
}
