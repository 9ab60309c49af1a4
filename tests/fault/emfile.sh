#!/usr/bin/env bash
# accept() -> EMFILE for real. fd_limit.sh shows the connection cap refusing first when
# the limit is known at start; here the agent's soft open-file limit is lowered while it
# runs (prlimit --pid), below what its cap allows, and silent connections fill it. The
# accept loops then fail with EMFILE: each resets the clients waiting in its queue on a
# reserved descriptor (or, when another loop took that number, from the listener) and backs off (logged at most once a second per loop), never
# spinning (CPU time over the EMFILE period < 20% of wall); a flow established before
# keeps flowing; /healthz still answers (the admin endpoint's reserved descriptor); a new
# connection is reset at once, not left hanging; when the connections end the agent
# serves again and its descriptors return to the baseline.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
THREADS=2
ROOM=24 # descriptors left above the baseline
sl_write_rules native
sed -i "s#^  clientHelloTimeoutMs: 5000#  clientHelloTimeoutMs: 60000#" "$SL_RUN_DIR/rules.yaml"
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "the gateway listens"; exit 1; }
sl_start_agent --threads $THREADS || { not_ok "the agent listens"; exit 1; }
agent_pid=$(awk '$2=="agent"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
fds() { ls "/proc/$agent_pid/fd" | wc -l; }
# utime + stime of the agent, in clock ticks
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$agent_pid/stat"; }
accept_errors() { grep -c "accept on .*Too many open files" "$SL_RUN_DIR/agent.log"; }
ADMIN=127.0.0.1:15020

body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "a flow works before" "$body" "^hello from $SL_ALLOWED_HOST"
open_stream early
sleep 1
baseline=$(fds)
limit=$((baseline + ROOM))
soft_before=$(awk '/^Max open files/{print $4}' "/proc/$agent_pid/limits")
prlimit --pid "$agent_pid" --nofile=$limit: ||
  not_ok "prlimit lowers the agent's soft limit"
check "the agent runs with a soft limit of $limit (baseline $baseline + $ROOM; was $soft_before)" \
  grep -Eq "^Max open files +$limit " "/proc/$agent_pid/limits"
# Descriptor numbers below the limit in use (numbers above it, opened before, stay valid).
below() { ls "/proc/$agent_pid/fd" | awk -v l=$limit '$1 < l' | wc -l; }
room=$((limit - $(below)))
echo "# agent descriptors at baseline: $baseline, soft limit now $limit: $room numbers free"

# More silent connections than the descriptors left.
extra=40
count=$((room + extra))
# Accept error lines are counted from here: whether a failure falls inside the shorter
# EMFILE period below depends on timing, the rate limit holds over the whole flood.
tf0=$(date +%s%N)
ef0=$(accept_errors)
flood_start pod-a flood tcp $SL_ALLOWED_ADDR 443 --count $count --settle-s 4
wait_for_log flood "^holding" 30 || not_ok "the flood holds its connections"
line=$(grep '^opened' "$SL_RUN_DIR/flood.log" | tail -1)
echo "# flood: $line"
open=$(sed -n 's/.* open=\([0-9]*\).*/\1/p' <<< "$line")
reset=$(sed -n 's/.* reset=\([0-9]*\) .*/\1/p' <<< "$line")
failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<< "$line")
# A reserved number may end up serving a client: while one loop's reserve is free for
# its accept, another loop's accept can take it (that loop then resets its queue from the
# listener instead). So the agent may hold up to one client more per IPv4 accept loop (the
# flood is IPv4; the IPv6 loops' and the admin endpoint's reserves stay untouched). None
# may wait in a queue: every listener's accept queue (Recv-Q) is empty.
reserves=$THREADS
queued=$(sl_host_exec node ss -Hltn "( sport = :$SL_AGENT_PORT )" | awk '{q += $2} END {print q + 0}')
check "at the limit: no client waits in the agent's accept queues (Recv-Q total $queued)" test "$queued" -eq 0
check "at the limit: the agent holds what its descriptors allow (open=$open <= $room + $reserves reserves)" \
  test "${open:-999}" -le $((room + reserves))
check "at the limit: the rest were reset, none left hanging (reset=$reset failed=$failed open=$open of $count)" \
  test $((${reset:-0} + ${failed:-0} + ${open:-0})) -eq $count -a $((${reset:-0} + ${failed:-0})) -ge $((extra - reserves))
check "accept failed with EMFILE and the agent logged its backoff" wait_for_log agent \
  "accept on .*: Too many open files \(failures=[0-9]+ since last line=[0-9]+, clients reset for lack of descriptors=[0-9]+, queue resets without a reserve=[0-9]+\); pausing [0-9]+ ms"
peak=$(below)
echo "# agent descriptors below the limit: $peak (limit $limit)"
check "at the limit: every number below the limit is in use ($peak of $limit)" test "$peak" -ge $((limit - 1))

# The EMFILE period: measured over ~6 s while the agent stays at its limit.
t0=$(date +%s%N)
c0=$(cpu_ticks)
e0=$(accept_errors)
health=$(sl_host_exec node curl -sS -m 3 "http://$ADMIN/healthz" 2>&1)
check_contains "at the limit: /healthz answers" "$health" "^ok"
start=$(date +%s%N)
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000 --send x --read)
ms=$((($(date +%s%N) - start) / 1000000))
check_contains "at the limit: a new connection is reset" "$out" "ECONNRESET|read=eof"
check "at the limit: reset within 1 s, not left hanging (${ms} ms)" test $ms -lt 1000
check "at the limit: the flow established before keeps flowing" stream_request early
sleep 4
health=$(sl_host_exec node curl -sS -m 3 "http://$ADMIN/healthz" 2>&1)
check_contains "at the limit: /healthz still answers" "$health" "^ok"
t1=$(date +%s%N)
c1=$(cpu_ticks)
e1=$(accept_errors)
wall_ms=$(((t1 - t0) / 1000000))
cpu_ms=$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))
echo "# EMFILE period: ${wall_ms} ms wall, agent CPU ${cpu_ms} ms, $((e1 - e0)) accept error lines"
check "no spinning: agent CPU ${cpu_ms} ms < 20% of ${wall_ms} ms" test $((cpu_ms * 5)) -lt $wall_ms
flood_ms=$(((t1 - tf0) / 1000000))
check "the backoff is logged, rate-limited ($((e1 - ef0)) lines in ${flood_ms} ms of flood, $THREADS loops)" \
  test $((e1 - ef0)) -ge 1 -a $((e1 - ef0)) -le $((THREADS * (flood_ms / 1000 + 2)))
check "still at the limit at the end of the period ($(below) of $limit)" test "$(below)" -ge $((limit - 2))

# The connections end: the agent serves again and its descriptors come back.
sl_stop flood
for _ in $(seq 50); do [ "$(fds)" -le "$baseline" ] && break; sleep 0.1; done
after=$(fds)
echo "# agent descriptors after the flood ended: $after (baseline $baseline)"
check "descriptors return to the baseline ($after <= $baseline)" test "$after" -le "$baseline"
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "after the flood: a new connection is served (same lowered limit)" "$body" "^hello from $SL_ALLOWED_HOST"
n=$(accept_errors)
sleep 2
check "after the flood: no more accept errors" test "$(accept_errors)" -eq "$n"
