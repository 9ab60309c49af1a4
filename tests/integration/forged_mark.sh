#!/usr/bin/env bash
# The agent's socket mark is not a pass. An attacker in an enrolled pod, root with the
# default container capabilities (CAP_NET_RAW, no CAP_NET_ADMIN), sets SO_MARK to the
# agent's mark (kernel 5.17+ allows that with CAP_NET_RAW) and connects to an external
# :443 over a route that would carry it straight to the origin: the connect is still
# redirected and decided by SNI, UDP/443 is still refused, over IPv4, IPv6 and v4-mapped.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
mark=$(printf '%#x' "$(sed -n 's/^#define SL_DEFAULT_SOCKET_MARK \(0x[0-9a-fA-F]*\)U$/\1/p' \
  "$SL_ROOT/bpf/include/sluice_abi.h")")
check "the agent marks its sockets with the ABI default $mark" wait_for_log agent "socket_mark=$mark "

# Give the pods a real route to the origins (the topology's node drop is a backstop that
# would hide an escape), and prove it with pod-b, which is not enrolled.
sl_host_exec node iptables -F SL-POD-EGRESS
sl_host_exec egress sysctl -qw net.ipv4.ip_forward=1
ip -n "$(sl_ns egress)" route add 198.18.1.0/24 via 198.18.3.1
ip -n "$(sl_ns egress)" route add 198.18.2.0/24 via 198.18.3.1
ip -n "$(sl_ns inet)" route add 198.18.1.0/24 via $SL_EGRESS_INET_ADDR
ip -n "$(sl_ns inet)" route add 198.18.2.0/24 via $SL_EGRESS_INET_ADDR
body=$(pod_curl pod-b $SL_DENIED_HOST $SL_DENIED_ADDR)
check_contains "control: an unenrolled pod now reaches the denied origin" "$body" "^hello from $SL_DENIED_HOST"
check "control: directly, from its own address" wait_for_log origin-access "^$SL_POD_B_ADDR $SL_DENIED_HOST "

# The attacker: root in pod-a with Docker's default capability set, nothing more.
container_caps=cap_chown,cap_dac_override,cap_fowner,cap_fsetid,cap_kill,cap_setgid,cap_setuid,cap_setpcap
container_caps+=,cap_net_bind_service,cap_net_raw,cap_sys_chroot,cap_mknod,cap_audit_write,cap_setfcap
drop=$(capsh --print | sed -n 's/^Bounding set =//p' | tr ',' '\n' | grep -vxF -f <(tr ',' '\n' <<< "$container_caps") |
  paste -sd, -)
attacker() { sl_pod_exec pod-a capsh --drop="$drop" -- -c '"$@"' attacker "$@"; }
caps=$(attacker grep CapEff /proc/self/status | awk '{print $2}')
check "the attacker has CAP_NET_RAW" test $((0x$caps >> 13 & 1)) -eq 1
check "the attacker has no CAP_NET_ADMIN" test $((0x$caps >> 12 & 1)) -eq 0
check "the attacker has no CAP_SYS_ADMIN" test $((0x$caps >> 21 & 1)) -eq 0

forged=$(kernel_counter foreign_mark)
own=$(kernel_counter agent_socket)
redirected=$(kernel_counter redirected)

out=$(attacker "$SL_PROBE" connect $SL_DENIED_ADDR:443 --mark "$mark" --hello $SL_DENIED_HOST --read)
check_not_contains "IPv4: the kernel let the attacker set the agent's mark" "$out" "mark=error"
check_contains "IPv4: getpeername still shows the original destination" "$out" "peer=$SL_DENIED_ADDR:443 "
check_contains "IPv4: the origin's ServerHello never arrived: the agent reset the flow" "$out" "read=(ECONNRESET|eof)"
port=$(probe_local_port "$out")
check "IPv4: the agent took the marked connect and denied it by SNI" wait_for_log agent \
  "deny .*src=$SL_POD_A_ADDR:$port dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"
check_not_contains "IPv4: the denied origin never saw the pod" "$(log_of origin-access 2>/dev/null)" "$SL_POD_A_ADDR"

out=$(attacker "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --mark "$mark" --hello $SL_ALLOWED_HOST --read)
port=$(probe_local_port "$out")
check "IPv4: a marked connect to an allowed host goes through the agent like any other" wait_for_log agent \
  "flow .*src=$SL_POD_A_ADDR:$port dst=$SL_ALLOWED_ADDR:443 sni=$SL_ALLOWED_HOST rule=$SL_ALLOWED_HOST "

out=$(attacker "$SL_PROBE" connect "[::ffff:$SL_DENIED_ADDR]:443" --mark "$mark" --hello $SL_DENIED_HOST --read)
check_contains "v4-mapped: getpeername still shows the original destination" "$out" \
  "peer=\[::ffff:$SL_DENIED_ADDR\]:443 "
port=$(probe_local_port "$out")
check "v4-mapped: the agent took the marked connect and denied it" wait_for_log agent \
  "deny .*src=$SL_POD_A_ADDR:$port dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"

out=$(attacker "$SL_PROBE" connect "[$SL_ALLOWED_ADDR6]:443" --mark "$mark" --hello $SL_DENIED_HOST --read)
check_contains "IPv6: a marked connect to an address no host has is answered (redirected)" "$out" \
  "peer=\[$SL_ALLOWED_ADDR6\]:443 "
check "IPv6: the agent took the marked connect and denied it" wait_for_log agent \
  "deny .*src=\[$SL_POD_A_ADDR6\]:[0-9]+ dst=\[$SL_ALLOWED_ADDR6\]:443 sni=$SL_DENIED_HOST reason=host-not-allowed"

check_contains "UDP/443 with the mark is still refused" \
  "$(attacker "$SL_PROBE" udp $SL_DENIED_ADDR:443 --mark "$mark")" "errno=EPERM"
check_contains "UDP/443 over IPv6 with the mark is still refused" \
  "$(attacker "$SL_PROBE" udp "[$SL_ALLOWED_ADDR6]:443" --mark "$mark")" "errno=EPERM"

check "the kernel counted every forged mark (4 connects, 2 datagrams)" \
  test "$(kernel_counter foreign_mark)" -eq "$((forged + 6))"
check "none of them was taken for the agent's own socket" test "$(kernel_counter agent_socket)" -eq "$own"
check "all four connects were redirected" test "$(kernel_counter redirected)" -eq "$((redirected + 4))"

# Full root in the pod (CAP_NET_ADMIN too) changes nothing: the namespace decides.
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_DENIED_ADDR:443 --mark "$mark" --hello $SL_DENIED_HOST --read)
port=$(probe_local_port "$out")
check "CAP_NET_ADMIN in the pod: the marked connect is still denied by the agent" wait_for_log agent \
  "deny .*src=$SL_POD_A_ADDR:$port dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"
