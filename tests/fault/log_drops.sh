#!/usr/bin/env bash
# A blocked log: the agent's stderr is a pipe (4 KiB, the smallest the kernel allows)
# that nobody reads, and its log queue is small (--log-queue-lines 64). Traffic keeps
# flowing at its usual pace (the writer thread waits, the I/O threads never do), the
# overflow is dropped and counted (sluice_log_lines_dropped_total rises), and once the
# pipe is read again the agent reports the drops ("log: dropped N lines") and still
# stops cleanly.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "the gateway listens"; exit 1; }

# The pipe: held open for reading (and writing, so opening it never blocks) by a process
# that never reads it.
fifo=$SL_RUN_DIR/agent-stderr.fifo
mkfifo "$fifo"
python3 -c '
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
print(fcntl.fcntl(fd, 1032), flush=True)  # F_GETPIPE_SZ
signal.pause()' "$fifo" > "$SL_RUN_DIR/pipe-holder.log" 2>&1 &
echo "$! pipe-holder" >> "$SL_RUN_DIR/pids"
check "the pipe is 4 KiB" wait_for_log pipe-holder "^4096$"
bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
  "$(sl_cgroup_root)/host-node" "$(sl_netns_path node)" "$SL_BUILD/userspace/sluice-agent" "${args[@]}" \
  --pin-dir "$SL_PIN_DIR" --log-queue-lines 64 > "$fifo" 2>&1 &
agent_pid=$!
echo "$agent_pid agent" >> "$SL_RUN_DIR/pids"
sl_wait_listen node $SL_AGENT_PORT || { not_ok "the agent listens"; exit 1; }

ADMIN=127.0.0.1:15020
dropped() {
  sl_host_exec node curl -sS -m 5 "http://$ADMIN/metrics" | awk '$1=="sluice_log_lines_dropped_total"{print int($2)}'
}
d0=$(dropped)
check "the agent exports sluice_log_lines_dropped_total (${d0:-absent})" test -n "$d0"

# 200 allowed flows, each logging its access record.
flows=200
served=0
slowest=0
start=$(date +%s%N)
for _ in $(seq $flows); do
  t=$(date +%s%N)
  body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
  ms=$((($(date +%s%N) - t) / 1000000))
  [ $ms -gt $slowest ] && slowest=$ms
  grep -q "^hello from $SL_ALLOWED_HOST" <<< "$body" && served=$((served + 1))
done
total_ms=$((($(date +%s%N) - start) / 1000000))
echo "# $flows flows with the log blocked: $served served in $total_ms ms (slowest $slowest ms)"
check "every flow is served while the log is blocked ($served/$flows)" test $served -eq $flows
check "no flow waits for the log (slowest ${slowest} ms < 2000 ms)" test $slowest -lt 2000
check "the agent is alive" kill -0 $agent_pid
d1=$(dropped)
echo "# log lines dropped: ${d0:-?} before the flows, ${d1:-?} after"
check "the dropped counter rises (${d0:-?} -> ${d1:-?})" test "${d1:-0}" -gt "${d0:-0}"
check "at least the flows' lines beyond the queue are dropped ($((${d1:-0} - ${d0:-0})) >= $((flows - 64 - 40)))" \
  test $((${d1:-0} - ${d0:-0})) -ge $((flows - 64 - 40))

# Read the pipe again: the writer catches up and reports the drops.
cat "$fifo" > "$SL_RUN_DIR/agent.log" &
echo "$! reader" >> "$SL_RUN_DIR/pids"
check "once read again, the agent reports the drops" wait_for_log agent "log: dropped [0-9]+ lines \(queue full; total [0-9]+\)" 10
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "a flow after the pipe drained is served" "$body" "^hello from $SL_ALLOWED_HOST"
check "its access record reaches the log" wait_for_log agent "flow .*sni=$SL_ALLOWED_HOST .*result=ok" 5
kill $agent_pid
for _ in $(seq 50); do kill -0 $agent_pid 2> /dev/null || break; sleep 0.1; done
check "the agent stops on SIGTERM within 5 s" bash -c "! kill -0 $agent_pid 2> /dev/null"
wait $agent_pid
rc=$?
check "the agent exits 0 (rc=$rc)" test $rc -eq 0
sed -i "/^$agent_pid agent\$/d" "$SL_RUN_DIR/pids"
