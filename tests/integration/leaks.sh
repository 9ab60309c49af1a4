#!/usr/bin/env bash
# No hand-off entry outlives its connection: 100,000 connects across every way a
# redirected connection can end, and sl_orig_dst (dumped) is back to empty after each.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
pending() {
  "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status | sed -n 's/^flows waiting for the agent: \([0-9]*\).*/\1/p'
}
settled() { # waits for the agent to drain its accept queue, then reads occupancy
  for _ in $(seq 100); do [ "$(pending)" -eq 0 ] && break; sleep 0.1; done
  pending
}
storm() { sl_pod_exec pod-a "$SL_PROBE" storm $SL_ALLOWED_ADDR:443 "$@"; }
total=0
phase() { # NAME COUNT EXPECTED-OUTCOME-REGEX STORM-ARGS...
  local name=$1 count=$2 expect=$3
  shift 3
  local out
  out=$(storm --count "$count" "$@" | tr '\n' ' ')
  total=$((total + count))
  check_contains "$name: $count connects end as expected" "$out" "$expect"
  check "$name: no entry left (occupancy $(pending) -> 0)" test "$(settled)" -eq 0
}
check "starts empty" test "$(pending)" -eq 0
phase "client closes before sending" 31950 "^connected=31950 $"
phase "plaintext, refused by the agent" 30000 "^connected=30000 $" --send $'GET / HTTP/1.0\r\n\r\n'
phase "denied SNI" 20000 "^connected=20000 $" --hello $SL_DENIED_HOST
phase "allowed SNI, relayed to the gateway" 1000 "^connected=1000 $" --hello $SL_ALLOWED_HOST
# A client that closes right after sending can reach TCP_CLOSE before the agent accepts;
# sockops then removes its entry and the agent logs no-original-destination instead.
denied=$(grep -c 'reason=host-not-allowed' "$SL_RUN_DIR/agent.log")
closed=$(grep -c 'reason=no-original-destination' "$SL_RUN_DIR/agent.log")
echo "agent: host-not-allowed=$denied no-original-destination=$closed"
check "the agent denied SNIs (and the rest closed first)" test "$denied" -gt 0

# Connect timeout: SYNs to the agent dropped, so connects time out and the sockets close.
sl_host_exec node iptables -I INPUT -p tcp --dport $SL_AGENT_PORT --syn -j DROP
phase "connect timeout" 50 "^error_ETIMEDOUT=50 $" --timeout-ms 100
sl_host_exec node iptables -D INPUT -p tcp --dport $SL_AGENT_PORT --syn -j DROP

# Refused: the forwarder is down, the RST closes each socket.
sl_stop agent
phase "refused, agent down" 17000 "^error_ECONNREFUSED=17000 $"
check "100,000 connects in all" test "$total" -eq 100000
check_contains "every entry removed was counted by the kernel" \
  "$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)" "handoff_full 0"
