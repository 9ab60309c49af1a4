#!/usr/bin/env bash
# The agent's open-file limit forced low (prlimit --nofile=N:N): the agent sizes its
# connection cap to what the limit leaves room for, so at the limit new connections are
# reset at once (never left hanging, no accept loop spinning on EMFILE); it stays
# responsive, serves a new connection once others end, and its descriptors return to
# the baseline.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
NOFILE=128
sl_write_rules native
sed -i "s#^  clientHelloTimeoutMs: 5000#  clientHelloTimeoutMs: 60000#" "$SL_RUN_DIR/rules.yaml"
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
sl_wait_listen egress $SL_GATEWAY_PORT || not_ok "the gateway listens"
sl_spawn agent node prlimit --nofile=$NOFILE:$NOFILE "$SL_BUILD/userspace/sluice-agent" "${args[@]}" \
  --pin-dir "$SL_PIN_DIR"
sl_wait_listen node $SL_AGENT_PORT || { not_ok "the agent listens under prlimit"; exit 1; }
agent_pid=$(awk '$2=="agent"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
check "the agent runs with the forced limit" grep -Eq "^Max open files +$NOFILE +$NOFILE" "/proc/$agent_pid/limits"
check "the agent logs its open-file limit" wait_for_log agent "open files: limit $NOFILE \(was $NOFILE, hard $NOFILE\)"
check "the agent sizes its cap to the limit" wait_for_log agent \
  "connection cap [0-9]+ \(agent.maxConnections 16384 does not fit the open-file limit $NOFILE"
cap=$(sed -n 's/.*connection caps: total=\([0-9]*\) .*/\1/p' "$SL_RUN_DIR/agent.log" | tail -1)
echo "# open-file limit $NOFILE: connection cap ${cap:-?}"
fds() { ls "/proc/$agent_pid/fd" | wc -l; }

body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "a flow works under the low limit" "$body" "^hello from $SL_ALLOWED_HOST"
sleep 0.5
baseline=$(fds)
echo "# agent descriptors at baseline: $baseline"

# pod-a opens 20 more silent connections than the cap.
extra=20
flood_start pod-a flood tcp $SL_ALLOWED_ADDR 443 --count $((cap + extra)) --settle-s 2
wait_for_log flood "^holding" 30 || not_ok "the flood holds its connections"
echo "# flood: $(grep '^opened' "$SL_RUN_DIR/flood.log" | tail -1)"
# (one reset before the client saw its connect complete counts as failed)
line=$(grep '^opened' "$SL_RUN_DIR/flood.log" | tail -1)
reset=$(sed -n 's/.* reset=\([0-9]*\) .*/\1/p' <<< "$line")
failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<< "$line")
check_contains "at the limit: $cap connections held" "$line" " open=$cap "
check "at the limit: the $extra over the cap were reset (reset=$reset failed=$failed)" \
  test "$((${reset:-0} + ${failed:-0}))" -eq $extra
check "at the limit: the agent logs connection-limit" wait_for_log agent "reason=connection-limit"
peak=$(fds)
echo "# agent descriptors at the limit: $peak (limit $NOFILE)"
check "at the limit: the agent stays under its open-file limit ($peak < $NOFILE)" test "$peak" -lt $NOFILE

# Still responsive: a new connection is reset at once, not left hanging.
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000 --send x --read)
check_contains "at the limit: a new connection is refused (reset)" "$out" "ECONNRESET|read=eof"
start=$(date +%s%N)
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
ms=$((($(date +%s%N) - start) / 1000000))
check_contains "at the limit: curl is refused (reset, also during its connect)" "$out" "reset by peer|SSL_ERROR_SYSCALL|Failed to connect .* after [0-9]+ ms"
check "at the limit: refused at once (${ms} ms)" test $ms -lt 1000
check "no accept error was logged (no EMFILE spin)" test "$(grep -c 'accept on' "$SL_RUN_DIR/agent.log")" -eq 0

# The others end: the agent serves again and its descriptors come back.
sl_stop flood
for _ in $(seq 50); do [ "$(fds)" -le "$baseline" ] && break; sleep 0.1; done
after=$(fds)
echo "# agent descriptors after the flood ended: $after (baseline $baseline)"
check "descriptors return to the baseline ($after <= $baseline)" test "$after" -le "$baseline"
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "after the flood: a new connection is served" "$body" "^hello from $SL_ALLOWED_HOST"
