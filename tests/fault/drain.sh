#!/usr/bin/env bash
# Graceful drain (SIGTERM) of both daemons, with real flows through agent, tunnel and
# gateway to an origin this test controls (drain/drain_tool.py):
#  1. agent, 100 open streams: they all complete with every byte (SHA-256) within the
#     drain deadline; /readyz says 503 and sluice_draining 1 meanwhile; a new connect from
#     the enrolled pod during the drain is refused and never reaches the origin (the
#     node's drop of pods' direct traffic is replaced by a counting rule, so a bypass
#     would arrive); the agent exits 0 after the last flow.
#  2. agent, a 2 s deadline and streams that never end: each is reset (the app sees
#     ECONNRESET), the count is logged and every flow record says drain-deadline. So are
#     an app still sending its hello, one whose origin has not answered yet and one whose
#     gateway has not (their tunnel attempts end at the deadline, not tried again on the
#     other gateway).
#  3. gateway A of two, streams open: GOAWAY on its tunnels; its streams complete; new
#     flows meanwhile go over gateway B with no failure; A exits 0; restarted, it is used
#     again. 3b: A with a 2 s deadline and endless streams resets its share (counted, each
#     record drain-deadline, each passed on to the app as a reset), and ends the dials it
#     has pending to an origin that drops SYNs (it does not wait out the connect timeout).
#  4. the hand-over window of an agent restart, measured (reported, not asserted): a
#     client connecting in a tight loop while the agent is restarted (a) stop-then-start,
#     (b) the new agent started first (SO_REUSEPORT overlap), then the old one drained.
SL_EXTRA_ORIGINS=(paced.drain.test=198.18.100.41 forever.drain.test=198.18.100.42 quick.drain.test=198.18.100.43
  mute.drain.test=198.18.100.44 blackhole.drain.test=198.18.100.45)
source "$(dirname "$0")/../lib/harness.sh"
here=$(cd "$(dirname "$0")" && pwd)
tool=$here/drain/drain_tool.py
sl_topology_up || { not_ok "topology up"; exit 1; }
# Gateway B: a second address on the egress node.
ip -n "$(sl_ns egress)" addr add 198.18.3.3/24 dev eth0
sl_write_rules native
rules=$SL_RUN_DIR/rules.yaml
sed -i 's/^hosts:$/hosts:\n  - name: "*.drain.test"\n    ports: [443]/' "$rules"
sed -i 's/^    address: 198.18.3.2:15443$/    addresses: ["198.18.3.2:15443", "198.18.3.3:15443"]/' "$rules"
# The gateways' connect timeout well past the drains here: a dial to the blackhole origin
# stays pending through a 2 s deadline even on a loaded machine.
sed -i 's/^  listen: 198.18.3.2:15443$/&\n  upstreamConnectTimeoutMs: 20000/' "$rules"
check "the gateways' connect timeout is 20 s" grep -q '^  upstreamConnectTimeoutMs: 20000$' "$rules"
check "the rules allow *.drain.test over two gateways" grep -q 'addresses: \["198.18.3.2:15443", "198.18.3.3:15443"\]' "$rules"
sed -e 's/^  listen: 198.18.3.2:15443$/  listen: 198.18.3.3:15443/' "$rules" > "$SL_RUN_DIR/rules-b.yaml"
check "gateway B listens on 198.18.3.3" grep -q "^  listen: 198.18.3.3:15443" "$SL_RUN_DIR/rules-b.yaml"
# Pods get a real route to the origins: only the redirect stands between them. The rule
# left counts what a pod would send there directly.
sl_host_exec node iptables -F SL-POD-EGRESS
sl_host_exec node iptables -A SL-POD-EGRESS -d 198.18.100.0/24
direct() { sl_host_exec node iptables -L SL-POD-EGRESS -v -x -n | awk 'NR>2{s+=$1} END{print s+0}'; }
for o in paced=41 forever=42 quick=43 mute=44; do
  sl_spawn "origin-${o%=*}" inet python3 "$tool" origin 198.18.100.${o#*=} "${o%=*}" "$SL_RUN_DIR/origin.log"
done
for _ in $(seq 50); do [ "$(sl_host_exec inet ss -Hltn 'sport = :443' | grep -c '198.18.100.4')" -ge 4 ] && break; sleep 0.1; done
# The blackhole origin drops SYNs: a dial to it stays pending until its connect timeout (5 s).
sl_host_exec inet iptables -A INPUT -d 198.18.100.45 -p tcp --dport 443 -j DROP
# Connects pending to the blackhole, by the gateway PID given, or by both.
dialing() { sl_host_exec egress ss -Htnp state syn-sent 'dst 198.18.100.45' | grep -c "pid=${1:-[0-9]*},"; }

mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
sl_spawn gateway-b egress "$SL_BUILD/userspace/sluice-gateway" --config "$SL_RUN_DIR/rules-b.yaml" \
  --admin-address 127.0.0.1:15022
for _ in $(seq 50); do [ "$(sl_host_exec egress ss -Hltn 'sport = :15443' | grep -c .)" -ge 2 ] && break; sleep 0.1; done
sl_start_agent --drain-timeout 30 || { not_ok "agent starts"; exit 1; }
check "the agent says its drain timeout" wait_for_log agent "agent ready .* drain_timeout_ms=30000"
check "gateway A says its default drain timeout (60 s)" wait_for_log gateway "gateway ready .* drain_timeout_ms=60000"

pid_of() { awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1; }
forget() { sed -i "/^$1 $2\$/d" "$SL_RUN_DIR/pids"; }
# in_pod_a NAME CMD...: CMD in pod-a, in the background, output in NAME.log. Exec'd all
# the way down (as flood_start), so the recorded PID is the app's own.
in_pod_a() {
  local name=$1
  shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
    "$(sl_cgroup_root)/pod-a" "$(sl_netns_path pod-a)" "$@" > "$SL_RUN_DIR/$name.log" 2>&1 &
  echo "$! $name" >> "$SL_RUN_DIR/pids"
}
# run_streams NAME ADDR HOST N [ENV...]: the streams app in pod-a, in the background.
run_streams() {
  local name=$1 addr=$2 host=$3 n=$4
  shift 4
  in_pod_a "$name" env "$@" python3 "$tool" streams "$addr" "$host" "$n"
}
summary() { grep '^streams=' "$SL_RUN_DIR/$1.log"; }
wait_pid() { # PID SECONDS: waits for a child to end; its exit code, or 124 on timeout
  local i
  for ((i = 0; i < $2 * 20; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$1" 2>/dev/null && return 124
  wait "$1"
}
admin_get() { sl_host_exec node curl -s -m 2 -w '\n%{http_code}' "http://127.0.0.1:${2:-15020}$1"; }
pod_origin_lines() { grep -cE "peer=($SL_POD_A_ADDR|$SL_POD_B_ADDR):" "$SL_RUN_DIR/origin.log"; }

out=$(sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.43:443 --timeout-ms 3000 --hello quick.drain.test --read)
check_contains "a quick flow goes through" "$out" "read=ok"

# ---- 1. agent drain with 100 open streams ----
run_streams streams1 198.18.100.41 paced.drain.test 100 DRAIN_SIZE=524288 DRAIN_SECONDS=5
apps=$(pid_of streams1)
check "100 streams are open and flowing" wait_for_log streams1 "^opened 100" 30
agent=$(pid_of agent)
direct_before=$(direct)
start=$(date +%s%N)
kill -TERM "$agent"
check "the agent logs the drain with its 100 flows" wait_for_log agent "draining: 100 flows, [0-9]+ tunnels, deadline 30s"
ready=$(admin_get /readyz)
check_contains "/readyz says 503 while draining" "$ready" "^503$"
check_contains "/readyz names the draining check" "$ready" '"draining": true'
check_contains "sluice_draining is 1 while draining" "$(admin_get /metrics)" "^sluice_draining 1"
out=$(sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.43:443 --timeout-ms 3000 --hello quick.drain.test --read)
echo "# a new connect during the drain: $(tr '\n' ' ' <<< "$out")"
check_contains "a new connect during the drain is refused" "$out" "errno=ECONNREFUSED"
wait_pid "$apps" 40
forget "$apps" streams1
echo "# $(summary streams1)"
check_contains "all 100 streams complete with every byte" "$(summary streams1)" "^streams=100 complete=100 "
wait_pid "$agent" 35
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
forget "$agent" agent
echo "# agent drained in ${ms} ms: $(grep -o 'drained in .*' "$SL_RUN_DIR/agent.log")"
check "the agent exited 0 after the last flow (rc=$rc)" test "$rc" -eq 0
check "the agent drained within its deadline (${ms} ms < 30000)" test "$ms" -lt 30000
check "the agent says every flow ended, none reset" grep -q "drained in [0-9]* ms (every flow ended): flows_reset=0" \
  "$SL_RUN_DIR/agent.log"
check "the agent's 100 flow records say ok" test "$(grep -c 'flow .*sni=paced.drain.test .*result=ok' "$SL_RUN_DIR/agent.log")" -eq 100
check "the origin sent every stream in full (100)" test "$(grep -c 'mode=paced .*end=sent-all' "$SL_RUN_DIR/origin.log")" -eq 100
check "no connect went around the agent (origin saw no pod address: $(pod_origin_lines))" test "$(pod_origin_lines)" -eq 0
check "no pod packet went toward the origins directly ($(direct) vs $direct_before)" test "$(direct)" -eq "$direct_before"
mv "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/agent-1.log"

# ---- 2. deadline: streams that never end are reset ----
sl_start_agent --drain-timeout 2 || { not_ok "agent restarts"; exit 1; }
run_streams streams2 198.18.100.42 forever.drain.test 20
apps=$(pid_of streams2)
check "20 endless streams are open" wait_for_log streams2 "^opened 20" 30
# And one app that connected but has not sent its ClientHello yet (the agent's hello
# timeout, 5 s, is past the drain deadline).
sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.42:443 --timeout-ms 8000 --read > "$SL_RUN_DIR/silent.out" 2>&1 &
silent=$!
echo "$silent silent" >> "$SL_RUN_DIR/pids"
# Until the agent holds it too (20 streams + 1): a drain that began first would refuse it.
for _ in $(seq 100); do
  [ "$(agent_established)" -ge 21 ] && break
  sleep 0.05
done
# And one whose origin takes the hello and says nothing: its flow is still in the tunnel
# attempt (waiting for the origin's first byte) when the deadline comes.
sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.44:443 --timeout-ms 8000 --hello mute.drain.test --read \
  > "$SL_RUN_DIR/mute.out" 2>&1 &
mute=$!
echo "$mute mute" >> "$SL_RUN_DIR/pids"
mute_at_origin() { sl_host_exec egress ss -Htn state established 'dst 198.18.100.44' | grep -c .; }
for _ in $(seq 100); do
  [ "$(mute_at_origin)" -ge 1 ] && break
  sleep 0.05
done
check "the mute origin holds the flow's connection from the gateway" test "$(mute_at_origin)" -eq 1
# And one still waiting for the gateway's answer (the gateway is dialing the blackhole):
# reset then, a stream would be tried again on the other gateway.
in_pod_a blackhole-agent "$SL_PROBE" connect 198.18.100.45:443 --timeout-ms 8000 --hello blackhole.drain.test --read
for _ in $(seq 100); do
  [ "$(dialing)" -ge 1 ] && break
  sleep 0.05
done
check "a gateway is dialing the blackhole for that flow" test "$(dialing)" -eq 1
agent=$(pid_of agent)
start=$(date +%s%N)
kill -TERM "$agent"
wait_pid "$apps" 15
forget "$apps" streams2
echo "# $(summary streams2)"
check_contains "every endless stream is reset at the deadline (the app sees ECONNRESET)" "$(summary streams2)" \
  "^streams=20 complete=0 reset=20 "
wait_pid "$agent" 10
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
forget "$agent" agent
echo "# $(grep -E 'drain deadline|drained in' "$SL_RUN_DIR/agent.log" | tr '\n' ' ')"
check "the agent exited 0 (rc=$rc) after the 2 s deadline (${ms} ms)" test "$rc" -eq 0 -a "$ms" -ge 2000
wait_pid "$silent" 10
forget "$silent" silent
check_contains "the app still waiting for its hello is reset too" "$(cat "$SL_RUN_DIR/silent.out")" "read=ECONNRESET"
wait_pid "$mute" 10
forget "$mute" mute
check_contains "the app waiting for its origin's first byte is reset too" "$(cat "$SL_RUN_DIR/mute.out")" "read=ECONNRESET"
bh=$(pid_of blackhole-agent)
wait_pid "$bh" 10
forget "$bh" blackhole-agent
check_contains "the app waiting for the gateway's answer is reset too" "$(cat "$SL_RUN_DIR/blackhole-agent.log")" \
  "read=ECONNRESET"
# Its gateway ends the dial at the stream's reset (not at its 5 s connect timeout) and
# records it; a stream tried again on the other gateway would be a second record.
for _ in $(seq 40); do
  [ "$(dialing)" -eq 0 ] && break
  sleep 0.05
done
check "the gateway ended its dial at the stream's reset ($(dialing) dials left)" test "$(dialing)" -eq 0
bh_records() { cat "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-b.log" | grep -c 'access .*sni=blackhole.drain.test .*result=reset'; }
check "its stream was not tried again: one gateway record, result=reset ($(bh_records))" test "$(bh_records)" -eq 1
check "the agent logs the resets at the deadline" grep -q "drain deadline: resetting 23 flows" "$SL_RUN_DIR/agent.log"
# "after resets": every reset flow ended (and was recorded) before the agent stopped.
check "the agent reports 23 flows reset, all of them ended" \
  grep -q "drained in [0-9]* ms (after resets): flows_reset=23" "$SL_RUN_DIR/agent.log"
check "the flow waiting for the gateway's answer is recorded as result=drain-deadline, not tried again" \
  grep -q "flow .*sni=blackhole.drain.test .*result=drain-deadline .*retries=0" "$SL_RUN_DIR/agent.log"
check "the flow in its tunnel attempt is recorded as result=drain-deadline, not tried again" \
  grep -q "flow .*sni=mute.drain.test .*result=drain-deadline .*retries=0" "$SL_RUN_DIR/agent.log"
check "the gateway passed the reset on to the mute origin" \
  wait_for_log origin "mode=mute first=[0-9]+ end=error:ECONNRESET"
check "the mute origin saw that one connection only (no retry on gateway B)" \
  test "$(grep -c 'mode=mute' "$SL_RUN_DIR/origin.log")" -eq 1
check "20 flow records say result=drain-deadline" \
  test "$(grep -c 'flow .*sni=forever.drain.test .*result=drain-deadline' "$SL_RUN_DIR/agent.log")" -eq 20
check "the flow still waiting for its hello is recorded as reason=drain-deadline" \
  test "$(grep -c 'deny .*reason=drain-deadline' "$SL_RUN_DIR/agent.log")" -eq 1
mv "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/agent-2.log"

# ---- 2b. a second SIGTERM during the drain stops at once (resets the rest) ----
sl_start_agent --drain-timeout 30 || { not_ok "agent restarts"; exit 1; }
run_streams streams2b 198.18.100.42 forever.drain.test 10
apps=$(pid_of streams2b)
check "10 endless streams are open" wait_for_log streams2b "^opened 10" 30
agent=$(pid_of agent)
kill -TERM "$agent"
wait_for_log agent "draining: 10 flows, [0-9]+ tunnels, deadline 30s" 5
start=$(date +%s%N)
kill -TERM "$agent"
wait_pid "$agent" 10
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
forget "$agent" agent
wait_pid "$apps" 10
forget "$apps" streams2b
check_contains "a second SIGTERM resets the 10 streams" "$(summary streams2b)" "^streams=10 complete=0 reset=10 "
check "the agent exited 0 (rc=$rc) soon after the second SIGTERM (${ms} ms), not at the 30 s deadline" \
  test "$rc" -eq 0 -a "$ms" -lt 10000
check "the agent logs the second signal's resets" grep -q "drain second signal: resetting 10 flows" "$SL_RUN_DIR/agent.log"
mv "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/agent-2b.log"

# ---- 3. gateway A drains: GOAWAY, its streams finish, new flows go to B ----
sl_start_agent --drain-timeout 30 || { not_ok "agent restarts"; exit 1; }
run_streams streams3 198.18.100.41 paced.drain.test 40
apps=$(pid_of streams3)
check "40 streams are open" wait_for_log streams3 "^opened 40" 30
tunnel_ends=$(grep -h 'tunnel peer=.* result=closed:' "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-b.log")
echo "# the gateways' view of the drained agents' tunnels: $(grep -o 'result=closed:[^ ]*' <<< "$tunnel_ends" | sort | uniq -c | tr '\n' ' ')"
check "the drained agents closed their tunnels (GOAWAY) before exiting" test -n "$tunnel_ends"
check_not_contains "none of them was cut" "$tunnel_ends" "result=closed:(read|write|protocol|ended)"
gw=$(pid_of gateway)
kill -TERM "$gw"
check "gateway A logs the drain (flows and tunnels)" wait_for_log gateway "draining: [0-9]+ flows, [0-9]+ tunnels, deadline 60s"
echo "# gateway A: $(grep -o 'draining: .*' "$SL_RUN_DIR/gateway.log")"
check_contains "gateway A's /readyz says 503 while draining" "$(sl_host_exec egress curl -s -m 2 -w '\n%{http_code}' http://127.0.0.1:15020/readyz)" "^503$"
quick=$SL_RUN_DIR/quick.txt
for _ in $(seq 20); do
  sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.43:443 --timeout-ms 5000 --hello quick.drain.test --read | grep -c 'read=ok'
done > "$quick"
check "20 new flows during gateway A's drain all succeed ($(grep -c '^1$' "$quick"))" test "$(grep -c '^1$' "$quick")" -eq 20
check "they all went over gateway B" \
  test "$(grep -c 'flow .*sni=quick.drain.test .*result=ok gateway=198.18.3.3:15443' "$SL_RUN_DIR/agent.log")" -eq 20
wait_pid "$apps" 40
forget "$apps" streams3
echo "# $(summary streams3); gateway A carried some of them at the start"
check_contains "all 40 streams complete with every byte" "$(summary streams3)" "^streams=40 complete=40 "
wait_pid "$gw" 30
rc=$?
forget "$gw" gateway
echo "# gateway A: $(grep -o 'drained in .*' "$SL_RUN_DIR/gateway.log")"
check "gateway A exited 0 after its last stream (rc=$rc)" test "$rc" -eq 0
check "gateway A says every flow ended, none reset" grep -q "drained in [0-9]* ms (every flow ended): flows_reset=0" \
  "$SL_RUN_DIR/gateway.log"
check "gateway A carried streams that finished during its drain" \
  test "$(grep -c 'access .*sni=paced.drain.test .*result=ok' "$SL_RUN_DIR/gateway.log")" -ge 1
# The tunnels that ended after the drain began (earlier ones ended with the agent restarts).
drained_tunnels=$(awk '/draining: /{on=1} on && /tunnel peer=.* result=closed:/' "$SL_RUN_DIR/gateway.log")
echo "# gateway A's tunnels during its drain: $(grep -o 'result=closed:[^ ]*' <<< "$drained_tunnels" | sort | uniq -c | tr '\n' ' ')"
check "gateway A's tunnels ended during its drain" test -n "$drained_tunnels"
check_not_contains "they ended cleanly after GOAWAY (drained, or closed by the agent), none cut" \
  "$drained_tunnels" "result=closed:(read|write|protocol|drain-deadline|ended)"
check_not_contains "the agent lost no tunnel to gateway A" "$(log_of agent)" "tunnel gateway=198.18.3.2:15443 result=lost"
mv "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-1.log"
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}" --drain-timeout 2
check "the agent opens fresh tunnels to gateway A once it is back" wait_for_log agent \
  "tunnel gateway=198.18.3.2:15443 result=recovered" 20
for _ in $(seq 20); do
  sl_pod_exec pod-a "$SL_PROBE" connect 198.18.100.43:443 --timeout-ms 5000 --hello quick.drain.test --read > /dev/null
done
check "the restarted gateway A carries flows again" grep -q "access .*sni=quick.drain.test .*result=ok" "$SL_RUN_DIR/gateway.log"

# ---- 3b. gateway A's deadline: its endless streams are reset, counted; B's go on ----
run_streams streams3b 198.18.100.42 forever.drain.test 20

check "20 endless streams are open over both gateways" wait_for_log streams3b "^opened 20" 30
# And dials still connecting to the blackhole (the connect timeout, 5 s, is past the
# deadline): apps one by one, each until its dial is pending, until gateway A has one.
gw=$(pid_of gateway)
holes=0
while [ "$holes" -lt 8 ]; do
  holes=$((holes + 1))
  in_pod_a "blackhole-$holes" "$SL_PROBE" connect 198.18.100.45:443 --timeout-ms 20000 --hello blackhole.drain.test \
    --read
  for _ in $(seq 100); do
    [ "$(dialing)" -ge "$holes" ] && break
    sleep 0.05
  done
  [ "$(dialing "$gw")" -ge 1 ] && break
done
check "the $holes apps' dials are all pending ($(dialing))" test "$(dialing)" -eq "$holes"
dials_a=$(dialing "$gw")
check "gateway A is dialing the blackhole (${dials_a} connects pending)" test "$dials_a" -ge 1
kill -TERM "$gw"
wait_pid "$gw" 10
rc=$?
forget "$gw" gateway
resets=$(sed -n 's/.*drained in [0-9]* ms (.*): flows_reset=\([0-9]*\).*/\1/p' "$SL_RUN_DIR/gateway.log")
echo "# gateway A (2 s deadline): $(grep -E 'drain deadline|drained in' "$SL_RUN_DIR/gateway.log" | sed 's/^[^ ]* [^ ]* //' | tr '\n' ' ')"
check "gateway A exited 0 after its 2 s deadline (rc=$rc)" test "$rc" -eq 0
check "gateway A reset its endless streams at the deadline and counted them (${resets:-none})" test "${resets:-0}" -ge 1
# "after resets": the dials ended with their streams, not at their connect timeout.
check "gateway A's reset flows all ended before it stopped" \
  grep -q "drained in [0-9]* ms (after resets): flows_reset=" "$SL_RUN_DIR/gateway.log"
blackholed=$(grep -c 'access .*sni=blackhole.drain.test .*result=drain-deadline' "$SL_RUN_DIR/gateway.log")
check "gateway A recorded its pending dials as drain-deadline ($blackholed of $dials_a)" test "$blackholed" -eq "$dials_a"
check "gateway A's records say drain-deadline for each" \
  test "$(grep -c 'access .*sni=\(forever\|blackhole\).drain.test .*result=drain-deadline' "$SL_RUN_DIR/gateway.log")" \
  -eq "${resets:-x}"
# The agent's records of those resets follow A's exit by a moment (the blackhole's
# streams, reset before a byte, are tried again on B instead).
forever_resets=$((${resets:-0} - blackholed))
for _ in $(seq 100); do
  reset_at_app=$(grep -c 'flow .*sni=forever.drain.test .*result=reset' "$SL_RUN_DIR/agent.log")
  [ "$reset_at_app" -ge "$forever_resets" ] && break
  sleep 0.05
done
check "the agent passed each reset on to its app (${reset_at_app} of ${forever_resets})" \
  test "$reset_at_app" -eq "$forever_resets"
sl_stop streams3b
for i in $(seq "$holes"); do sl_stop "blackhole-$i"; done
sl_host_exec inet iptables -D INPUT -d 198.18.100.45 -p tcp --dport 443 -j DROP
mv "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-2.log"
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"

# ---- 4. the hand-over window of an agent restart (measured, reported) ----
listeners() { sl_host_exec node ss -Hltn "sport = :$SL_AGENT_PORT" | grep -c .; }
direct_before=$(direct)
before_origin=$(pod_origin_lines)
# (a) stop, then start
rm -f "$SL_RUN_DIR/stop-loop"
sl_pod_exec pod-a python3 "$tool" loop 198.18.100.43 quick.drain.test "$SL_RUN_DIR/stop-loop" > "$SL_RUN_DIR/loop-a.log" 2>&1 &
loop=$!
echo "$loop loop-a" >> "$SL_RUN_DIR/pids"
sleep 1
agent=$(pid_of agent)
kill -TERM "$agent"
wait_pid "$agent" 35
forget "$agent" agent
echo "# the old agent: $(grep -o 'drained in .*' "$SL_RUN_DIR/agent.log")"
mv "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/agent-3.log"
sl_start_agent --drain-timeout 30 || { not_ok "agent restarts"; exit 1; }
sleep 1
touch "$SL_RUN_DIR/stop-loop"
wait_pid "$loop" 10
forget "$loop" loop-a
restart_a=$(cat "$SL_RUN_DIR/loop-a.log")
echo "# hand-over, stop then start: $restart_a"
check_contains "stop-then-start: the loop ran and connects failed only closed (refused/reset)" "$restart_a" \
  "^attempts=[0-9]+ ok=[1-9][0-9]* failed=[0-9]+ \((none|(refused|reset)=[0-9]+( |\)))"
# (b) overlap: the new agent binds its listeners (SO_REUSEPORT) before the old one drains
rm -f "$SL_RUN_DIR/stop-loop"
sl_pod_exec pod-a python3 "$tool" loop 198.18.100.43 quick.drain.test "$SL_RUN_DIR/stop-loop" > "$SL_RUN_DIR/loop-b.log" 2>&1 &
loop=$!
echo "$loop loop-b" >> "$SL_RUN_DIR/pids"
sleep 1
old=$(pid_of agent)
one=$(listeners)
mapfile -t aargs < <(sl_config_args)
sl_spawn agent-new node "$SL_BUILD/userspace/sluice-agent" "${aargs[@]}" --pin-dir "$SL_PIN_DIR" --admin-address 127.0.0.1:15021
for _ in $(seq 100); do [ "$(listeners)" -ge $((2 * one)) ] && break; sleep 0.05; done
check "the new agent listens beside the old one ($(listeners) listeners, was $one)" test "$(listeners)" -ge $((2 * one))
wait_for_log agent-new "agent ready" 10
sleep 0.5
kill -TERM "$old"
wait_pid "$old" 35
forget "$old" agent
sleep 1
touch "$SL_RUN_DIR/stop-loop"
wait_pid "$loop" 10
forget "$loop" loop-b
restart_b=$(cat "$SL_RUN_DIR/loop-b.log")
echo "# hand-over, new agent first (SO_REUSEPORT overlap): $restart_b"
check_contains "overlap: the loop ran and connects failed only closed (refused/reset)" "$restart_b" \
  "^attempts=[0-9]+ ok=[1-9][0-9]* failed=[0-9]+ \((none|(refused|reset)=[0-9]+( |\)))"
check "the new agent carried flows" grep -q "flow .*sni=quick.drain.test .*result=ok" "$SL_RUN_DIR/agent-new.log"
check "no connect went around the agent during the restarts (origin saw no pod address)" \
  test "$(pod_origin_lines)" -eq "$before_origin"
check "no pod packet went toward the origins directly during the restarts" test "$(direct)" -eq "$direct_before"
