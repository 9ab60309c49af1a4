#!/usr/bin/env bash
# The installed shape, in containers: the image from scripts/image.sh; the gateway and the
# node agent started from the Deployment's and the DaemonSet's own pod templates (command,
# env, capabilities, mounts, user); app "pods" created afterwards as containers under the
# enrolled kubepods cgroup, each with its own cgroup. The seed scenario passes for a pod
# that never was enabled by name, from its first connect; an agent container restart keeps
# the pins, fails closed while down, and no connect bypasses it.
source "$(dirname "$0")/lib.sh"
container_topology_up
container_rules
# Kubernetes gives a non-root container no ambient capabilities (podman does): the image
# must carry the gateway's one capability on the file.
rootfs=$(podman image mount "$SL_IMAGE")
check_contains "the image's sluice-gateway carries the file capability cap_net_raw=ep" \
  "$(getcap "$rootfs/usr/local/bin/sluice-gateway")" "cap_net_raw=ep$"
check "and nothing else in the image has file capabilities" test "$(getcap -r "$rootfs" 2> /dev/null | grep -c .)" -eq 1
podman image unmount "$SL_IMAGE" > /dev/null

container_run "sl-$SL_PREFIX-gateway" Deployment sluice-gateway egress $SL_EGRESS_ADDR "sluice-$SL_PREFIX/egress-pods" ||
  exit 1
check "the gateway container (non-root, NET_RAW only) listens" sl_wait_listen egress $SL_GATEWAY_PORT 20
container_run "sl-$SL_PREFIX-agent" DaemonSet sluice-agent node $SL_AGENT_ADDR "$(sl_kubepods)" || exit 1
agent=sl-$SL_PREFIX-agent
if wait_container_log "$agent" "agent ready" 20; then ok "the agent container is ready"; else
  not_ok "the agent container is ready"
  exit 1
fi
gateway=sl-$SL_PREFIX-gateway
check "the agent listens on NODE_IP from the downward API" sl_wait_listen node $SL_AGENT_PORT 5
check_contains "the agent enrolled the kubepods parent" "$(enabled_cgroups)" "$(sl_cgroup2)/$(sl_kubepods) programs="
check "and nothing else" test "$(enabled_cgroups | grep -c .)" -eq 1
check "the gateway runs as uid 65532" test "$(podman top "$gateway" huser | tail -1)" = 65532
check_contains "the gateway has only CAP_NET_RAW" "$(podman exec "$gateway" grep CapEff /proc/1/status)" \
  "CapEff:[[:space:]]+0000000000002000$"
check "the agent's readiness probe passes" run_probe "$agent" DaemonSet sluice-agent readinessProbe node $SL_AGENT_ADDR
check "the agent's liveness probe passes" run_probe "$agent" DaemonSet sluice-agent livenessProbe node $SL_AGENT_ADDR
check "the gateway's readiness probe passes" run_probe "$gateway" Deployment sluice-gateway readinessProbe egress $SL_EGRESS_ADDR

# Pods created after the agent: nobody enables them; their cgroups are new children of
# kubepods, covered by the programs attached there.
drops_before=$(pod_drops)
app_pod "sl-$SL_PREFIX-app1" pod-a
cg1=$(app_cgroup_id "sl-$SL_PREFIX-app1")
body=$(app_curl "sl-$SL_PREFIX-app1" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "a pod created after the agent: its first connect reaches the allowed host via the gateway" \
  "$body" "^hello from $SL_ALLOWED_HOST, you came from $SL_EGRESS_INET_ADDR\$"
check "the agent logged that pod's own cgroup (not enabled by name)" wait_container_log "$agent" \
  "flow cgroup=$cg1 .*src=$SL_POD_A_ADDR:[0-9]+ dst=$SL_ALLOWED_ADDR:443 sni=$SL_ALLOWED_HOST .*result=ok"
check "the gateway logged the agent's identity" wait_container_log "$gateway" \
  "access peer=198.18.3.1:[0-9]+ identity=spiffe://cluster.local/ns/sluice-system/sa/sluice-agent sni=$SL_ALLOWED_HOST .*result=ok"
out=$(app_curl "sl-$SL_PREFIX-app1" $SL_DENIED_HOST $SL_DENIED_ADDR)
check_not_contains "the other host is refused" "$out" "hello from"
check "the agent logged the denial" wait_container_log "$agent" \
  "deny cgroup=$cg1 .*sni=$SL_DENIED_HOST reason=host-not-allowed"

app_pod "sl-$SL_PREFIX-app2" pod-b
cg2=$(app_cgroup_id "sl-$SL_PREFIX-app2")
body=$(app_curl "sl-$SL_PREFIX-app2" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "a second new pod, in another namespace, is served from its first connect" \
  "$body" "^hello from $SL_ALLOWED_HOST"
check "its flow carries its own cgroup" wait_container_log "$agent" "flow cgroup=$cg2 .*result=ok"
check "no pod packet went toward the internet directly" test "$(pod_drops)" -eq "$drops_before"
check_not_contains "the app cgroups were never enabled one by one" "$(enabled_cgroups)" "libpod-"

# The agent container restarts (a DaemonSet rollout or a crash): a storm of connects from a
# pod runs into the stop (refused connects are quick, so the rest of the storm is spent
# while the agent is down; service after the start is checked with curl below).
pins_before=$(find "$SL_PIN_DIR" | sort)
drops_before=$(pod_drops)
redirected_before=$(kernel_counter redirected)
timeout 120 podman exec "sl-$SL_PREFIX-app1" "$SL_PROBE" storm $SL_ALLOWED_ADDR:443 --count 100000 \
  --timeout-ms 1000 > "$SL_RUN_DIR/storm.log" 2>&1 &
storm=$!
echo "$storm storm" >> "$SL_RUN_DIR/pids"
# Stop once the storm is flowing through the running agent.
for _ in $(seq 200); do
  [ "$(kernel_counter redirected)" -ge $((redirected_before + 500)) ] && break
  sleep 0.05
done
podman stop -t 10 "$agent" > /dev/null
check "the agent container stopped" test "$(podman inspect --format '{{.State.Running}}' "$agent")" = false
check "the pins survive the container" test "$(find "$SL_PIN_DIR" | sort)" = "$pins_before"
out=$(podman exec "sl-$SL_PREFIX-app2" "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000)
check_contains "with the agent down an enrolled pod's connect is refused at once (fail closed)" "$out" \
  "errno=ECONNREFUSED"
out=$(app_curl "sl-$SL_PREFIX-app2" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_not_contains "and curl gets no answer" "$out" "hello from"
sleep 0.3
podman start "$agent" > /dev/null
restarted() { [ "$(container_logs "$agent" | grep -c 'agent ready')" -ge 2 ]; }
for _ in $(seq 200); do restarted && break; sleep 0.1; done
check "the restarted agent is ready again" restarted
check "the agent listens again" sl_wait_listen node $SL_AGENT_PORT 10
wait $storm
out=$(tr '\n' ' ' < "$SL_RUN_DIR/storm.log")
echo "storm: $out"
check_contains "connects during the restart were refused" "$out" "error_ECONNREFUSED=[1-9]"
check_contains "connects before the stop were served by the agent" "$out" "connected=[1-9]"
check_not_contains "outcomes are only connected, refused, reset or timed out" \
  "$(sed 's/error_ECONNREFUSED=[0-9]*//; s/error_ECONNRESET=[0-9]*//; s/error_ETIMEDOUT=[0-9]*//; s/connected=[0-9]*//' <<< "$out")" "[a-z]"
check "no connect bypassed the agent (the node dropped nothing of pods' toward the internet)" \
  test "$(pod_drops)" -eq "$drops_before"
check_contains "the restarted agent found kubepods still enrolled (pins adopted)" "$(container_logs "$agent")" \
  "cgroup $(sl_cgroup2)/$(sl_kubepods) id=[0-9]+ already enabled"
body=$(app_curl "sl-$SL_PREFIX-app2" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "after the restart the pods are served again" "$body" "^hello from $SL_ALLOWED_HOST"
app_pod "sl-$SL_PREFIX-app3" pod-a
body=$(app_curl "sl-$SL_PREFIX-app3" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "and a pod created after the restart too" "$body" "^hello from $SL_ALLOWED_HOST"
container_logs "$gateway" > /dev/null
