#!/usr/bin/env bash
# ECH: a ClientHello carrying encrypted_client_hello shows only its outer (public) name.
# By default (agent.echPolicy: deny) the agent refuses it, even for an allowed outer
# name; with echPolicy: allow it is decided by that outer name like any other hello.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

ech_hello() { sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --hello "$1" --ech --read --timeout-ms 3000; }
ech_hello $SL_ALLOWED_HOST > /dev/null
check "default deny: an ECH hello for an allowed outer name is refused as ech-refused" \
  wait_for_log agent "deny .* sni=$SL_ALLOWED_HOST reason=ech-refused"
check_not_contains "and never reaches the gateway" "$(log_of agent)" "sni=$SL_ALLOWED_HOST rule="
sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --hello $SL_ALLOWED_HOST --read --timeout-ms 3000 > /dev/null
check "the same hello without ECH goes to the gateway" wait_for_log agent "sni=$SL_ALLOWED_HOST rule=$SL_ALLOWED_HOST"

sed -i 's/^  clientHelloTimeoutMs: 5000/  clientHelloTimeoutMs: 5000\n  echPolicy: allow/' "$SL_RUN_DIR/rules.yaml"
check "echPolicy: allow is loaded" wait_for_log agent "rules reloaded \(file changed\) version=2"
before=$(grep -c "sni=$SL_ALLOWED_HOST rule=" "$SL_RUN_DIR/agent.log")
ech_hello $SL_ALLOWED_HOST > /dev/null
for _ in $(seq 100); do [ "$(grep -c "sni=$SL_ALLOWED_HOST rule=" "$SL_RUN_DIR/agent.log")" -gt "$before" ] && break; sleep 0.05; done
check "allow: an ECH hello is decided by its outer name (allowed: to the gateway)" \
  test "$(grep -c "sni=$SL_ALLOWED_HOST rule=" "$SL_RUN_DIR/agent.log")" -gt "$before"
ech_hello $SL_DENIED_HOST > /dev/null
check "allow: an ECH hello with a denied outer name is denied as host-not-allowed" \
  wait_for_log agent "sni=$SL_DENIED_HOST reason=host-not-allowed"
check "exactly one ech-refused (the one before the change)" test "$(grep -c "reason=ech-refused" "$SL_RUN_DIR/agent.log")" -eq 1
