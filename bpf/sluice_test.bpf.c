// SPDX-License-Identifier: GPL-2.0
/* Test wrapper: BPF_PROG_TEST_RUN does not exist for cgroup/connect* programs, so the
 * decision they make (sl_decide, the same code, the same maps) is driven through an
 * XDP program: the "packet" is a struct sl_decision_case; the verdict is written back. */
// vmlinux.h first: the libbpf headers use its types.
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "sluice_abi.h"
#include "sluice_redirect.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int sl_test_decide(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* end = (void*)(long)ctx->data_end;
  struct sl_decision_case* c = data;
  if ((void*)(c + 1) > end) return XDP_ABORTED;
  struct sl_decision_input in;
  __builtin_memcpy(&in, &c->input, sizeof(in));
  __u32 stat;
  c->verdict = sl_decide(&in, sl_current_config(), &stat);
  c->stat = stat;
  return XDP_PASS;
}
