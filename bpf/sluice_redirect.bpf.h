/* BPF-only: maps and decision helpers of the redirect. Entry points in sluice.bpf.c. */
#ifndef SLUICE_REDIRECT_BPF_H
#define SLUICE_REDIRECT_BPF_H

#include "sluice_abi.h"

#define SL_SOCK_ADDR_PROCEED 1
#define SL_SOCK_ADDR_REJECT 0 /* connect() fails with EPERM */

#define SL_AF_INET 2
#define SL_SOCK_STREAM 1
#define SL_IPPROTO_TCP 6

enum sl_verdict { SL_VERDICT_PASS, SL_VERDICT_REDIRECT, SL_VERDICT_REFUSE };

/* Written by the agent (rules), read by connect4. Key 0 only. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sl_config);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_config SEC(".maps");

/* Written by the agent (rules): redirected destination ports, host order. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SL_MAX_PORTS);
  __type(key, struct sl_port_key);
  __type(value, __u8);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_ports SEC(".maps");

/* Written by the agent (rules): IPv4 destinations never redirected, longest prefix. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, SL_MAX_BYPASS4);
  __type(key, struct sl_bypass4_key);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_bypass4 SEC(".maps");

/* Written by connect4, read by sockops and getpeername4: the original destination of a
 * redirected socket. Freed by the kernel with the socket, so it cannot leak. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sl_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME); /* an agent restart keeps live sockets' storage */
} sl_sk_orig SEC(".maps");

/* Written by sockops at TCP_CONNECT_CB, keyed by the client's source endpoint; taken
 * (lookup and delete) by the agent on accept, deleted by sockops when the client socket
 * closes first. Not LRU: a live entry must never be evicted; when full, the flow is not
 * published and the agent refuses it (fail closed). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SL_MAX_PENDING_FLOWS);
  __type(key, struct sl_endpoint);
  __type(value, struct sl_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_orig_dst SEC(".maps");

/* Incremented by every program, read by sluicectl: enum sl_stat, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SL_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_stats SEC(".maps");

static __always_inline void sl_count(enum sl_stat stat) {
  __u32 key = stat;
  __u64 *value = bpf_map_lookup_elem(&sl_stats, &key);
  if (value)
    *value += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline int sl_is_bypassed4(__u32 addr_be) {
  struct sl_bypass4_key key = {.prefixlen = 32, .addr_be = addr_be};
  return bpf_map_lookup_elem(&sl_bypass4, &key) != NULL;
}

static __always_inline int sl_is_redirected_port(__u16 port) {
  struct sl_port_key key = {.port = port};
  return bpf_map_lookup_elem(&sl_ports, &key) != NULL;
}

static __always_inline enum sl_verdict sl_redirect_connect4(struct bpf_sock_addr *ctx) {
  if (ctx->type != SL_SOCK_STREAM || ctx->protocol != SL_IPPROTO_TCP)
    return SL_VERDICT_PASS;
  struct bpf_sock *sk = ctx->sk;
  if (!sk)
    return SL_VERDICT_PASS;
  if (sk->mark == SL_AGENT_SOCKET_MARK) {
    sl_count(SL_STAT_AGENT_SOCKET);
    return SL_VERDICT_PASS;
  }
  __u16 port = bpf_ntohs((__u16)ctx->user_port);
  if (!sl_is_redirected_port(port)) {
    sl_count(SL_STAT_PORT_IGNORED);
    return SL_VERDICT_PASS;
  }
  __u32 dst_be = ctx->user_ip4;
  if (sl_is_bypassed4(dst_be)) {
    sl_count(SL_STAT_BYPASSED);
    return SL_VERDICT_PASS;
  }
  __u32 zero = 0;
  struct sl_config *cfg = bpf_map_lookup_elem(&sl_config, &zero);
  if (!cfg || !cfg->enabled) {
    /* An enabled cgroup with no agent config must not reach :443 directly. */
    sl_count(SL_STAT_NOT_CONFIGURED);
    return SL_VERDICT_REFUSE;
  }
  struct sl_orig_dst *orig =
      bpf_sk_storage_get(&sl_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!orig) {
    sl_count(SL_STAT_STORAGE_FAILED);
    return SL_VERDICT_REFUSE;
  }
  __builtin_memset(&orig->dst, 0, sizeof(orig->dst));
  __builtin_memcpy(orig->dst.addr, &dst_be, sizeof(dst_be));
  orig->dst.port_be = (__u16)ctx->user_port;
  orig->dst.family = SL_FAMILY_INET;
  orig->cgroup_id = bpf_get_current_cgroup_id();

  ctx->user_ip4 = cfg->redirect_ip4_be;
  ctx->user_port = cfg->redirect_port_be;
  sl_count(SL_STAT_REDIRECTED);
  return SL_VERDICT_REDIRECT;
}

/* The client's source endpoint as the agent will see it in accept(). */
static __always_inline void sl_local_endpoint4(struct bpf_sock_ops *skops,
                                               struct sl_endpoint *ep) {
  __builtin_memset(ep, 0, sizeof(*ep));
  __u32 src_be = skops->local_ip4;
  __builtin_memcpy(ep->addr, &src_be, sizeof(src_be));
  ep->port_be = bpf_htons((__u16)skops->local_port); /* local_port is host order */
  ep->family = SL_FAMILY_INET;
}

static __always_inline void sl_publish_flow(struct bpf_sock_ops *skops) {
  if (skops->family != SL_AF_INET)
    return;
  struct bpf_sock *sk = skops->sk;
  if (!sk)
    return;
  struct sl_orig_dst *orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, 0);
  if (!orig)
    return; /* not a redirected socket */
  struct sl_endpoint key;
  sl_local_endpoint4(skops, &key);
  struct sl_orig_dst value = *orig;
  if (bpf_map_update_elem(&sl_orig_dst, &key, &value, BPF_ANY) != 0) {
    sl_count(SL_STAT_HANDOFF_FULL);
    return;
  }
  /* Ask for state callbacks so the entry is removed if the client closes first. */
  bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
  sl_count(SL_STAT_HANDOFF);
}

static __always_inline void sl_forget_flow(struct bpf_sock_ops *skops) {
  if (skops->family != SL_AF_INET)
    return;
  struct sl_endpoint key;
  sl_local_endpoint4(skops, &key);
  if (bpf_map_delete_elem(&sl_orig_dst, &key) == 0)
    sl_count(SL_STAT_FLOW_CLOSED);
}

static __always_inline void sl_restore_peer4(struct bpf_sock_addr *ctx) {
  struct bpf_sock *sk = ctx->sk;
  if (!sk)
    return;
  struct sl_orig_dst *orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, 0);
  if (!orig || orig->dst.family != SL_FAMILY_INET)
    return;
  __u32 dst_be;
  __builtin_memcpy(&dst_be, orig->dst.addr, sizeof(dst_be));
  ctx->user_ip4 = dst_be;
  ctx->user_port = orig->dst.port_be;
  sl_count(SL_STAT_PEERNAME);
}

#endif /* SLUICE_REDIRECT_BPF_H */
