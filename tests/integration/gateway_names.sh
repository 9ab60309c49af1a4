#!/usr/bin/env bash
# A gateway given as a name: the agent resolves it (the system resolver; here a private
# /etc/hosts in the agent's own mount namespace), tunnels to the address, and puts the
# address into the kernel's bypass like a gateway written as an address; when the name
# moves, the bypass follows (the old address out, the new one in); when it stops
# resolving, the last addresses stay.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native || { not_ok "rules written"; exit 1; }
rules=$SL_RUN_DIR/rules.yaml
NAME=gateways.sluice.test
# The agent names the gateway, asks again every second, and no configured bypass CIDR
# covers the egress node (so only the name's resolution can put the gateway there).
sed -i -e "s/^    address: $SL_EGRESS_ADDR:15443\$/    addresses: [\"$NAME:15443\"]\n    resolveIntervalMs: 1000/" \
  -e '/^    - 198.18.3.0\/24$/d' "$rules"
check "the agent's gateway is a name" grep -q "addresses: \[\"$NAME:15443\"\]" "$rules"
check "no bypass CIDR covers the egress node" test "$(grep -c '198.18.3.0/24' "$rules")" -eq 0
hosts=$SL_RUN_DIR/hosts
printf '127.0.0.1 localhost\n%s %s\n' $SL_EGRESS_ADDR $NAME > "$hosts"

sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" --config "$rules"
sl_wait_listen egress $SL_GATEWAY_PORT || { not_ok "gateway starts"; exit 1; }
# The agent in a mount namespace of its own whose /etc/hosts is the test's file (edited
# in place below, so the bind mount keeps showing it). Its pins, cgroups and network
# namespace are the topology's, as for every agent.
sl_spawn agent node unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$hosts" \
  "$SL_BUILD/userspace/sluice-agent" --config "$rules" --pin-dir "$SL_PIN_DIR" --no-watch
sl_wait_listen node $SL_AGENT_PORT || { not_ok "agent starts"; exit 1; }

bypass() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status | sed -n 's/^bypass://p'; }
check "the resolved gateway address is applied" wait_for_log agent "gateway names=1 bypass_v4=1 bypass_v6=0 result=applied"
check_contains "the kernel bypasses the address the name resolved to" "$(bypass)" " $SL_EGRESS_ADDR/32( |$)"
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "an allowed request goes through the gateway named by its name" "$out" "hello from $SL_ALLOWED_HOST"
check "the agent's flow went to the resolved address" wait_for_log agent \
  "flow .*result=ok .*gateway=$SL_EGRESS_ADDR:15443 "

# Readiness follows the resolved address too: past a probe (every 2 s) with no flow
# running, the agent still reports its gateway reachable.
sleep 2.5
ready=$(sl_host_exec node curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:15020/readyz)
check_contains "the agent is ready with its gateway given only as a name" "$ready" "^200$"

# The name moves to another address: the bypass follows, all at once.
printf '127.0.0.1 localhost\n198.18.3.9 %s\n' $NAME > "$hosts"
for _ in $(seq 50); do bypass | grep -q ' 198.18.3.9/32' && break; sleep 0.1; done
status=$(bypass)
check_contains "the new address is bypassed" "$status" " 198.18.3.9/32( |$)"
check_not_contains "the old address is no longer bypassed" "$status" " $SL_EGRESS_ADDR/32( |$)"
# The pools take the new address from the same answer, once the bypass holds it (one
# resolver for both: nobody listens there, so their dials fail and say so).
# (A dial there ends when ARP gives up or at the connect timeout, 5 s.)
check "the tunnel pools dial the name's new address" wait_for_log agent "tunnel gateway=198.18.3.9:15443 result=" 15

# The name stops resolving: the last addresses stay (a resolver outage must not let the
# tunnels' addresses fall into the redirect, nor shrink the bypass back and forth).
printf '127.0.0.1 localhost\n' > "$hosts"
check "a failed resolution is logged" wait_for_log agent "gateway name=$NAME result=resolve-failed:.* kept=1"
sleep 1.5  # past another round of asking (every second)
check "the name is asked once per round, not also by each worker's pool" \
  test "$(grep -c 'tunnel gateway=.*resolve-failed' "$SL_RUN_DIR/agent.log")" -eq 0
check_contains "the last address stays bypassed" "$(bypass)" " 198.18.3.9/32( |$)"
check "the rules version did not move" test "$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status |
  sed -n 's/^rules version: //p')" = 1
