#!/usr/bin/env bash
# The admin endpoints of both daemons in the netns topology: /metrics scraped before and
# after an allowed flow, a denied flow, a flow the gateway refuses and reloads, with
# exact counter deltas; promtool accepts every scrape; /readyz follows the gateway's
# health; JSON access records parse; `sluicectl status` tells a dead agent apart.
source "$(dirname "$0")/../lib/harness.sh"
command -v promtool > /dev/null || { not_ok "promtool is installed (Debian package prometheus)"; exit 1; }
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native || { not_ok "rules written"; exit 1; }

# The agent allows one host more than the gateway: that host is the gateway's refusal.
REFUSED_HOST=refused.example.org
gateway_rules=$SL_RUN_DIR/rules.yaml
agent_rules=$SL_RUN_DIR/agent-rules.yaml
sed "s/^hosts:/hosts:\n  - name: $REFUSED_HOST/" "$gateway_rules" > "$agent_rules"
# Only SIGHUP reloads (--no-watch): each reload is counted exactly once.
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" --config "$gateway_rules" --no-watch --log-format=json
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "gateway starts"; exit 1; }
SL_RULE_FILES=("$agent_rules")
sl_start_agent --no-watch --log-format=json || { not_ok "agent starts"; exit 1; }

ADMIN=127.0.0.1:15020
scrape() { sl_host_exec "$1" curl -sS -m 5 "http://$ADMIN$2"; }
status_code() { sl_host_exec "$1" curl -s -o /dev/null -w '%{http_code}' -m 5 "http://$ADMIN$2"; }
# value SCRAPE SERIES: the sample of exactly that series ('name{labels}' as exposed), 0 if absent.
value() { awk -v s="$2" '$1==s {v=$2} END {printf "%d\n", (v=="" ? 0 : v)}' <<< "$1"; }
# delta SERIES BEFORE AFTER
delta() { echo $(($(value "$3" "$1") - $(value "$2" "$1"))); }
pid_of() { awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1; }
promtool_ok() { # LABEL SCRAPE
  local out
  if out=$(promtool check metrics <<< "$2" 2>&1); then ok "$1"; else not_ok "$1: $out"; fi
}
# wait_metric HOST SERIES MIN: polls until the series reaches MIN (a flow is counted when it ends).
wait_metric() {
  for _ in $(seq 50); do
    [ "$(value "$(scrape "$1" /metrics)" "$2")" -ge "$3" ] && return 0
    sleep 0.1
  done
  return 1
}

for _ in $(seq 50); do [ "$(status_code node /readyz)" = 200 ] && break; sleep 0.1; done
check_contains "the agent is ready once the rules, programs and gateway are" "$(status_code node /readyz)" "^200$"
check_contains "the gateway is ready" "$(status_code egress /readyz)" "^200$"
check_contains "/healthz answers" "$(scrape node /healthz)" "^ok$"
check_contains "an unknown path is 404" "$(status_code node /nope)" "^404$"
check_contains "/config lists the hosts in force" "$(scrape node /config)" "\"name\": \"$REFUSED_HOST\""
check_contains "/config names the gateway's certificate subject" "$(scrape egress /config)" \
  '"uri": "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"'

a0=$(scrape node /metrics)
g0=$(scrape egress /metrics)
promtool_ok "promtool accepts the agent's scrape" "$a0"
promtool_ok "promtool accepts the gateway's scrape" "$g0"
check_contains "the agent exposes the kernel counters" "$a0" '^sluice_kernel_decisions_total\{reason="redirected"\} '
check_contains "and the hand-off map's capacity" "$a0" '^sluice_handoff_map_capacity 65536$'
check_contains "the gateway exposes its certificate's expiry" "$g0" '^sluice_certificate_expiry_timestamp_seconds [0-9.e+]+$'

# 1. An allowed flow.
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "the allowed request is answered" "$body" "^hello from $SL_ALLOWED_HOST"
ok_series='sluice_agent_connections_total{decision="allowed",reason="ok"}'
wait_metric node "$ok_series" $(($(value "$a0" "$ok_series") + 1))
wait_metric egress 'sluice_gateway_connections_total{result="ok"}' $(($(value "$g0" 'sluice_gateway_connections_total{result="ok"}') + 1))
a1=$(scrape node /metrics)
g1=$(scrape egress /metrics)
check_contains "agent: allowed/ok +1" "$(delta "$ok_series" "$a0" "$a1")" "^1$"
check_contains "gateway: ok +1" "$(delta 'sluice_gateway_connections_total{result="ok"}' "$g0" "$g1")" "^1$"
check "agent: bytes up counted" test "$(delta 'sluice_agent_bytes_total{direction="up"}' "$a0" "$a1")" -gt 0
check "agent: bytes down counted" test "$(delta 'sluice_agent_bytes_total{direction="down"}' "$a0" "$a1")" -gt 0
check_contains "agent and gateway count the same bytes up" \
  "$(delta 'sluice_agent_bytes_total{direction="up"}' "$a0" "$a1")" "^$(delta 'sluice_gateway_bytes_total{direction="up"}' "$g0" "$g1")$"
check_contains "agent: one flow duration observed" "$(delta sluice_agent_flow_duration_seconds_count "$a0" "$a1")" "^1$"
check_contains "agent: one connect-to-first-byte observed" \
  "$(delta sluice_agent_connect_to_first_byte_seconds_count "$a0" "$a1")" "^1$"
check_contains "agent: one ClientHello wait observed" "$(delta sluice_agent_client_hello_wait_seconds_count "$a0" "$a1")" "^1$"
check_contains "gateway: one DNS lookup timed" "$(delta sluice_gateway_dns_seconds_count "$g0" "$g1")" "^1$"
# What sluice adds to a connect is a few hundred µs: the latency histograms resolve it.
check_contains "agent: latency buckets start at 100 µs" "$a1" '^sluice_agent_connect_to_first_byte_seconds_bucket\{le="0.0001"\} '
check_contains "gateway: latency buckets start at 100 µs" "$g1" '^sluice_gateway_upstream_connect_seconds_bucket\{le="0.0001"\} '
check_contains "agent: no flow left active" "$(value "$a1" sluice_agent_active_flows)" "^0$"

# 2. A denied flow: the agent refuses it, the gateway never sees it.
pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR > /dev/null 2>&1
deny_series='sluice_agent_connections_total{decision="denied",reason="host-not-allowed"}'
wait_metric node "$deny_series" $(($(value "$a1" "$deny_series") + 1))
a2=$(scrape node /metrics)
g2=$(scrape egress /metrics)
check_contains "agent: denied/host-not-allowed +1" "$(delta "$deny_series" "$a1" "$a2")" "^1$"
check_contains "agent: nothing else counted" "$(delta "$ok_series" "$a1" "$a2")" "^0$"
check_contains "gateway: no connection for a denied flow" \
  "$(($(awk '/^sluice_gateway_connections_total\{/ {s+=$2} END {print s+0}' <<< "$g2") - $(awk '/^sluice_gateway_connections_total\{/ {s+=$2} END {print s+0}' <<< "$g1")))" "^0$"

# 3. A flow the agent allows and the gateway refuses (its rules lack the host).
pod_curl pod-a $REFUSED_HOST $SL_ALLOWED_ADDR > /dev/null 2>&1
refused_series='sluice_gateway_connections_total{result="host-not-allowed"}'
wait_metric egress "$refused_series" $(($(value "$g2" "$refused_series") + 1))
# The gateway's answer reaches the agent (a CONNECT refused with its reason): the flow is
# counted as failed there, with the reason gateway-refused.
gw_refused_series='sluice_agent_connections_total{decision="failed",reason="gateway-refused"}'
wait_metric node "$gw_refused_series" $(($(value "$a2" "$gw_refused_series") + 1))
a3=$(scrape node /metrics)
g3=$(scrape egress /metrics)
check_contains "gateway: host-not-allowed +1" "$(delta "$refused_series" "$g2" "$g3")" "^1$"
check_contains "gateway: ok unchanged" "$(delta 'sluice_gateway_connections_total{result="ok"}' "$g2" "$g3")" "^0$"
check_contains "agent: the flow counted once as failed/gateway-refused" \
  "$(delta "$gw_refused_series" "$a2" "$a3")" "^1$"
check_contains "agent: no deny for it" "$(delta "$deny_series" "$a2" "$a3")" "^0$"

# The kernel saw three redirected connects from pod-a, each handed off once.
pod_a_cg=$(stat -c %i "$(sl_cgroup_root)/pod-a")
check_contains "kernel: redirected +3 on the node" \
  "$(delta 'sluice_kernel_decisions_total{reason="redirected"}' "$a0" "$a3")" "^3$"
check_contains "kernel: handoff +3 on the node" "$(delta 'sluice_kernel_decisions_total{reason="handoff"}' "$a0" "$a3")" "^3$"
check_contains "kernel: redirected +3 for pod-a's cgroup" \
  "$(delta "sluice_kernel_pod_decisions_total{pod=\"cgroup:$pod_a_cg\",reason=\"redirected\"}" "$a0" "$a3")" "^3$"
check_contains "kernel: the hand-off map is empty again" "$(value "$a3" sluice_handoff_map_entries)" "^0$"

# 4. Reloads: SIGHUP takes the same files (ok), then a broken agent file is rejected.
kill -HUP "$(pid_of agent)" "$(pid_of gateway)"
wait_metric node 'sluice_rules_reloads_total{result="ok"}' 1
wait_metric egress 'sluice_rules_reloads_total{result="ok"}' 1
cp "$agent_rules" "$SL_RUN_DIR/agent-rules.good"
printf 'hosts: [\n' > "$agent_rules"
kill -HUP "$(pid_of agent)"
wait_metric node 'sluice_rules_reloads_total{result="rejected"}' 1
a4=$(scrape node /metrics)
g4=$(scrape egress /metrics)
check_contains "agent: reloads ok +1" "$(delta 'sluice_rules_reloads_total{result="ok"}' "$a3" "$a4")" "^1$"
check_contains "agent: reloads rejected +1" "$(delta 'sluice_rules_reloads_total{result="rejected"}' "$a3" "$a4")" "^1$"
check_contains "agent: rules version 2 in force" "$(value "$a4" sluice_rules_version)" "^2$"
check_contains "gateway: reloads ok +1" "$(delta 'sluice_rules_reloads_total{result="ok"}' "$g3" "$g4")" "^1$"
check_contains "gateway: nothing rejected" "$(delta 'sluice_rules_reloads_total{result="rejected"}' "$g3" "$g4")" "^0$"
check_contains "gateway: rules version 2" "$(value "$g4" sluice_rules_version)" "^2$"
cp "$SL_RUN_DIR/agent-rules.good" "$agent_rules"
echo "# scrape sizes: agent $(wc -c <<< "$a4") bytes, $(grep -vc '^#' <<< "$a4") samples; gateway $(wc -c <<< "$g4") bytes, $(grep -vc '^#' <<< "$g4") samples"
promtool_ok "promtool accepts the agent's scrape after traffic" "$a4"
promtool_ok "promtool accepts the gateway's scrape after traffic" "$g4"

# JSON access records: every line of both logs is one JSON object; the flows are there.
json_check=$(python3 - "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/gateway.log" "$SL_ALLOWED_HOST" << 'PY'
import json, sys
agent, gateway, host = sys.argv[1:4]
def records(path):
    out = []
    for n, line in enumerate(open(path), 1):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            print(f"{path}:{n}: not JSON ({e}): {line[:120]!r}")
            sys.exit(1)
    return out
a, g = records(agent), records(gateway)
flow = [r for r in a if r.get("kind") == "flow" and r.get("sni") == host and r.get("result") == "ok"]
deny = [r for r in a if r.get("kind") == "deny" and r.get("reason") == "host-not-allowed"]
access = [r for r in g if r.get("kind") == "access" and r.get("sni") == host and r.get("result") == "ok"]
assert flow and deny and access, (len(flow), len(deny), len(access))
f = flow[0]
for key in ("time", "level", "cgroup", "pod", "src", "dst", "sni", "rule", "gateway", "up", "down",
            "duration_ms", "result", "connection_id"):
    assert key in f, key
assert f["time"].endswith("Z") and isinstance(f["up"], int), f
assert len(f["connection_id"]) == 16 and all(c in "0123456789abcdef" for c in f["connection_id"]), f
for key in ("time", "peer", "identity", "sni", "port", "upstream", "up", "down", "duration_ms", "result",
            "peer_serial", "connection_id"):
    assert key in access[0], key
print("ok", len(a), len(g))
PY
)
check_contains "every log line is JSON, with the flow, deny and access records and their fields" "$json_check" "^ok "

# /readyz follows the gateway: down -> 503 (the agent's probe runs every 2 s), back -> 200.
sl_stop gateway
for _ in $(seq 60); do [ "$(status_code node /readyz)" = 503 ] && break; sleep 0.1; done
check_contains "agent not ready while the gateway is down" "$(status_code node /readyz)" "^503$"
check_contains "readyz says why" "$(scrape node /readyz)" '"reachable": false'
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)
code=$?
check_contains "sluicectl status: running, not ready (exit 1)" "$code" "^1$"
check_contains "sluicectl status names the unreachable gateway" "$out" "gateway $SL_EGRESS_ADDR:$SL_GATEWAY_PORT UNREACHABLE"
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" --config "$gateway_rules" --no-watch --log-format=json
sl_wait_listen egress $SL_GATEWAY_PORT
for _ in $(seq 60); do [ "$(status_code node /readyz)" = 200 ] && break; sleep 0.1; done
check_contains "agent ready again when the gateway is back" "$(status_code node /readyz)" "^200$"
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status -o json)
code=$?
check_contains "sluicectl status: running and ready (exit 0)" "$code" "^0$"
check_contains "sluicectl status -o json says so" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["agent"]["ready"], d["kernel"]["installed"])' <<< "$out")" "^True True$"
check "the agent's TCP probes reach the restarted gateway" wait_metric egress sluice_gateway_empty_connections_total 1
check_contains "and leave no access record there (the restarted gateway served no flow yet)" \
  "$(grep -c '"kind":"access"' "$SL_RUN_DIR/gateway.log")" "^0$"
check_not_contains "no gateway record for an empty probe connection" "$(cat "$SL_RUN_DIR/gateway.log")" '"result":"handshake-failed"'

# sluicectl rules: what the running agent enforces.
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" rules)
check_contains "sluicectl rules lists the hosts in force" "$out" "^  $REFUSED_HOST ports 443"
# explain --running asks the agent (IPv6 too).
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" explain --running \
  --cgroup "$(sl_cgroup_root)/pod-a" --to "[2001:db8:100::10]:443" --sni $SL_DENIED_HOST)
code=$?
check_contains "explain --running over IPv6: denied (exit 4)" "$code" "^4$"
check_contains "explain --running says where the rules came from" "$out" "rules from the running agent \(rules version 2\)"

# explain --pod finds the pod's cgroup from its UID (a kubelet-shaped path, cgroupfs driver).
uid=1b4e28ba-2fa1-11d2-883f-0016d3cca427
mkdir -p "$(sl_cgroup_root)/kubepods/besteffort/pod$uid/ctr"
out=$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" explain --config "$agent_rules" --pod $uid \
  --to $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST -o json)
check_contains "explain --pod finds the pod's cgroup" \
  "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["cgroup"], d["redirected"])' <<< "$out")" \
  "/kubepods/besteffort/pod$uid False$"

# What a scrape costs (not asserted): 20 scrapes of each daemon.
for host in node egress; do
  times=$(for _ in $(seq 20); do sl_host_exec $host curl -s -o /dev/null -w '%{time_total}\n' "http://$ADMIN/metrics"; done |
    sort -n | awk '{a[NR]=$1} END {printf "p50 %.1f ms, max %.1f ms", a[int(NR/2)]*1000, a[NR]*1000}')
  echo "# /metrics on $host: $times"
done

# The agent killed: status says it is not running, with its exit code.
sl_stop agent
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)
code=$?
check_contains "sluicectl status: agent not running (exit 3)" "$code" "^3$"
check_contains "sluicectl status says so, and that enabled cgroups fail closed" "$out" "^agent: NOT RUNNING .*fail closed"
check_contains "the kernel side is still shown" "$out" "^rules version: 2"
