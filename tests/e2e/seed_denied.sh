#!/usr/bin/env bash
# The seed scenario, denied path: a host not on the allowlist fails from the enabled pod,
# refused by the agent, and never reaches the gateway or the origin.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

out=$(pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR 2>&1)
rc=$?
check "curl to $SL_DENIED_HOST fails" test $rc -ne 0
check_contains "curl sees the connection reset, not a timeout" "$out" "reset by peer|SSL_ERROR_SYSCALL"
check "the agent logged the denial with destination, SNI and reason" wait_for_log agent \
  "deny cgroup=[0-9]+ pod=- src=$SL_POD_A_ADDR:[0-9]+ dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"

# Control in the same topology: the allowed host still works, so the denial was policy.
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "control: the allowed host works" "$body" "^hello from $SL_ALLOWED_HOST"
check "control: the gateway logged the allowed access" wait_for_log gateway "sni=$SL_ALLOWED_HOST .*result=ok"

check_not_contains "the gateway never received the denied host" "$(log_of gateway)" "$SL_DENIED_HOST"
check_not_contains "the denied origin was never reached" "$(cat "$SL_RUN_DIR/origin-access.log")" "$SL_DENIED_HOST"
