#!/usr/bin/env bash
# pod-b is not enabled: its connections are not redirected, and the node drops its
# direct traffic to the internet, so the gateway is the only way out.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

drops() { sl_host_exec node iptables -L SL-POD-EGRESS -v -x -n | awk '$3=="DROP"{s+=$1} END{print s+0}'; }
before=$(drops)
out=$(pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
rc=$?
check "curl from pod-b fails" test $rc -ne 0
check_contains "it fails by timeout (packets dropped), not by a reset from sluice" "$out" "Timeout was reached|timed out"
check "the node's pod-egress rule dropped pod-b's packets" test "$(drops)" -gt "$before"
check_not_contains "the agent never saw pod-b" "$(log_of agent)" "src=$SL_POD_B_ADDR"
check_not_contains "the gateway never saw a connection" "$(log_of gateway)" "access "
check_not_contains "the origin was never reached" "$(cat "$SL_RUN_DIR/origin-access.log" 2>/dev/null)" "."
status=$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)
check_contains "pod-a's cgroup is enabled" "$status" "sluice-$SL_PREFIX/pod-a programs=7"
check_not_contains "pod-b's cgroup is not" "$status" "pod-b"

# Control: the same request from pod-a succeeds, through the gateway.
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "control: pod-a reaches the host through sluice" "$body" "you came from $SL_EGRESS_INET_ADDR"
