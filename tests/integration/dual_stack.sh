#!/usr/bin/env bash
# The kernel side on real cgroups: IPv6 and v4-mapped redirect with getpeername, QUIC
# refused, per-cgroup counters, and fail-closed when the forwarder is down.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }

# IPv6 end to end: curl over IPv6 to an address no host has; only the redirect can answer.
body=$(sl_pod_exec pod-a curl -sS -6 --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
  --resolve "$SL_ALLOWED_HOST:443:[$SL_ALLOWED_ADDR6]" "https://$SL_ALLOWED_HOST/")
check_contains "IPv6: curl -6 from pod-a reaches the host through the gateway" "$body" \
  "you came from $SL_EGRESS_INET_ADDR"
check "IPv6: the agent logged the flow with IPv6 source and destination" wait_for_log agent \
  "src=\[$SL_POD_A_ADDR6\]:[0-9]+ dst=\[$SL_ALLOWED_ADDR6\]:443 sni=$SL_ALLOWED_HOST .*result=ok"
out=$(sl_pod_exec pod-a "$SL_PROBE" connect "[$SL_ALLOWED_ADDR6]:443")
check_contains "IPv6: getpeername returns the original destination" "$out" "peer=\[$SL_ALLOWED_ADDR6\]:443 "

# v4-mapped on an AF_INET6 socket (Java's default): redirected, getpeername kept.
# (It waits for the agent's verdict: see getpeername.sh.)
out=$(sl_pod_exec pod-a "$SL_PROBE" connect "[::ffff:$SL_ALLOWED_ADDR]:443" --timeout-ms 5000 --send "GET / HTTP/1.0" --read)
check_contains "v4-mapped: connect succeeds and getpeername is the original" "$out" \
  "peer=\[::ffff:$SL_ALLOWED_ADDR\]:443 "
port=$(probe_local_port "$out")
check "v4-mapped: the agent found it under the IPv4 source" wait_for_log agent \
  "src=$SL_POD_A_ADDR:$port dst=$SL_ALLOWED_ADDR:443 sni=- reason=not-tls"
out=$(echo | sl_pod_exec pod-a timeout 10 openssl s_client -connect "[::ffff:$SL_ALLOWED_ADDR]:443" \
  -servername $SL_ALLOWED_HOST -CAfile "$SL_RUN_DIR/pki/public-ca.pem" -verify_return_error 2>&1)
check_contains "v4-mapped: a real TLS client verifies the origin through sluice" "$out" "^Verification: OK"

# QUIC: UDP to a redirected port is refused in every form; other UDP is not touched.
check_contains "UDP/443 sendto is refused" "$(sl_pod_exec pod-a "$SL_PROBE" udp $SL_ALLOWED_ADDR:443)" "errno=EPERM"
check_contains "UDP/443 connect is refused" "$(sl_pod_exec pod-a "$SL_PROBE" udp $SL_ALLOWED_ADDR:443 --connect)" \
  "udp-connect=error errno=EPERM"
check_contains "UDP/443 over IPv6 is refused" "$(sl_pod_exec pod-a "$SL_PROBE" udp "[$SL_ALLOWED_ADDR6]:443")" \
  "errno=EPERM"
check_contains "UDP/53 is not touched" "$(sl_pod_exec pod-a "$SL_PROBE" udp $SL_DNS_ADDR:53)" "send=ok"
check_contains "pod-b (not enabled) may send UDP/443" "$(sl_pod_exec pod-b "$SL_PROBE" udp $SL_ALLOWED_ADDR:443)" \
  "send=ok"
check_contains "the kernel counted the QUIC refusals" "$(kernel_counter quic_blocked)" "^[3-9]$"

cg=$(stat -c %i "$(sl_cgroup_root)/pod-a")
check_contains "counters per cgroup name pod-a's cgroup" "$(ctl status)" \
  "id=$cg .*pod-a .*redirected=[1-9][0-9]* .*quic_blocked=3"

# Fail closed: with the forwarder down, a redirected connect fails at once and nothing
# leaves the pod another way.
drops() { sl_host_exec node iptables -L SL-POD-EGRESS -v -x -n | awk '$3=="DROP"{s+=$1} END{print s+0}'; }
before=$(drops)
sl_stop agent
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000)
check_contains "agent down: connect fails with ECONNREFUSED" "$out" "connect=error errno=ECONNREFUSED"
ms=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<< "$out")
check "agent down: it fails quickly (${ms} ms)" test "${ms:-9999}" -lt 500
out=$(sl_pod_exec pod-a "$SL_PROBE" connect "[$SL_ALLOWED_ADDR6]:443" --timeout-ms 3000)
check_contains "agent down: IPv6 connect fails too" "$out" "connect=error errno=ECONNREFUSED"
check "agent down: no packet went toward the internet" test "$(drops)" -eq "$before"
check_contains "agent down: the links stay (enabled cgroups fail closed)" "$(ctl status)" "pod-a programs=7"

sl_start_agent
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "agent back: it adopted the pins and the path works again" "$body" "^hello from $SL_ALLOWED_HOST"
