#!/usr/bin/env bash
# An agent restart under a steady stream of connects: each connect is either redirected
# or refused (or reset, if it was queued on the stopping listener); none goes direct (the node's pod-egress counter does not move) and none
# hangs. The restarted agent adopts the pinned maps and links.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
drops() { sl_host_exec node iptables -L SL-POD-EGRESS -v -x -n | awk '$3=="DROP"{s+=$1} END{print s+0}'; }
before=$(drops)
sl_pod_exec pod-a "$SL_PROBE" storm $SL_ALLOWED_ADDR:443 --count 150000 --timeout-ms 3000 \
  > "$SL_RUN_DIR/storm.log" 2>&1 &
storm=$!
echo "$storm storm" >> "$SL_RUN_DIR/pids"
sleep 0.5
sl_stop agent
sleep 0.3
sl_start_agent
sleep 0.3
sl_stop agent
sl_start_agent
wait $storm
out=$(tr '\n' ' ' < "$SL_RUN_DIR/storm.log")
echo "storm: $out"
check_contains "some connects were refused while the agent was down" "$out" "error_ECONNREFUSED=[1-9]"
check_contains "most were redirected to the agent" "$out" "connected=[1-9][0-9]{3,}"
# Failing closed takes three forms: refused (no listener), reset (queued on the stopping
# listener) and, rarely, a timeout (SYN dropped by a full accept queue during the swap).
# Whether anything went elsewhere is what the pod-egress counter below answers.
check_not_contains "outcomes are only connected, refused, reset or timed out" \
  "$(sed 's/error_ECONNREFUSED=[0-9]*//; s/error_ECONNRESET=[0-9]*//; s/error_ETIMEDOUT=[0-9]*//; s/connected=[0-9]*//' <<< "$out")" "[a-z]"
check "no pod packet went toward the internet" test "$(drops)" -eq "$before"
check_contains "the restarted agent is serving" "$(log_of agent)" "agent ready"
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "after the restarts the path works" "$body" "^hello from $SL_ALLOWED_HOST"
