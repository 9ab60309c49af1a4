#!/usr/bin/env bash
# The gateway never dials a DNS answer that points inside: the topology's DNS answers the
# allowed name with each forbidden address class in turn, while a listener on the egress
# node waits on every one of those addresses; the pod's client is reset, the gateway names
# the reason, the name and the address, and the listener sees no connection. Allowed
# answers next to refused ones are still dialed, opted-in private ranges and STATIC
# endpoints written in the rules work, and the agent's ALLOW_ANY pass-through refuses the
# metadata address.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
host=$SL_ALLOWED_HOST
egress=$(sl_ns egress)
inet=$(sl_ns inet)

# Rules: the Istio seed with the gateway's guard fields; no DNS cache, so each case is a
# fresh answer. 198.19.7.0/24 stands for the cluster's service range.
sl_write_rules istio
node_rules=$SL_RUN_DIR/sluice-node.yaml
cat >> "$node_rules" <<'EOF'
  dnsCacheMs: 0
  denyCidrs: [198.19.7.0/24]
  allowPrivateCidrs: [172.16.5.0/24]
EOF

# Every forbidden address exists on the egress node, and one dual-stack listener takes
# :443 on all of them: a SYN to any would be accepted and logged.
for a in 169.254.169.254 10.77.0.5 198.19.7.7; do ip -n "$egress" addr add $a/32 dev lo; done
sl_spawn listener egress "$SL_PROBE" serve "[::]:443" --count 1000 --timeout-ms 170000
sl_wait_listen egress 443 || not_ok "the egress listener is up"
controls=0
for a in 127.0.0.1 "[::1]" 169.254.169.254 $SL_EGRESS_ADDR 10.77.0.5 198.19.7.7; do
  out=$(sl_host_exec egress "$SL_PROBE" connect "$a:443" --timeout-ms 3000 --read)
  check_contains "control: a connection from the egress node to $a:443 reaches the listener" "$out" "sl-probe"
  controls=$((controls + 1))
done
accepted() { grep -c '^accepted' "$SL_RUN_DIR/listener.log"; }
check "control: the listener logged each control connection" test "$(accepted)" -eq $controls

# Private answers the rules opt in (172.16.5.0/24), and the STATIC endpoint below
# (10.88.0.10), are origins in the internet namespace: both forward to the real origin.
for a in 172.16.5.10 10.88.0.10; do
  ip -n "$egress" route add $a/32 via 198.18.4.2
  ip netns exec "$inet" iptables -t nat -A PREROUTING -d $a -p tcp --dport 443 \
    -j DNAT --to-destination $SL_ALLOWED_ADDR:443
done
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
check "the gateway read its own addresses for the guard" wait_for_log gateway \
  "address guard: own addresses .*$SL_EGRESS_ADDR.*; deny 1 CIDRs; private CIDRs opted in 1"

# answer DNSMASQ_ARGS...: the DNS server now answers the allowed name so.
answer() {
  sl_stop dnsmasq
  sl_start_dns "$@" || not_ok "dnsmasq restarted with $*"
}
# new_log_since NAME LINE PATTERN: waits up to 5 s for PATTERN after line LINE of the log.
new_log_since() {
  local i
  for ((i = 0; i < 100; i++)); do
    tail -n +"$(($2 + 1))" "$SL_RUN_DIR/$1.log" | grep -Eq -- "$3" && return 0
    sleep 0.05
  done
  return 1
}
log_lines() { wc -l < "$SL_RUN_DIR/$1.log"; }

# refused LABEL ADDRESS REASON DNSMASQ_ARGS...: the name answers only ADDRESS (after any
# CNAME), which the gateway must refuse for REASON.
refused() {
  local label=$1 address=$2 reason=$3
  shift 3
  answer "$@"
  local from out rc
  from=$(log_lines gateway)
  out=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
  rc=$?
  check "$label: curl from pod-a fails" test $rc -ne 0
  check_contains "$label: the pod's client is reset" "$out" "reset by peer|SSL_ERROR_SYSCALL"
  check "$label: the gateway logs dns-refused with the name, the address and the reason" new_log_since gateway \
    "$from" "dns-refused host=$host address=$address reason=$reason peer=198.18.3.1:[0-9]+ identity=spiffe://"
  check "$label: the access line's result is dns-refused:$reason" new_log_since gateway "$from" \
    "access .*sni=$host port=443 upstream=- .*result=dns-refused:$reason( peer_serial=[0-9A-F]+)?( connection_id=[^ ]+)?\$"
  check "$label: the listener saw no connection" test "$(accepted)" -eq $controls
}

refused "loopback" 127.0.0.1 loopback "--address=/$host/127.0.0.1"
refused "cloud metadata" 169.254.169.254 link-local "--address=/$host/169.254.169.254"
refused "the gateway's own address" $SL_EGRESS_ADDR self "--address=/$host/$SL_EGRESS_ADDR"
refused "a private address not opted in" 10.77.0.5 private "--address=/$host/10.77.0.5"
refused "a denied cluster range" 198.19.7.7 deny-cidr "--address=/$host/198.19.7.7"
refused "AAAA ::1" ::1 loopback "--address=/$host/::1"
refused "AAAA v4-mapped loopback" ::ffff:127.0.0.1 loopback "--address=/$host/::ffff:127.0.0.1"
refused "a CNAME to the metadata address" 169.254.169.254 link-local \
  "--host-record=metadata.internal.test,169.254.169.254" "--cname=$host,metadata.internal.test"
check "refusals are counted per reason" grep -Eq "reason=loopback .*refused_total=3$" "$SL_RUN_DIR/gateway.log"

# A refused answer next to a good one: only the good one is dialed.
answer "--host-record=$host,127.0.0.1,::1" "--host-record=$host,$SL_ALLOWED_ADDR"
from=$(log_lines gateway)
body=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
check_contains "mixed answers: the allowed address still works" "$body" "^hello from $host"
check "mixed answers: the refused ones are logged" new_log_since gateway "$from" \
  "dns-refused host=$host address=127.0.0.1 reason=loopback"
check "mixed answers: the gateway dialed the allowed address" new_log_since gateway "$from" \
  "access .*sni=$host port=443 upstream=$SL_ALLOWED_ADDR:443 .*result=ok"
check "mixed answers: the listener saw no connection" test "$(accepted)" -eq $controls

# A private range the rules opt in is dialed.
answer "--address=/$host/172.16.5.10"
from=$(log_lines gateway)
body=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
check_contains "an opted-in private answer works end to end" "$body" "^hello from $host"
check "the gateway dialed the opted-in private address" new_log_since gateway "$from" \
  "access .*sni=$host port=443 upstream=172.16.5.10:443 .*result=ok"

# STATIC endpoints are dialed as written, even in a private range, and DNS is not asked
# (the DNS server is stopped).
sl_stop dnsmasq
sed 's/^  resolution: DNS$/  resolution: STATIC\n  endpoints:\n  - address: 10.88.0.10/' \
  "$SL_RUN_DIR/seed-egress.yaml" > "$SL_RUN_DIR/seed-egress.new"
check "the rules now name a STATIC endpoint" grep -q "address: 10.88.0.10" "$SL_RUN_DIR/seed-egress.new"
mv "$SL_RUN_DIR/seed-egress.new" "$SL_RUN_DIR/seed-egress.yaml"
check "the gateway reloaded the STATIC rules" wait_for_log gateway "rules reloaded .* version=2"
check "the agent reloaded the STATIC rules" wait_for_log agent "rules reloaded .* version=2"
from=$(log_lines gateway)
body=$(pod_curl pod-a $host $SL_ALLOWED_ADDR 2>&1)
check_contains "a STATIC endpoint in a private range works end to end" "$body" "^hello from $host"
check "the gateway dialed the STATIC address" new_log_since gateway "$from" \
  "access .*sni=$host port=443 upstream=10.88.0.10:443 .*result=ok"
check_not_contains "the STATIC address was never refused" "$(log_of gateway)" "address=10.88.0.10"

# The agent's ALLOW_ANY pass-through dials from the node's namespace: the metadata
# address there (with a listener) is refused for a host no rule names.
nodens=$(sl_ns node)
ip -n "$nodens" addr add 169.254.169.254/32 dev lo
sl_spawn node-listener node "$SL_PROBE" serve "169.254.169.254:443" --count 1000 --timeout-ms 170000
sl_wait_listen node 443 || not_ok "the node listener is up"
sed -i 's/mode: REGISTRY_ONLY/mode: ALLOW_ANY/' "$node_rules"
check "the agent reloaded with ALLOW_ANY" wait_for_log agent "rules reloaded .* version=3"
out=$(echo | sl_pod_exec pod-a timeout 10 openssl s_client -connect 169.254.169.254:443 \
  -servername unlisted.example.net 2>&1)
check "ALLOW_ANY: the agent refuses the metadata address" wait_for_log agent \
  "deny cgroup=[0-9]+ pod=- src=$SL_POD_A_ADDR:[0-9]+ dst=169.254.169.254:443 sni=unlisted.example.net reason=destination-refused:link-local"
check_not_contains "ALLOW_ANY: the app got no TLS session" "$out" "BEGIN CERTIFICATE|Server certificate"
check_not_contains "ALLOW_ANY: the node's metadata listener saw no connection" "$(log_of node-listener)" "^accepted"
check "the egress listener saw only the control connections" test "$(accepted)" -eq $controls
