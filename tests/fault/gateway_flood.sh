#!/usr/bin/env bash
# The gateway's listener is reachable from every pod (its address is always bypassed).
# From pod-b (not enrolled): 3,000 TCP connections that never handshake, and 300 that
# complete mutual TLS with a second, allowed agent identity and then go silent. The caps
# (pending handshakes per peer address, connections per client identity) reset what is
# over them at once; a real client (curl) through enrolled pod-a keeps succeeding
# throughout. Its p99 connect-to-first-byte with and without the attack is reported, not
# asserted.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
PER_ADDRESS=512
PER_CLIENT=200
other=spiffe://cluster.local/ns/sluice-system/sa/other-agent

# A second agent identity from the mesh CA (another node's agent, say).
pki=$SL_RUN_DIR/pki
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=other-agent" \
  -keyout "$pki/other-agent.key" -out "$pki/other-agent.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:%s\n' \
  "$other" > "$pki/other-agent.ext"
openssl x509 -req -in "$pki/other-agent.csr" -CA "$pki/mesh-ca.pem" -CAkey "$pki/mesh-ca.key" -CAcreateserial \
  -days 2 -extfile "$pki/other-agent.ext" -out "$pki/other-agent.pem" 2>/dev/null
check "a second agent identity was made" test -s "$pki/other-agent.pem"

sl_write_rules native
cat >> "$SL_RUN_DIR/rules.yaml" <<EOF2
    - $other
  maxPendingHandshakesPerAddress: $PER_ADDRESS
  maxConnectionsPerClient: $PER_CLIENT
EOF2
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
check "the gateway raised its open-file limit" wait_for_log gateway "open files: limit [0-9]+"

# samples FILE COUNT: COUNT curls from pod-a, one line each: "<http code> <seconds to first byte>".
samples() {
  sl_pod_exec pod-a bash -c 'for i in $(seq "$1"); do
      curl -sS -o /dev/null -w "%{http_code} %{time_starttransfer}\n" --connect-timeout 3 -m 8 \
        --cacert "$2" --resolve "$3:443:$4" "https://$3/" 2>/dev/null || echo "fail 0"
    done' _ "$2" "$SL_RUN_DIR/pki/public-ca.pem" $SL_ALLOWED_HOST $SL_ALLOWED_ADDR > "$1"
}
p99_ms() { awk '$1==200{print $2*1000}' "$1" | sort -n | awk '{v[NR]=$1} END{i=int(NR*0.99+0.999); if(i<1)i=1; printf "%.1f", v[i]}'; }
ok_count() { grep -c '^200 ' "$1"; }

samples "$SL_RUN_DIR/quiet.txt" 100
check "without the attack: 100 of 100 requests succeed ($(ok_count "$SL_RUN_DIR/quiet.txt"))" \
  test "$(ok_count "$SL_RUN_DIR/quiet.txt")" -eq 100

# The attack, from pod-b straight to the gateway's listener: the idle TLS first (the
# silent ones then fill pod-b's share of pending handshakes, which would refuse them).
flood_start pod-b tlsidle tls $SL_EGRESS_ADDR $SL_GATEWAY_PORT --count 300 --cert "$pki/other-agent.pem" \
  --key "$pki/other-agent.key" --ca "$pki/mesh-ca.pem" --sni $SL_ALLOWED_HOST --alpn h2 --report-s 2
wait_for_log tlsidle "^holding" 60 || not_ok "the 300 TLS connections are open"
flood_start pod-b silent tcp $SL_EGRESS_ADDR $SL_GATEWAY_PORT --count 3000 --settle-s 1 --report-s 2
wait_for_log silent "^holding" 60 || not_ok "the 3,000 silent connections are open"
echo "# silent TCP: $(grep '^opened' "$SL_RUN_DIR/silent.log" | head -1)"
echo "# idle TLS:   $(grep '^opened' "$SL_RUN_DIR/tlsidle.log" | head -1)"
# counted() LOG: reset + failed of the first report (a reset can beat the client's own
# connect or handshake completion, which then counts as failed).
counted() { sed -n 's/.* reset=\([0-9]*\) open=[0-9]* failed=\([0-9]*\).*/\1 \2/p' "$SL_RUN_DIR/$1.log" | head -1 | awk '{print $1+$2}'; }
check_contains "the gateway held $PER_ADDRESS silent connections from pod-b" \
  "$(grep '^opened' "$SL_RUN_DIR/silent.log" | head -1)" " open=$PER_ADDRESS "
check "and reset the other $((3000 - PER_ADDRESS)) at once ($(counted silent))" test "$(counted silent)" -eq $((3000 - PER_ADDRESS))
check_contains "the gateway kept $PER_CLIENT idle TLS connections of the other identity" \
  "$(grep '^opened' "$SL_RUN_DIR/tlsidle.log" | head -1)" " open=$PER_CLIENT "
check "and reset the other $((300 - PER_CLIENT)) ($(counted tlsidle))" test "$(counted tlsidle)" -eq $((300 - PER_CLIENT))

samples "$SL_RUN_DIR/attack.txt" 100
check "during the attack: 100 of 100 requests from pod-a succeed ($(ok_count "$SL_RUN_DIR/attack.txt"))" \
  test "$(ok_count "$SL_RUN_DIR/attack.txt")" -eq 100
echo "# pod-a connect-to-first-byte p99: $(p99_ms "$SL_RUN_DIR/quiet.txt") ms without the attack," \
  "$(p99_ms "$SL_RUN_DIR/attack.txt") ms during it (100 requests each)"

check "the gateway logs refusals over the per-address handshake cap" \
  grep -q "result=handshake-limit-per-address" "$SL_RUN_DIR/gateway.log"
check "the gateway logs refusals over the per-client cap" grep -q "result=client-connection-limit" "$SL_RUN_DIR/gateway.log"
refusals=$(grep -c "result=handshake-limit-per-address" "$SL_RUN_DIR/gateway.log")
echo "# gateway log lines for $((3000 - PER_ADDRESS)) refused handshakes: $refusals (rate-limited)"
check "refusal lines are rate-limited ($refusals lines for $((3000 - PER_ADDRESS)) refusals)" test "$refusals" -lt 500
sl_stop tlsidle
sl_stop silent
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "after the attack: pod-a is served" "$body" "^hello from $SL_ALLOWED_HOST"
