/* BPF-only: maps and helpers of the redirect. Entry points are in sluice.bpf.c; the
 * decision (sl_decide) is also driven by the XDP test wrapper in sluice_test.bpf.c. */
#ifndef SLUICE_REDIRECT_BPF_H
#define SLUICE_REDIRECT_BPF_H

#include "sluice_abi.h"

#define SL_SOCK_ADDR_PROCEED 1
#define SL_SOCK_ADDR_REJECT 0 /* connect()/sendmsg() fails with EPERM */

#define SL_AF_INET 2
#define SL_AF_INET6 10
#define SL_SOCK_STREAM 1
#define SL_SOCK_DGRAM 2
#define SL_IPPROTO_TCP 6
#define SL_IPPROTO_UDP 17
#define SL_NO_STAT SL_STAT_COUNT

/* Written by the agent (rules), read by the hooks. Key 0 only. */
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

/* Written by the agent (rules): IPv6 destinations never redirected, longest prefix. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, SL_MAX_BYPASS6);
  __type(key, struct sl_bypass6_key);
  __type(value, __u8);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_bypass6 SEC(".maps");

/* Written by connect4/6, read by sockops and getpeername4/6: the original destination of
 * a redirected socket, as the app gave it. Freed with the socket, so it cannot leak. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sl_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME); /* an agent restart keeps live sockets' storage */
} sl_sk_orig SEC(".maps");

/* Written by sockops at TCP_CONNECT_CB, keyed by the client's source endpoint as the
 * agent's accept() sees it; taken (lookup and delete) by the agent, deleted by sockops
 * when the client socket closes first. Not LRU: a live entry must never be evicted; when
 * full, the flow is not published and the agent refuses it (fail closed). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SL_MAX_PENDING_FLOWS);
  __type(key, struct sl_endpoint);
  __type(value, struct sl_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_orig_dst SEC(".maps");

/* Written by the agent (agent.exemptCgroups): cgroup ids never redirected although an
 * ancestor is enrolled (the programs are attached at the kubelet's pod parent, so every
 * pod is enforced from its first connect; this is the way out for named ones). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SL_MAX_EXEMPT_CGROUPS);
  __type(key, __u64);
  __type(value, __u8);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_exempt SEC(".maps");

/* Incremented by every program, read by sluicectl: enum sl_stat, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SL_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_stats SEC(".maps");

/* The same counters per cgroup id, read by sluicectl. LRU: counters of cgroups long gone
 * may be evicted, unlike flows (sl_stats keeps the node totals exact). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
  __uint(max_entries, SL_MAX_CGROUP_STATS);
  __type(key, __u64);
  __type(value, struct sl_cgroup_stats);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_cg_stats SEC(".maps");

/* cgroupId 0: the node total only (a context with no current task, like a softirq). */
static __always_inline void sl_count(__u32 stat, __u64 cgroupId) {
  if (stat >= SL_STAT_COUNT) return;
  __u64* total = bpf_map_lookup_elem(&sl_stats, &stat);
  if (total) *total += 1; /* per-CPU slot: no atomic needed */
  if (!cgroupId) return;
  struct sl_cgroup_stats* per = bpf_map_lookup_elem(&sl_cg_stats, &cgroupId);
  if (!per) {
    struct sl_cgroup_stats zero = {};
    bpf_map_update_elem(&sl_cg_stats, &cgroupId, &zero, BPF_NOEXIST);
    per = bpf_map_lookup_elem(&sl_cg_stats, &cgroupId);
    if (!per) return;
  }
  per->count[stat & (SL_STAT_SLOTS - 1)] += 1;
}

static __always_inline int sl_is_v4_mapped(const __u8* addr) {
  for (int i = 0; i < 10; i++)
    if (addr[i]) return 0;
  return addr[10] == 0xff && addr[11] == 0xff;
}

static __always_inline int sl_is_bypassed4(const __u8* addr4) {
  struct sl_bypass4_key key = {.prefixlen = 32};
  __builtin_memcpy(&key.addr_be, addr4, 4);
  return bpf_map_lookup_elem(&sl_bypass4, &key) != NULL;
}

static __always_inline int sl_is_bypassed6(const __u8* addr) {
  struct sl_bypass6_key key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, addr, 16);
  return bpf_map_lookup_elem(&sl_bypass6, &key) != NULL;
}

static __always_inline int sl_is_redirected_port(__u16 port) {
  struct sl_port_key key = {.port = port};
  return bpf_map_lookup_elem(&sl_ports, &key) != NULL;
}

static __always_inline int sl_has_ip6_listener(const struct sl_config* cfg) {
  __u8 any = 0;
  for (int i = 0; i < 16; i++) any |= cfg->redirect_ip6[i];
  return any != 0;
}

static __always_inline int sl_has_own_mark(const struct sl_decision_input* in, const struct sl_config* cfg) {
  return cfg && cfg->socket_mark && in->mark == cfg->socket_mark;
}

/* The mark alone proves nothing (CAP_NET_RAW sets it since 5.17): only the node's network
 * namespace, which a pod's socket cannot be in, makes it the agent's (or the gateway's). */
static __always_inline int sl_is_own_socket(const struct sl_decision_input* in, const struct sl_config* cfg) {
  return sl_has_own_mark(in, cfg) && cfg->node_netns_cookie && in->netns_cookie == cfg->node_netns_cookie;
}

/* The whole redirect policy of the kernel side, from values only. */
static __always_inline enum sl_verdict sl_decide(const struct sl_decision_input* in, const struct sl_config* cfg,
                                                 __u32* stat) {
  *stat = SL_NO_STAT;
  int tcp = in->type == SL_SOCK_STREAM && in->protocol == SL_IPPROTO_TCP;
  int udp = in->type == SL_SOCK_DGRAM && (in->protocol == SL_IPPROTO_UDP || in->protocol == 0);
  if (!tcp && !udp) return SL_VERDICT_PASS;
  if (sl_is_own_socket(in, cfg)) {
    *stat = SL_STAT_AGENT_SOCKET;
    return SL_VERDICT_PASS;
  }
  if (!sl_is_redirected_port(bpf_ntohs(in->port_be))) {
    *stat = SL_STAT_PORT_IGNORED;
    return SL_VERDICT_PASS;
  }
  int v4 = in->family == SL_FAMILY_INET;
  int mapped = in->family == SL_FAMILY_INET6 && sl_is_v4_mapped(in->addr);
  int bypassed = v4 ? sl_is_bypassed4(in->addr) : mapped ? sl_is_bypassed4(in->addr + 12) : sl_is_bypassed6(in->addr);
  if (bypassed) {
    *stat = SL_STAT_BYPASSED;
    return SL_VERDICT_PASS;
  }
  if (udp) {
    /* QUIC would carry the TLS handshake where the agent cannot see it: refuse it so the
     * client falls back to TCP, where the policy applies. */
    if (cfg && cfg->block_quic) {
      *stat = SL_STAT_QUIC_BLOCKED;
      return SL_VERDICT_REFUSE;
    }
    *stat = SL_STAT_PORT_IGNORED;
    return SL_VERDICT_PASS;
  }
  if (!cfg || !cfg->enabled) {
    /* An enabled cgroup with no agent config must not reach the port directly. */
    *stat = SL_STAT_NOT_CONFIGURED;
    return SL_VERDICT_REFUSE;
  }
  if (!v4 && !mapped && !sl_has_ip6_listener(cfg)) {
    *stat = SL_STAT_NO_IPV6_LISTENER;
    return SL_VERDICT_REFUSE;
  }
  *stat = SL_STAT_REDIRECTED;
  return SL_VERDICT_REDIRECT;
}

/* The current task's cgroup or one of its ancestors is exempt. Walks from the root down
 * (level 0 is the root); a level past the task's own depth reads as 0. */
static __always_inline int sl_current_cgroup_exempt(void) {
  for (int level = 0; level < SL_MAX_CGROUP_DEPTH; level++) {
    __u64 id = bpf_get_current_ancestor_cgroup_id(level);
    if (!id) return 0;
    if (bpf_map_lookup_elem(&sl_exempt, &id)) return 1;
  }
  return 0;
}

static __always_inline struct sl_config* sl_current_config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&sl_config, &zero);
}

/* Records the original destination in socket storage; false if storage failed. */
static __always_inline int sl_remember(struct bpf_sock* sk, const struct sl_decision_input* in, __u64 cgroupId) {
  struct sl_orig_dst* orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!orig) return 0;
  __builtin_memset(&orig->dst, 0, sizeof(orig->dst));
  __builtin_memcpy(orig->dst.addr, in->addr, 16);
  orig->dst.port_be = in->port_be;
  orig->dst.family = in->family;
  orig->cgroup_id = cgroupId;
  return 1;
}

/* The part of every connect/sendmsg hook that does not depend on the family: decide,
 * remember the original destination when redirecting, count. Returns the verdict; on
 * SL_VERDICT_REDIRECT the caller rewrites the destination with *cfgOut. */
static __always_inline enum sl_verdict sl_hook_decide(struct bpf_sock* sk, const struct sl_decision_input* in,
                                                      int rewrite, struct sl_config** cfgOut) {
  struct sl_config* cfg = sl_current_config();
  __u64 cgroupId = bpf_get_current_cgroup_id();
  *cfgOut = cfg;
  __u32 stat;
  enum sl_verdict verdict = sl_decide(in, cfg, &stat);
  /* The ancestor walk only for connects the redirect would act on, not for every one. */
  if (verdict != SL_VERDICT_PASS && sl_current_cgroup_exempt()) {
    sl_count(SL_STAT_EXEMPT, cgroupId);
    return SL_VERDICT_PASS;
  }
  /* A forged mark is decided like any other socket; counted so the attempt shows. */
  if (sl_has_own_mark(in, cfg) && !sl_is_own_socket(in, cfg)) sl_count(SL_STAT_FOREIGN_MARK, cgroupId);
  if (verdict == SL_VERDICT_REDIRECT && (!rewrite || !cfg)) {
    verdict = SL_VERDICT_PASS; /* sendmsg never rewrites; cfg is known non-NULL here */
  } else if (verdict == SL_VERDICT_REDIRECT && !sl_remember(sk, in, cgroupId)) {
    stat = SL_STAT_STORAGE_FAILED;
    verdict = SL_VERDICT_REFUSE;
  }
  sl_count(stat, cgroupId);
  return verdict;
}

static __always_inline void sl_input_common(struct bpf_sock_addr* ctx, struct bpf_sock* sk,
                                            struct sl_decision_input* in, __u8 family) {
  in->netns_cookie = bpf_get_netns_cookie(ctx);
  in->port_be = (__u16)ctx->user_port;
  in->family = family;
  in->type = ctx->type;
  in->protocol = ctx->protocol;
  in->mark = sk->mark;
}

/* connect4 and sendmsg4: returns SL_SOCK_ADDR_PROCEED or _REJECT. */
static __always_inline int sl_hook4(struct bpf_sock_addr* ctx, int rewrite) {
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return SL_SOCK_ADDR_PROCEED;
  struct sl_decision_input in = {};
  __u32 dst = ctx->user_ip4;
  __builtin_memcpy(in.addr, &dst, 4);
  sl_input_common(ctx, sk, &in, SL_FAMILY_INET);
  struct sl_config* cfg;
  enum sl_verdict verdict = sl_hook_decide(sk, &in, rewrite, &cfg);
  if (verdict == SL_VERDICT_REDIRECT && cfg) {
    ctx->user_ip4 = cfg->redirect_ip4_be;
    ctx->user_port = cfg->redirect_port_be;
  }
  return verdict == SL_VERDICT_REFUSE ? SL_SOCK_ADDR_REJECT : SL_SOCK_ADDR_PROCEED;
}

/* connect6 and sendmsg6, including v4-mapped destinations on dual-stack sockets. */
static __always_inline int sl_hook6(struct bpf_sock_addr* ctx, int rewrite) {
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return SL_SOCK_ADDR_PROCEED;
  struct sl_decision_input in = {};
  __u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
  __builtin_memcpy(in.addr, &w0, 4);
  __builtin_memcpy(in.addr + 4, &w1, 4);
  __builtin_memcpy(in.addr + 8, &w2, 4);
  __builtin_memcpy(in.addr + 12, &w3, 4);
  sl_input_common(ctx, sk, &in, SL_FAMILY_INET6);
  struct sl_config* cfg;
  enum sl_verdict verdict = sl_hook_decide(sk, &in, rewrite, &cfg);
  if (verdict == SL_VERDICT_REDIRECT && cfg) {
    if (sl_is_v4_mapped(in.addr)) {
      /* The connection is IPv4 on the wire: send it to the IPv4 listener, v4-mapped. */
      ctx->user_ip6[0] = 0;
      ctx->user_ip6[1] = 0;
      ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
      ctx->user_ip6[3] = cfg->redirect_ip4_be;
    } else {
      __u32 r[4];
      __builtin_memcpy(r, cfg->redirect_ip6, 16);
      ctx->user_ip6[0] = r[0];
      ctx->user_ip6[1] = r[1];
      ctx->user_ip6[2] = r[2];
      ctx->user_ip6[3] = r[3];
    }
    ctx->user_port = cfg->redirect_port_be;
  }
  return verdict == SL_VERDICT_REFUSE ? SL_SOCK_ADDR_REJECT : SL_SOCK_ADDR_PROCEED;
}

/* The client's source endpoint as the agent's accept() will see it: IPv4 for AF_INET
 * sockets and for v4-mapped connections of AF_INET6 sockets, IPv6 otherwise. */
static __always_inline void sl_local_endpoint(struct bpf_sock_ops* skops, struct sl_endpoint* ep) {
  __builtin_memset(ep, 0, sizeof(*ep));
  ep->port_be = bpf_htons((__u16)skops->local_port); /* local_port is host order */
  __u32 w[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3]};
  int mapped = skops->family == SL_AF_INET6 && w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
  if (skops->family == SL_AF_INET || mapped) {
    __u32 src = skops->local_ip4;
    __builtin_memcpy(ep->addr, &src, 4);
    ep->family = SL_FAMILY_INET;
  } else {
    __builtin_memcpy(ep->addr, w, 16);
    ep->family = SL_FAMILY_INET6;
  }
}

static __always_inline void sl_publish_flow(struct bpf_sock_ops* skops) {
  struct bpf_sock* sk = skops->sk;
  if (!sk) return;
  struct sl_orig_dst* orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, 0);
  if (!orig) return; /* not a redirected socket */
  struct sl_endpoint key;
  sl_local_endpoint(skops, &key);
  struct sl_orig_dst value = *orig;
  if (bpf_map_update_elem(&sl_orig_dst, &key, &value, BPF_ANY) != 0) {
    sl_count(SL_STAT_HANDOFF_FULL, value.cgroup_id);
    return;
  }
  /* Ask for state callbacks so the entry is removed if the client closes first. */
  bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
  sl_count(SL_STAT_HANDOFF, value.cgroup_id);
}

static __always_inline void sl_forget_flow(struct bpf_sock_ops* skops) {
  struct sl_endpoint key;
  sl_local_endpoint(skops, &key);
  if (bpf_map_delete_elem(&sl_orig_dst, &key) == 0)
    sl_count(SL_STAT_FLOW_CLOSED, 0); /* may run in softirq: no current cgroup */
}

static __always_inline void sl_restore_peer4(struct bpf_sock_addr* ctx) {
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return;
  struct sl_orig_dst* orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, 0);
  if (!orig || orig->dst.family != SL_FAMILY_INET) return;
  __u32 dst_be;
  __builtin_memcpy(&dst_be, orig->dst.addr, sizeof(dst_be));
  ctx->user_ip4 = dst_be;
  ctx->user_port = orig->dst.port_be;
  sl_count(SL_STAT_PEERNAME, bpf_get_current_cgroup_id());
}

static __always_inline void sl_restore_peer6(struct bpf_sock_addr* ctx) {
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return;
  struct sl_orig_dst* orig = bpf_sk_storage_get(&sl_sk_orig, sk, 0, 0);
  if (!orig || orig->dst.family != SL_FAMILY_INET6) return;
  __u32 w[4];
  __builtin_memcpy(w, orig->dst.addr, 16);
  ctx->user_ip6[0] = w[0];
  ctx->user_ip6[1] = w[1];
  ctx->user_ip6[2] = w[2];
  ctx->user_ip6[3] = w[3];
  ctx->user_port = orig->dst.port_be;
  sl_count(SL_STAT_PEERNAME, bpf_get_current_cgroup_id());
}

#endif /* SLUICE_REDIRECT_BPF_H */
