#!/usr/bin/env bash
# A relay where no byte moves either way for agent.idleTimeoutMs is ended, and logged so;
# an ordinary request is not affected.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
sed -i 's/^  clientHelloTimeoutMs: 5000/  clientHelloTimeoutMs: 5000\n  idleTimeoutMs: 800/' "$SL_RUN_DIR/rules.yaml"
check "the rules carry the short idle timeout" grep -q "idleTimeoutMs: 800" "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }

open_stream idle
check "an idle relay is ended after the idle timeout" \
  wait_for_log agent "sni=$SL_ALLOWED_HOST .*duration_ms=((8|9)[0-9]{2}|[1-4][0-9]{3}) result=idle-timeout" 5
exec 3>&-

# With the short timeout in force, an ordinary request still completes.
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "a short request still works" "$body" "^hello from $SL_ALLOWED_HOST"
