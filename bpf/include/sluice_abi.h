/* The one header shared by the BPF programs and userspace: every map key, value and
 * constant that crosses the kernel boundary lives here and nowhere else.
 *
 * Rules: fixed-width types only, byte order in the field name (_be = network order,
 * otherwise host order), explicit padding, a size assertion on every struct. */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#ifdef __cplusplus
#define SL_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), #type " ABI size")
#else
#define SL_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " ABI size")
#endif

/* Capacity of the hand-off map between sockops and the agent. Entries are removed by the
 * agent on accept and by sockops when the client socket closes, so this bounds the
 * number of connections that are between connect() and accept() at once. */
#define SL_MAX_PENDING_FLOWS 65536
#define SL_MAX_PORTS 64
#define SL_MAX_BYPASS4 1024
#define SL_MAX_BYPASS6 1024
#define SL_MAX_CGROUP_STATS 4096
/* Cgroups exempt from the redirect although an ancestor is enrolled (sl_exempt), and how
 * many ancestor levels the hooks walk to find one. */
#define SL_MAX_EXEMPT_CGROUPS 1024
#define SL_MAX_CGROUP_DEPTH 16

/* Default SO_MARK the agent and the gateway set on the sockets they open (rules:
 * agent.socketMark, gateway.socketMark). A marked socket is exempt from the redirect only
 * in the network namespace whose cookie the agent wrote into sl_config (its own, the
 * node's): a pod can set any mark with CAP_NET_RAW (kernel 5.17+), but cannot move its
 * socket into the node's namespace. The default avoids the bits others give meaning:
 * 0x4000/0x8000 (kube-proxy masquerade/drop), 0x0f00 and the upper 16 bits (Cilium,
 * Calico's default mask 0xffff0000), 0x539/0x111 under mask 0xfff (Istio). */
#define SL_DEFAULT_SOCKET_MARK 0x1051U

enum sl_family {
  SL_FAMILY_INET = 2,   /* AF_INET */
  SL_FAMILY_INET6 = 10, /* AF_INET6 */
};

/* sl_config[0]: written by the agent from the rules, read by the connect hooks. */
struct sl_config {
  __u32 redirect_ip4_be; /* agent listener, IPv4 (also used, v4-mapped, for AF_INET6 sockets) */
  __u16 redirect_port_be;
  __u8 enabled;            /* 0 until the agent has written a complete config: refuse (fail closed) */
  __u8 block_quic;         /* 1: UDP to a redirected port fails with EPERM, so clients fall back to TCP */
  __u32 rules_version;     /* the agent's rule set version, for sluicectl status */
  __u32 socket_mark;       /* the agent's SO_MARK: exempt only together with node_netns_cookie */
  __u8 redirect_ip6[16];   /* agent listener, IPv6; all zero: no IPv6 listener, IPv6 refused */
  __u64 node_netns_cookie; /* the agent's network namespace; 0: no socket is exempt by mark */
};
SL_ASSERT_SIZE(struct sl_config, 40);

/* An endpoint as the kernel saw it: the original destination, or a client's source. */
struct sl_endpoint {
  __u8 addr[16]; /* IPv4 in the first 4 bytes, network order; IPv6 all 16 */
  __u16 port_be;
  __u8 family; /* enum sl_family */
  __u8 pad0;
  __u32 pad1;
};
SL_ASSERT_SIZE(struct sl_endpoint, 24);

/* Value of sl_sk_orig (socket storage, freed with the socket) and of sl_orig_dst. */
struct sl_orig_dst {
  struct sl_endpoint dst; /* where the app asked to connect */
  __u64 cgroup_id;        /* cgroup of the connecting task, for logs and counters */
};
SL_ASSERT_SIZE(struct sl_orig_dst, 32);

/* Key of sl_ports: a redirected destination port, host order. */
struct sl_port_key {
  __u16 port;
  __u16 pad0;
};
SL_ASSERT_SIZE(struct sl_port_key, 4);

/* Key of sl_bypass4 (LPM trie): destinations never redirected. */
struct sl_bypass4_key {
  __u32 prefixlen;
  __u32 addr_be;
};
SL_ASSERT_SIZE(struct sl_bypass4_key, 8);

/* Key of sl_bypass6 (LPM trie). */
struct sl_bypass6_key {
  __u32 prefixlen;
  __u8 addr[16];
};
SL_ASSERT_SIZE(struct sl_bypass6_key, 20);

/* The kernel counters, one list: X(ENUM_SUFFIX, "name", "meaning"). It makes the indices of
 * sl_stats (per-CPU array of __u64) here and the names userspace prints and exports
 * (userspace/datapath/bpf_stats.h), so the two cannot drift apart. Append only: the
 * index is the slot in pinned maps that outlive an agent upgrade. */
#define SL_STAT_LIST(X)                                                                           \
  X(REDIRECTED, "redirected", "connect rewritten to the agent")                                  \
  X(BYPASSED, "bypassed", "destination in a bypass CIDR")                                        \
  X(PORT_IGNORED, "port_ignored", "destination port not redirected")                             \
  X(AGENT_SOCKET, "agent_socket", "socket carries the agent's mark, in the node's namespace")    \
  X(NOT_CONFIGURED, "not_configured", "no config yet: connect refused (fail closed)")            \
  X(STORAGE_FAILED, "storage_failed", "socket storage unavailable: connect refused")             \
  X(HANDOFF, "handoff", "sockops published the flow for the agent")                              \
  X(HANDOFF_FULL, "handoff_full", "sl_orig_dst full: the agent will refuse the flow")            \
  X(PEERNAME, "peername", "getpeername answered with the original destination")                 \
  X(FLOW_CLOSED, "flow_closed_before_accept", "a flow closed before the agent took it")          \
  X(QUIC_BLOCKED, "quic_blocked", "UDP to a redirected port refused")                            \
  X(NO_IPV6_LISTENER, "no_ipv6_listener", "IPv6 connect refused: the agent has no IPv6 listener") \
  X(FOREIGN_MARK, "foreign_mark", "the agent's mark outside the node's namespace: decided as unmarked") \
  X(EXEMPT, "exempt", "the task's cgroup, or an ancestor, is exempt (sl_exempt)")

#define SL_STAT_ENUM_ENTRY(suffix, name, help) SL_STAT_##suffix,
enum sl_stat { SL_STAT_LIST(SL_STAT_ENUM_ENTRY) SL_STAT_COUNT };
#undef SL_STAT_ENUM_ENTRY

/* Value of sl_cg_stats (per-CPU, keyed by cgroup id): the same counters per cgroup. A
 * power-of-two number of slots, so BPF can index with a mask the verifier can follow. */
#define SL_STAT_SLOTS 16
struct sl_cgroup_stats {
  __u64 count[SL_STAT_SLOTS];
};
SL_ASSERT_SIZE(struct sl_cgroup_stats, 8 * SL_STAT_SLOTS);
#ifdef __cplusplus
static_assert(SL_STAT_COUNT <= SL_STAT_SLOTS, "grow SL_STAT_SLOTS");
#else
_Static_assert(SL_STAT_COUNT <= SL_STAT_SLOTS, "grow SL_STAT_SLOTS");
#endif

/* What a connect or sendmsg hook decides from, in one struct so that the decision is a
 * pure function the XDP test wrapper can drive with BPF_PROG_TEST_RUN (which does not
 * exist for cgroup/connect* programs). */
struct sl_decision_input {
  __u64 netns_cookie; /* of the socket's network namespace (bpf_get_netns_cookie) */
  __u8 addr[16];      /* IPv4 in the first 4 bytes for SL_FAMILY_INET; IPv6 (maybe v4-mapped) */
  __u32 mark;
  __u16 port_be;
  __u8 family;   /* enum sl_family */
  __u8 type;     /* SOCK_STREAM 1, SOCK_DGRAM 2 */
  __u8 protocol; /* IPPROTO_TCP 6, IPPROTO_UDP 17 */
  __u8 pad0[7];
};
SL_ASSERT_SIZE(struct sl_decision_input, 40);

enum sl_verdict { SL_VERDICT_PASS = 0, SL_VERDICT_REDIRECT = 1, SL_VERDICT_REFUSE = 2 };

/* One row of the decision test: input in, verdict and counter out. */
struct sl_decision_case {
  struct sl_decision_input input;
  __u32 verdict; /* enum sl_verdict, written by the test program */
  __u32 stat;    /* enum sl_stat counted, SL_STAT_COUNT if none */
};
SL_ASSERT_SIZE(struct sl_decision_case, 48);

#endif /* SLUICE_ABI_H */
