#!/usr/bin/env bash
# Two gateways, one reached over IPv6: streams spread over both; one gateway killed while
# new connections keep coming fails none of those that had not yet received a byte (the
# agent retries them on the other gateway; those that had are counted); the killed
# gateway restarted is used again.
source "$(dirname "$0")/../lib/harness.sh"
here=$(cd "$(dirname "$0")" && pwd)
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
# Gateway B: a second address on the egress node, reached over IPv6 (scripts/lib/topology.sh).
sl_second_gateway "[$SL_GATEWAY_B_ADDR6]:15443" || { not_ok "gateway B starts"; exit 1; }
check "the agent lists two gateways, the second by its IPv6 address" \
  grep -q 'addresses: \["198.18.3.2:15443", "\[2001:db8:3::2\]:15443"\]' "$SL_RUN_DIR/rules.yaml"
check "gateway B listens on 198.18.3.3 and 2001:db8:3::2" grep -q "listen6: 2001:db8:3::2" "$SL_RUN_DIR/rules-b.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
for _ in $(seq 50); do [ "$(sl_host_exec egress ss -Hltn 'sport = :15443' | grep -c .)" -ge 3 ] && break; sleep 0.1; done

app_tls() {
  sl_pod_exec pod-a env APP_TIMEOUT=5 CA="$SL_RUN_DIR/pki/public-ca.pem" python3 "$here/tunnel/app.py" \
    $SL_ALLOWED_ADDR $SL_ALLOWED_HOST tls 2>&1
}
count_ok() { grep -c "access .*sni=$SL_ALLOWED_HOST .*result=ok" "$SL_RUN_DIR/$1.log"; }

for _ in $(seq 20); do app_tls; done > "$SL_RUN_DIR/warmup.txt"
check "20 connections through two gateways all succeed" test "$(grep -c '^ok ' "$SL_RUN_DIR/warmup.txt")" -eq 20
check "gateway A carried some ($(count_ok gateway))" test "$(count_ok gateway)" -ge 3
check "gateway B carried some ($(count_ok gateway-b))" test "$(count_ok gateway-b)" -ge 3
check "gateway B's tunnel came over IPv6" grep -qE "access peer=\[2001:db8:3::1\]:[0-9]+ .*result=ok" \
  "$SL_RUN_DIR/gateway-b.log"

# New connections from four clients in a loop; gateway A killed (SIGKILL) in the middle.
# Each client appends to its own file: appends from several to one file can interleave
# two results on one line.
storm() { while [ ! -e "$SL_RUN_DIR/stop-storm" ]; do app_tls >> "$SL_RUN_DIR/storm.$1.txt"; done; }
finished() { cat "$SL_RUN_DIR"/storm.*.txt 2> /dev/null | grep -c .; }
pids=()
for i in 1 2 3 4; do
  : > "$SL_RUN_DIR/storm.$i.txt"
  storm $i &
  pids+=($!)
done
# Until some connections finished before the kill (not a fixed time: Python clients start
# slowly on a busy 2-core machine); at most 15 s.
for _ in $(seq 150); do [ "$(finished)" -ge 4 ] && break; sleep 0.1; done
gw=$(awk '$2=="gateway"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
before=$(finished)
kill -KILL "$gw"
sed -i "/^$gw gateway$/d" "$SL_RUN_DIR/pids"
# At least 4 s of storm after the kill, and until 10 more connections finished (at most 20 s).
sleep 4
for _ in $(seq 160); do [ $(($(finished) - before)) -ge 10 ] && break; sleep 0.1; done
touch "$SL_RUN_DIR/stop-storm"
wait "${pids[@]}"
results=$SL_RUN_DIR/storm.txt
cat "$SL_RUN_DIR"/storm.[1-4].txt > "$results"
total=$(grep -c . "$results")
ok=$(grep -c '^ok ' "$results")
failed_before_byte=$(grep -c '^failed recv=0 ' "$results")
failed_after_bytes=$(grep -cE '^failed recv=[1-9]' "$results")
echo "# storm: $total connections ($before before the kill), $ok ok, $failed_before_byte failed before any byte," \
  "$failed_after_bytes failed after receiving bytes"
check "connections ran on both sides of the kill ($before before, $total in all)" \
  test "$before" -ge 4 -a $((total - before)) -ge 10
check "no connection failed before receiving a byte ($(grep '^failed recv=0 ' "$results" | head -2))" \
  test "$failed_before_byte" -eq 0
check "every connection is accounted for" test $((ok + failed_before_byte + failed_after_bytes)) -eq "$total"
check "the agent logged gateway A's tunnel lost" wait_for_log agent "tunnel gateway=198.18.3.2:15443 result=lost:"
retried=$(grep -cE "flow .*retries=[1-9].*result=ok" "$SL_RUN_DIR/agent.log")
echo "# flows retried on the other gateway and then ok: $retried"

# Gateway A again: the pool reconnects (backoff with jitter) and uses it.
mv "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-1.log"
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
check "the agent reconnects to the restarted gateway" wait_for_log agent \
  "tunnel gateway=198.18.3.2:15443 result=recovered" 15
for _ in $(seq 20); do app_tls; done > "$SL_RUN_DIR/after.txt"
check "20 connections after the restart all succeed" test "$(grep -c '^ok ' "$SL_RUN_DIR/after.txt")" -eq 20
check "the restarted gateway carries streams again ($(count_ok gateway))" test "$(count_ok gateway)" -ge 3
