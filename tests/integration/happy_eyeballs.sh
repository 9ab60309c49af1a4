#!/usr/bin/env bash
# The gateway reaches origins over IPv4 and IPv6 (A and AAAA, Happy Eyeballs as RFC 8305
# describes): a v4-only, a v6-only and a dual-stack name each work end to end from a pod,
# the dual-stack one over IPv6 first, and a dual-stack name whose IPv6 address swallows
# SYNs still connects over IPv4, one attempt delay (250 ms) later rather than after the
# connect timeout (2 s here). A name with one address is dialled alone and fails at that
# deadline when the address swallows SYNs. Every answer still goes through the address guard (dns_guard.sh).
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
host=$SL_ALLOWED_HOST
egress=$(sl_ns egress)
inet=$(sl_ns inet)
V6_DUAL=2001:db8:64::10
V6_ONLY=2001:db8:64::11

# IPv6 between the egress node and the internet namespace, and two IPv6 origins there.
ip -n "$egress" -6 addr add 2001:db8:4::1/64 dev inet nodad
ip -n "$inet" -6 addr add 2001:db8:4::2/64 dev eth0 nodad
ip -n "$inet" -6 addr add $V6_DUAL/128 dev lo nodad
ip -n "$inet" -6 addr add $V6_ONLY/128 dev lo nodad
ip -n "$egress" -6 route add 2001:db8:64::/64 via 2001:db8:4::2
sl_nginx_conf "$SL_RUN_DIR/nginx6" off "  server {
    listen [$V6_DUAL]:443 ssl;
    listen [$V6_ONLY]:443 ssl;
    server_name $host;
    ssl_certificate $SL_RUN_DIR/pki/origin-$host.pem;
    ssl_certificate_key $SL_RUN_DIR/pki/origin-$host.key;
    location / { return 200 \"hello from $host over ipv6 at \$server_addr, you came from \$remote_addr\n\"; }
  }"
sl_spawn nginx6 inet nginx -c "$SL_RUN_DIR/nginx6/nginx.conf" -e "$SL_RUN_DIR/nginx6/error.log"
for _ in $(seq 100); do sl_host_exec inet ss -Hltn "sport = :443" | grep -q "$V6_ONLY" && break; sleep 0.05; done

# No DNS cache: each case is a fresh answer. A 2 s connect deadline (inside curl's 3 s).
sl_write_rules native
printf '  dnsCacheMs: 0\n  upstreamConnectTimeoutMs: 2000\n' >> "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }

answer() {
  sl_stop dnsmasq
  sl_start_dns "$@" || not_ok "dnsmasq restarted with $*"
}
log_lines() { wc -l < "$SL_RUN_DIR/$1.log"; }
new_log_since() { # NAME LINE PATTERN: waits up to 5 s for PATTERN after line LINE
  for _ in $(seq 100); do
    tail -n +"$(($2 + 1))" "$SL_RUN_DIR/$1.log" | grep -Eq -- "$3" && return 0
    sleep 0.05
  done
  return 1
}
# case LABEL UPSTREAM BODY-PATTERN: one curl from pod-a; the gateway dialed UPSTREAM.
case_ok() {
  local label=$1 upstream=$2 pattern=$3 from body start ms
  from=$(log_lines gateway)
  start=$(date +%s%N)
  body=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
  ms=$((($(date +%s%N) - start) / 1000000))
  check_contains "$label: curl from pod-a gets the origin's answer" "$body" "$pattern"
  check "$label: the gateway dialed $upstream" new_log_since gateway "$from" \
    "access .*sni=$host port=443 upstream=$(sed 's/[][]/\\&/g' <<< "$upstream") .*result=ok"
  echo "# $label: curl took ${ms} ms"
  LAST_MS=$ms
}

answer "--address=/$host/$SL_ALLOWED_ADDR"
case_ok "v4-only origin" "$SL_ALLOWED_ADDR:443" "^hello from $host, you came from $SL_EGRESS_INET_ADDR"

answer "--host-record=$host,$V6_ONLY"
case_ok "v6-only origin" "[$V6_ONLY]:443" "^hello from $host over ipv6 at $V6_ONLY, you came from 2001:db8:4::1"

answer "--host-record=$host,$SL_ALLOWED_ADDR,$V6_DUAL"
case_ok "dual-stack origin (IPv6 first)" "[$V6_DUAL]:443" "^hello from $host over ipv6 at $V6_DUAL"
healthy_ms=$LAST_MS

# The IPv6 address now swallows SYNs (no RST, no ICMP): IPv4 must take over after the
# attempt delay, not after the connect timeout (2 s), and nothing fails.
ip netns exec "$inet" ip6tables -A INPUT -d $V6_DUAL -p tcp --dport 443 -j DROP
case_ok "dual-stack, IPv6 blackholed" "$SL_ALLOWED_ADDR:443" "^hello from $host, you came from $SL_EGRESS_INET_ADDR"
check "dual-stack, IPv6 blackholed: connected before the 2 s connect timeout (${LAST_MS} ms)" \
  test "$LAST_MS" -lt 2000
echo "# dual-stack connect-to-answer: ${healthy_ms} ms with IPv6 healthy, ${LAST_MS} ms with IPv6 blackholed"

# Both families blackholed: the dial fails at the deadline with a clear result.
ip netns exec "$inet" iptables -A INPUT -d $SL_ALLOWED_ADDR -p tcp --dport 443 -j DROP
from=$(log_lines gateway)
out=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
check_contains "all addresses blackholed: the pod's client is reset" "$out" "reset by peer|SSL_ERROR_SYSCALL"
check "all addresses blackholed: the gateway says upstream-connect-timeout" new_log_since gateway "$from" \
  "access .*sni=$host .*result=upstream-connect-timeout"

# One address only (no race: the gateway dials it alone), blackholed: the same deadline.
answer "--address=/$host/$SL_ALLOWED_ADDR"
from=$(log_lines gateway)
start=$(date +%s%N)
out=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
ms=$((($(date +%s%N) - start) / 1000000))
check_contains "one address, blackholed: the pod's client is reset" "$out" "reset by peer|SSL_ERROR_SYSCALL"
check "one address, blackholed: the gateway says upstream-connect-timeout, upstream=$SL_ALLOWED_ADDR:443" \
  new_log_since gateway "$from" "access .*sni=$host port=443 upstream=$SL_ALLOWED_ADDR:443 .*result=upstream-connect-timeout"
check "one address, blackholed: the client waited for the 2 s deadline (${ms} ms)" test "$ms" -ge 1900
