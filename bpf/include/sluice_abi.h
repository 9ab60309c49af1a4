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

/* The agent sets this SO_MARK on every socket it opens; the connect hooks never redirect
 * a marked socket. It is the second, independent guard against a redirect loop (the
 * first is that the agent's own cgroup is never enabled). */
#define SL_AGENT_SOCKET_MARK 0x51cef00dU

enum sl_family {
  SL_FAMILY_INET = 2,   /* AF_INET */
  SL_FAMILY_INET6 = 10, /* AF_INET6 */
};

/* sl_config[0]: written by the agent from the rules, read by the connect hooks. */
struct sl_config {
  __u32 redirect_ip4_be; /* agent listener, IPv4 */
  __u16 redirect_port_be;
  __u8 enabled; /* 0 until the agent has written a complete config: refuse (fail closed) */
  __u8 pad0;
  __u32 rules_version; /* the agent's rule set version, for sluicectl status */
  __u32 pad1;
};
SL_ASSERT_SIZE(struct sl_config, 16);

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

/* Indices of sl_stats (per-CPU array of __u64). Keep sl_stat_names in userspace in the
 * same order (userspace/common/bpf_stats.h asserts the count). */
enum sl_stat {
  SL_STAT_REDIRECTED = 0, /* connect rewritten to the agent */
  SL_STAT_BYPASSED,       /* destination in a bypass CIDR */
  SL_STAT_PORT_IGNORED,   /* destination port not redirected */
  SL_STAT_AGENT_SOCKET,   /* socket carries the agent's mark */
  SL_STAT_NOT_CONFIGURED, /* no config yet: connect refused (fail closed) */
  SL_STAT_STORAGE_FAILED, /* socket storage unavailable: connect refused */
  SL_STAT_HANDOFF,        /* sockops published the flow for the agent */
  SL_STAT_HANDOFF_FULL,   /* sl_orig_dst full: the agent will refuse the flow */
  SL_STAT_PEERNAME,       /* getpeername answered with the original destination */
  SL_STAT_FLOW_CLOSED,    /* a flow closed before the agent took it */
  SL_STAT_COUNT
};

#endif /* SLUICE_ABI_H */
