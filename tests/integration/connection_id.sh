#!/usr/bin/env bash
# One flow, two records: the agent's JSON flow record and the gateway's JSON access record
# carry the same connection id (the agent sends it to the gateway as the request header
# sluice-connection-id of its pooled tunnel). Before that tunnel, the gateway has no way
# to learn the id and logs "-": this test then fails, on purpose.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native || { not_ok "rules written"; exit 1; }
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}" --log-format=json
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "gateway starts"; exit 1; }
sl_start_agent --log-format=json || { not_ok "agent starts"; exit 1; }

for i in 1 2 3; do
  body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
  check_contains "allowed request $i is answered" "$body" "^hello from $SL_ALLOWED_HOST"
done
for _ in $(seq 100); do [ "$(grep -c '"kind":"flow"' "$SL_RUN_DIR/agent.log")" -ge 3 ] && break; sleep 0.05; done
check "the agent logged three flows" test "$(grep -cE '"kind":"flow".*"connection_id":"[0-9a-f]{16}"' "$SL_RUN_DIR/agent.log")" -ge 3
for _ in $(seq 50); do [ "$(grep -c '"kind":"access"' "$SL_RUN_DIR/gateway.log")" -ge 3 ] && break; sleep 0.1; done

result=$(python3 - "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/gateway.log" "$SL_ALLOWED_HOST" << 'PY'
import json, sys
agent, gateway, host = sys.argv[1:4]
flows = [json.loads(l) for l in open(agent)]
access = [json.loads(l) for l in open(gateway)]
ids = sorted(r["connection_id"] for r in flows if r.get("kind") == "flow" and r.get("sni") == host)
seen = sorted(r["connection_id"] for r in access if r.get("kind") == "access" and r.get("sni") == host)
print("agent", " ".join(ids))
print("gateway", " ".join(seen))
print("same" if len(ids) == 3 and len(set(ids)) == 3 and ids == seen else "different")
PY
)
check_contains "each flow's id is on both records (agent and gateway)" "$result" "^same$"
echo "$result"
