#!/usr/bin/env bash
# Fair shares at the agent: pod-a opens connections up to its per-pod cap and holds them
# silent; its next connection is reset at once (counted, logged as pod-connection-limit),
# while pod-b, enrolled too, is served normally; when pod-a's connections end, pod-a is
# served again.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
CAP=50
sl_write_rules native
# pod-b enrolled too; the cap per pod, and a hello timeout longer than the test.
sed -i "s#^    - sluice-$SL_PREFIX/pod-a\$#&\n    - sluice-$SL_PREFIX/pod-b#" "$SL_RUN_DIR/rules.yaml"
sed -i "s#^  clientHelloTimeoutMs: 5000#  clientHelloTimeoutMs: 60000\n  maxConnectionsPerPod: $CAP#" "$SL_RUN_DIR/rules.yaml"
check "the rules enroll pod-b and cap pods at $CAP" grep -q "maxConnectionsPerPod: $CAP" "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
check "the agent logs its caps" wait_for_log agent "connection caps: total=[0-9]+ per_pod=$CAP"

body=$(pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "pod-b is enrolled and served" "$body" "^hello from $SL_ALLOWED_HOST"

# pod-a: CAP silent connections, held by the agent (waiting for a ClientHello).
flood_start pod-a flood tcp $SL_ALLOWED_ADDR 443 --count $CAP
wait_for_log flood "^holding" 20 || not_ok "the flood holds its connections"
check_contains "pod-a holds $CAP connections, none reset" "$(log_of flood)" "opened=$CAP reset=0 open=$CAP"
held() { sl_host_exec node ss -Htn state established "( sport = :$SL_AGENT_PORT )" | grep -c "$SL_POD_A_ADDR"; }
check "the agent holds pod-a's $CAP connections ($(held))" test "$(held)" -eq $CAP

# pod-a's next connection: reset at once.
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000 --send x --read)
port=$(probe_local_port "$out")
echo "# over the cap: $(tr '\n' ' ' <<< "$out")"
check_contains "pod-a over its cap: the connection is reset" "$out" "ECONNRESET|read=eof"
check "pod-a over its cap: the agent logs pod-connection-limit" wait_for_log agent \
  "deny cgroup=[0-9]+ pod=- src=$SL_POD_A_ADDR:${port:-[0-9]+} dst=$SL_ALLOWED_ADDR:443 sni=- reason=pod-connection-limit"
start=$(date +%s%N)
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
ms=$((($(date +%s%N) - start) / 1000000))
check_contains "pod-a over its cap: curl is refused (reset, also during its connect)" "$out" "reset by peer|SSL_ERROR_SYSCALL|Connection reset|Failed to connect .* after [0-9]+ ms"
check "pod-a over its cap: refused at once, not after a timeout (${ms} ms)" test $ms -lt 1000

# pod-b meanwhile: served normally, several times.
ok_b=0
for _ in $(seq 5); do
  pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>/dev/null | grep -q "^hello from" && ok_b=$((ok_b + 1))
done
check "pod-b is served while pod-a is at its cap (5 of 5: $ok_b)" test $ok_b -eq 5
check_contains "pod-a's held connections were never reset" "$(tail -n 2 "$SL_RUN_DIR/flood.log")" "reset=0"

# pod-a's connections end: pod-a is served again.
sl_stop flood
for _ in $(seq 50); do [ "$(held)" -eq 0 ] && break; sleep 0.1; done
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "pod-a under its cap again: served" "$body" "^hello from $SL_ALLOWED_HOST"
