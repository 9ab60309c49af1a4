#!/usr/bin/env bash
# The agent's retry on another gateway, forced three ways with two gateways on the egress
# node (A 198.18.3.2, B 198.18.3.3, B's upstream sockets marked 4178 = 0x1052):
#   1. A's dials to the origin are reset (an iptables rule on A's mark only): A answers
#      502 upstream-connect, the agent opens the stream again on B; every app connection
#      succeeds, each retried flow shows retries=1, and the origin sees each app
#      connection exactly once.
#   2. A host the agent allows and the gateways refuse (403 host-not-allowed) is NOT
#      retried: one gateway answers, the app is reset, retries=0.
#   3. A stopped (SIGSTOP) while new connections open, then killed: the streams in
#      flight on A, which had no byte back, are retried on B when A's tunnel breaks;
#      every app connection succeeds.
source "$(dirname "$0")/../lib/harness.sh"
here=$(cd "$(dirname "$0")" && pwd)
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native || { not_ok "rules written"; exit 1; }
sl_second_gateway "$SL_GATEWAY_B_ADDR:15443" 4178 || { not_ok "gateway B starts"; exit 1; }
check "gateway B marks its upstream sockets 4178" grep -q '^  socketMark: 4178$' "$SL_RUN_DIR/rules-b.yaml"
# The agent allows one host more than the gateways: their policy refusal (403).
REFUSED_HOST=refused.example.org
# Phase 3 needs A's tunnels to look healthy while A is stopped, until the kill: with the
# agent's default PING (every 5 s, 5 s to answer) a PING sent just after the STOP timed
# out before twelve slow-starting clients reached the agent (CI, 2 cores), and every
# stream went to B with nothing to retry. A PING every 10 minutes keeps the STOP unseen.
sed -e "s/^hosts:/hosts:\n  - name: $REFUSED_HOST/" \
  -e "s/^    addresses: \[.*\]\$/&\n    pingIntervalMs: 600000/" \
  "$SL_RUN_DIR/rules.yaml" > "$SL_RUN_DIR/agent-rules.yaml"
check "the agent PINGs its gateways only every 10 minutes" grep -q '^    pingIntervalMs: 600000$' "$SL_RUN_DIR/agent-rules.yaml"
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" --config "$SL_RUN_DIR/rules.yaml"
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "gateway A starts"; exit 1; }
SL_RULE_FILES=("$SL_RUN_DIR/agent-rules.yaml")
sl_start_agent || { not_ok "agent starts"; exit 1; }

A=$SL_EGRESS_ADDR:15443
B=$SL_GATEWAY_B_ADDR:15443
app_tls() {
  sl_pod_exec pod-a env APP_TIMEOUT=${APP_TIMEOUT:-8} CA="$SL_RUN_DIR/pki/public-ca.pem" python3 "$here/tunnel/app.py" \
    $SL_ALLOWED_ADDR $SL_ALLOWED_HOST tls 2>&1
}
origin_gets() { grep -c "\"GET / HTTP/1.1\" 200" "$SL_RUN_DIR/origin-access.log"; }
metric() { # SERIES: the agent's sample, 0 if absent
  sl_host_exec node curl -sS -m 5 http://127.0.0.1:15020/metrics | awk -v s="$1" '$1==s {v=$2} END {printf "%d\n", v}'
}
# retried_ids GATEWAY AFTER: connection ids of the retry records off GATEWAY after AFTER.
retried_ids() {
  grep -E "retry gateway=$1 after=$2( |$)" "$SL_RUN_DIR/agent.log" | sed -n 's/.*connection_id=\([0-9a-f]*\).*/\1/p'
}

# Warm-up: both gateways carry streams (each has its tunnels up).
for _ in $(seq 10); do app_tls; done > "$SL_RUN_DIR/warmup.txt"
check "10 connections through two gateways all succeed" test "$(grep -c '^ok ' "$SL_RUN_DIR/warmup.txt")" -eq 10
check "both gateways carried some" test "$(grep -c 'result=ok' "$SL_RUN_DIR/gateway.log")" -ge 2 -a \
  "$(grep -c 'result=ok' "$SL_RUN_DIR/gateway-b.log")" -ge 2
check "no retry without a failure" test "$(grep -c '^.*retry gateway=' "$SL_RUN_DIR/agent.log")" -eq 0

# ---- 1. A cannot reach the origin: 502 upstream-connect, retried on B.
sl_host_exec egress iptables -A OUTPUT -p tcp -d $SL_ALLOWED_ADDR --dport 443 -m mark --mark 0x1051 \
  -j REJECT --reject-with tcp-reset
gets0=$(origin_gets)
for _ in $(seq 20); do app_tls; done > "$SL_RUN_DIR/phase1.txt"
check "20 connections succeed while gateway A cannot reach the origin ($(sort "$SL_RUN_DIR/phase1.txt" | uniq -c | head -3 | tr '\n' ' '))" \
  test "$(grep -c '^ok ' "$SL_RUN_DIR/phase1.txt")" -eq 20
mapfile -t ids1 < <(retried_ids "$A" gateway-refused)
echo "# phase 1: ${#ids1[@]} of 20 flows retried after gateway A's 502"
check "some flows were retried after A's refusal (${#ids1[@]})" test "${#ids1[@]}" -ge 3
all_good=1
for id in "${ids1[@]}"; do
  grep -qE "access .*result=upstream-connect.* connection_id=$id" "$SL_RUN_DIR/gateway.log" || { all_good=0; echo "# $id: A did not log upstream-connect"; }
  grep -qE "access .*result=ok.* connection_id=$id" "$SL_RUN_DIR/gateway-b.log" || { all_good=0; echo "# $id: B did not carry it"; }
  grep -qE "flow .*result=ok .*gateway=$B retries=1 connection_id=$id" "$SL_RUN_DIR/agent.log" || { all_good=0; echo "# $id: no flow record with retries=1 via B"; }
done
check "each retried flow: A refused it (upstream-connect), B carried it, the record says retries=1" test $all_good -eq 1
check "the retry record names A's reason" grep -qE "retry gateway=$A after=gateway-refused detail=\"?upstream-connect" \
  "$SL_RUN_DIR/agent.log"
check "no flow of phase 1 failed" test "$(grep -c 'flow .*result=gateway-refused' "$SL_RUN_DIR/agent.log")" -eq 0
check "the origin saw each of the 20 app connections once ($(($(origin_gets) - gets0)))" \
  test $(($(origin_gets) - gets0)) -eq 20
check "sluice_flow_retries_total{cause=\"gateway-refused\"} counts them ($(metric 'sluice_flow_retries_total{cause="gateway-refused"}'))" \
  test "$(metric 'sluice_flow_retries_total{cause="gateway-refused"}')" -eq "${#ids1[@]}"
# The same for a client whose hello is already there when the agent accepts (sent right
# after connect, as sl-probe does), which the agent takes without a wait: its stream must
# wait for the gateway's answer, not pass as "the app spoke" on the hello's own arrival.
refused0=$(grep -c 'flow .*result=gateway-refused' "$SL_RUN_DIR/agent.log")
retried0=$(retried_ids "$A" gateway-refused | wc -l)
for _ in $(seq 20); do
  sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --hello $SL_ALLOWED_HOST --read --timeout-ms 5000 |
    grep -a '^read=' | head -1
done > "$SL_RUN_DIR/phase1-probe.txt"
check "20 clients with the hello there at accept get the origin's answer, none a reset ($(cut -c1-14 "$SL_RUN_DIR/phase1-probe.txt" | sort | uniq -c | tr '\n' ' '))" \
  test "$(grep -acvE '^read=(E[A-Z]+|eof|timeout)$' "$SL_RUN_DIR/phase1-probe.txt")" -eq 20
check "none of them failed at the agent as gateway-refused" \
  test "$(grep -c 'flow .*result=gateway-refused' "$SL_RUN_DIR/agent.log")" -eq "$refused0"
# Streams start on the gateways in turn and a retried one leaves A next: most of these
# went to A first, were refused and retried, so the checks above had something to catch.
retried=$(($(retried_ids "$A" gateway-refused | wc -l) - retried0))
check "of them, $retried were refused by A and retried on B" test "$retried" -ge 5
sl_host_exec egress iptables -D OUTPUT -p tcp -d $SL_ALLOWED_ADDR --dport 443 -m mark --mark 0x1051 \
  -j REJECT --reject-with tcp-reset

# ---- 2. A policy refusal (403) is final: not retried.
for _ in $(seq 6); do
  sl_pod_exec pod-a env APP_TIMEOUT=5 python3 "$here/tunnel/app.py" $SL_DENIED_ADDR $REFUSED_HOST read 2>&1
done > "$SL_RUN_DIR/phase2.txt"
check "6 connections to a host the gateways refuse are reset with no byte" \
  test "$(grep -c '^recv=0 end=reset' "$SL_RUN_DIR/phase2.txt")" -eq 6
check "their records: gateway-refused host-not-allowed, retries=0 (6)" test "$(grep -cE \
  "flow .*sni=$REFUSED_HOST .*result=gateway-refused detail=host-not-allowed gateway=[^ ]+ retries=0 " \
  "$SL_RUN_DIR/agent.log")" -eq 6
check "no retry after a 403" test "$(grep -c 'retry .*detail=host-not-allowed' "$SL_RUN_DIR/agent.log")" -eq 0
refusals=$(cat "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-b.log" | grep -c "access .*sni=$REFUSED_HOST .*result=host-not-allowed")
check "one gateway answered each of them ($refusals refusals for 6 connections)" test "$refusals" -eq 6

# ---- 3. A stopped with streams in flight, then killed: those streams go to B.
gw=$(awk '$2=="gateway"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
gets0=$(origin_gets)
kill -STOP "$gw"
: > "$SL_RUN_DIR/phase3.txt"
pids=()
for i in $(seq 12); do
  # One file per app: appends from 12 processes to one file interleaved their lines.
  # 30 s to read: the first apps wait while the others start, then for the kill and the retry.
  APP_TIMEOUT=30 app_tls > "$SL_RUN_DIR/phase3.$i.txt" &
  pids+=($!)
  sleep 0.05
done
# Until each of the 12 apps has finished (via B) or holds its connection at the agent
# (waiting on A): starting 12 Python clients took over 4 s on a busy 2-core machine, and A
# must not be killed before their streams reach it. Then a moment for the agent to write
# those streams to A.
for _ in $(seq 100); do
  held=$(agent_established)
  [ $((held + $(cat "$SL_RUN_DIR"/phase3.*.txt | grep -c .))) -ge 12 ] && break
  sleep 0.1
done
sleep 0.5
# Streams wait on A (its tunnels still look healthy: no PING is due for 10 minutes).
inflight=$(sl_host_exec egress ss -Htn state established "( sport = :15443 and src $SL_EGRESS_ADDR )" | awk '$1>0' | grep -c .)
echo "# phase 3: tunnel connections with bytes the stopped gateway A has not read: $inflight"
kill -KILL "$gw"
sed -i "/^$gw gateway$/d" "$SL_RUN_DIR/pids"
wait "${pids[@]}"
cat "$SL_RUN_DIR"/phase3.*.txt > "$SL_RUN_DIR/phase3.txt"
check "12 connections opened while A was stopped, then killed, all succeed ($(sort "$SL_RUN_DIR/phase3.txt" | uniq -c | tr '\n' ' '))" \
  test "$(grep -c '^ok ' "$SL_RUN_DIR/phase3.txt")" -eq 12
mapfile -t ids3 < <(retried_ids "$A" tunnel)
echo "# phase 3: ${#ids3[@]} of 12 flows retried after gateway A's tunnel broke"
check "streams in flight on A were retried on B (${#ids3[@]})" test "${#ids3[@]}" -ge 2
all_good=1
for id in "${ids3[@]}"; do
  grep -qE "flow .*result=ok .*gateway=$B retries=1 connection_id=$id" "$SL_RUN_DIR/agent.log" || { all_good=0; echo "# $id: no flow record with retries=1 via B"; }
done
check "each of them: carried by B, retries=1" test $all_good -eq 1
check "the origin saw each of the 12 app connections once ($(($(origin_gets) - gets0)))" \
  test $(($(origin_gets) - gets0)) -eq 12
check "sluice_flow_retries_total{cause=\"tunnel\"} counts them" \
  test "$(metric 'sluice_flow_retries_total{cause="tunnel"}')" -eq "${#ids3[@]}"
check "the agent logged gateway A's tunnel lost" wait_for_log agent "tunnel gateway=$A result=lost:"
