#!/usr/bin/env bash
# Certificates rotate without a restart and without dropping a flow. The agent's and the
# gateway's mesh certificates are issued for LIFETIME seconds; while one TLS stream stays
# open and new connections keep coming, they are replaced before they expire: the
# gateway's the Kubernetes Secret way (a new directory, `..data` renamed over), the
# agent's in place, key first and its certificate a moment later (a pair that does not
# match yet, refused and then taken). Nothing may fail across the old certificates'
# expiry, and both daemons must present the new serials. Then: a mesh certificate with
# two URI SANs is refused by both daemons, as their own at start and reload and as a peer's.
source "$(dirname "$0")/../lib/harness.sh"
# A write to the stream after it ended must fail the check, not kill the script.
trap "" PIPE
LIFETIME=${SL_CERT_LIFETIME:-90}
sl_topology_up || { not_ok "topology up"; exit 1; }
pki=$SL_RUN_DIR/pki
agent_id=spiffe://cluster.local/ns/sluice-system/sa/sluice-agent
gateway_id=spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account

# A mesh CA with `openssl ca`, which takes explicit notBefore/notAfter times.
ca=$SL_RUN_DIR/ca
mkdir -p "$ca/issued" "$ca/out"
: > "$ca/index.txt"
cat > "$ca/ca.cnf" <<CNF
[ca]
default_ca = mesh
[mesh]
database = $ca/index.txt
new_certs_dir = $ca/issued
certificate = $pki/mesh-ca.pem
private_key = $pki/mesh-ca.key
rand_serial = yes
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
organizationName = optional
CNF
utc() { date -u -d "@$1" +%y%m%d%H%M%SZ; }
# issue NAME CN SANS EKU NOT_AFTER_EPOCH: $ca/out/NAME.{pem,key}, valid from 10 s ago.
issue() {
  local out=$ca/out/$1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=sluice test mesh/CN=$2" \
    -keyout "$out.key" -out "$out.csr" 2> /dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$4" "$3" > "$out.ext"
  openssl ca -batch -config "$ca/ca.cnf" -in "$out.csr" -out "$out.pem" -notext -extfile "$out.ext" \
    -startdate "$(utc $(($(date +%s) - 10)))" -enddate "$(utc "$5")" > "$out.issue.log" 2>&1 ||
    { cat "$out.issue.log"; return 1; }
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }

t0=$(date +%s)
expiry=$((t0 + LIFETIME))
issue agent-v1 sluice-agent "URI:$agent_id" clientAuth $expiry
issue gateway-v1 sluice-gateway "URI:$gateway_id" serverAuth $expiry
agent_old=$(serial_of "$ca/out/agent-v1.pem")
gateway_old=$(serial_of "$ca/out/gateway-v1.pem")

# The agent's files, plain, written in place later.
ag=$SL_RUN_DIR/agent-tls
mkdir -p "$ag"
cp "$ca/out/agent-v1.pem" "$ag/agent.pem"
cp "$ca/out/agent-v1.key" "$ag/agent.key"
# The gateway's, as a Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..v1.
gw=$SL_RUN_DIR/gateway-secret
publish_gateway() { # VERSION NAME: the kubelet's atomic update
  mkdir -p "$gw/..$1"
  cp "$ca/out/$2.pem" "$gw/..$1/tls.crt"
  cp "$ca/out/$2.key" "$gw/..$1/tls.key"
  cp "$pki/mesh-ca.pem" "$gw/..$1/ca.crt"
  ln -sfn "..$1" "$gw/..data_tmp"
  mv -T "$gw/..data_tmp" "$gw/..data"
}
mkdir -p "$gw"
publish_gateway v1 gateway-v1
for f in tls.crt tls.key ca.crt; do ln -s "..data/$f" "$gw/$f"; done

sl_write_rules native
sed -i -e "s#pki/agent.pem#$ag/agent.pem#; s#pki/agent.key#$ag/agent.key#" \
  -e "s#pki/gateway.pem#$gw/tls.crt#; s#pki/gateway.key#$gw/tls.key#" "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }

check "the agent logs its certificate's URI, serial and expiry (UTC)" wait_for_log agent \
  "certificate loaded file=$ag/agent.pem uri=$agent_id serial=$agent_old not_before=[0-9T:-]+Z not_after=$(date -u -d @$expiry +%Y-%m-%dT%H:%M:%SZ)"
check "the gateway logs its certificate's URI, serial and expiry (UTC)" wait_for_log gateway \
  "certificate loaded file=$gw/tls.crt uri=$gateway_id serial=$gateway_old .*not_after=$(date -u -d @$expiry +%Y-%m-%dT%H:%M:%SZ)"

# One long-lived stream: a TLS session to the origin through agent and gateway, asked
# for a page every 5 s on the same connection (HTTP keep-alive).
open_stream stream
stream_requests=0
stream_get() {
  printf 'GET / HTTP/1.1\r\nHost: %s\r\n\r\n' $SL_ALLOWED_HOST >&3
  stream_requests=$((stream_requests + 1))
}
stream_get
# New connections at a bounded rate (one every 0.5 s), each result with its time.
loop_log=$SL_RUN_DIR/connections.txt
(
  while [ ! -e "$SL_RUN_DIR/stop-loop" ]; do
    if out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1) && [[ $out == "hello from "* ]]; then
      echo "$(date +%s) ok" >> "$loop_log"
    else
      echo "$(date +%s) FAILED ${out//$'\n'/ }" >> "$loop_log"
    fi
    sleep 0.5
  done
) &
loop_pid=$!
echo "$loop_pid connection-loop" >> "$SL_RUN_DIR/pids"
# stream_until EPOCH: keeps the stream busy until then.
stream_until() {
  while [ "$(date +%s)" -lt "$1" ]; do
    stream_get
    sleep 5
  done
}

# Close to expiry (the last third of the lifetime) both daemons warn.
window=$(((LIFETIME + 10) / 3))
stream_until $((expiry - window))
check "the agent warns that its certificate is close to expiry" wait_for_log agent \
  "certificate close to expiry file=$ag/agent.pem uri=$agent_id serial=$agent_old .*expires_in_s=" 10
check "the gateway warns too" wait_for_log gateway "certificate close to expiry file=$gw/tls.crt .*serial=$gateway_old" 10

# Rotation, well before the old certificates expire.
issue agent-v2 sluice-agent "URI:$agent_id" clientAuth $((t0 + 3600))
issue gateway-v2 sluice-gateway "URI:$gateway_id" serverAuth $((t0 + 3600))
agent_new=$(serial_of "$ca/out/agent-v2.pem")
gateway_new=$(serial_of "$ca/out/gateway-v2.pem")
publish_gateway v2 gateway-v2
cat "$ca/out/agent-v2.key" > "$ag/agent.key"
check "the agent refuses the new key while its certificate is still the old one" wait_for_log agent \
  "certificate rejected \(file changed\) rejected_total=1; keeping serial=$agent_old .*private key $ag/agent.key does not match $ag/agent.pem"
cat "$ca/out/agent-v2.pem" > "$ag/agent.pem"
check "the agent takes the pair once both are written" wait_for_log agent \
  "certificate reloaded \(file changed\) reloads_total=1 previous_serial=$agent_old file=$ag/agent.pem uri=$agent_id serial=$agent_new"
check "the gateway takes the Secret swap" wait_for_log gateway \
  "certificate reloaded \(file changed\) reloads_total=1 previous_serial=$gateway_old file=$gw/tls.crt uri=$gateway_id serial=$gateway_new"

# Keep going until after the old certificates' notAfter.
stream_until $((expiry + 6))
now=$(date +%s)
check "the run went past the old certificates' expiry" test "$now" -gt "$expiry"
touch "$SL_RUN_DIR/stop-loop"
wait "$loop_pid"
attempts=$(grep -c . "$loop_log")
failed=$(grep -c FAILED "$loop_log")
after=$(awk -v e="$expiry" '$1 > e && $2 == "ok"' "$loop_log" | grep -c .)
echo "# connections: $attempts attempts, $failed failed, $after succeeded after the old expiry"
check "many new connections were made across the rotation (got $attempts)" test "$attempts" -ge 40
check "no new connection failed (failures: $(grep FAILED "$loop_log" | head -3))" test "$failed" -eq 0
check "new connections succeeded after the old certificates expired" test "$after" -ge 3

# The last tunnels (all opened after the rotation; the stream's is logged when it ends):
# a session resumed from the old context would still carry the old certificate.
recent=$(grep -E "access .*sni=$SL_ALLOWED_HOST .*result=ok" "$SL_RUN_DIR/gateway.log" | tail -5)
check_contains "the agent presents its new certificate to the gateway" "$recent" "peer_serial=$agent_new( |$)"
check_not_contains "no recent tunnel resumed a session of the old certificate" "$recent" "peer_serial=$agent_old( |$)"

# The stream opened under the old certificates: one last request, then every answer counted.
printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' $SL_ALLOWED_HOST >&3
exec 3>&-
stream_requests=$((stream_requests + 1))
answers=0
for _ in $(seq 50); do
  answers=$(grep -c "hello from $SL_ALLOWED_HOST" "$SL_RUN_DIR/stream.log")
  [ "$answers" -ge "$stream_requests" ] && break
  sleep 0.1
done
check "the stream opened before the rotation answered all $stream_requests requests, the last after the old expiry (got $answers)" \
  test "$answers" -eq "$stream_requests"
stream_tunnel() { # the stream's access line: the old agent certificate, over a minute long
  grep -E "access .*result=ok peer_serial=$agent_old( |$)" "$SL_RUN_DIR/gateway.log" |
    sed -E 's/.* duration_ms=([0-9]+) .*/\1/' | awk '$1 > 60000 {found=1} END {exit !found}'
}
for _ in $(seq 50); do stream_tunnel && break; sleep 0.1; done
check "its tunnel, opened with the old certificates, ran to its end (gateway log)" stream_tunnel

# What each daemon presents now.
served=$(echo | sl_host_exec node timeout 10 openssl s_client -connect $SL_EGRESS_ADDR:$SL_GATEWAY_PORT \
  -servername $SL_ALLOWED_HOST -alpn h2 -CAfile "$pki/mesh-ca.pem" \
  -cert "$ca/out/agent-v2.pem" -key "$ca/out/agent-v2.key" -showcerts 2> /dev/null | openssl x509 -noout -serial)
check_contains "the gateway serves the new certificate" "$served" "^serial=$gateway_new\$"
check_not_contains "no flow failed at the agent" "$(log_of agent)" "result=gateway-"

# A reload to an own certificate with two URI SANs: refused, the new one stays.
issue agent-two-uris sluice-agent "URI:$agent_id,URI:spiffe://cluster.local/ns/other/sa/admin" clientAuth $((t0 + 3600))
cat "$ca/out/agent-two-uris.key" > "$ag/agent.key"
cat "$ca/out/agent-two-uris.pem" > "$ag/agent.pem"
check "an own certificate with two URI SANs is refused at reload" wait_for_log agent \
  "certificate rejected \(file changed\) rejected_total=[0-9]+; keeping serial=$agent_new .*$ag/agent.pem refused: it has 2 URI SANs"
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "and the agent keeps working with the certificate it had" "$body" "^hello from $SL_ALLOWED_HOST"

# The gateway refuses a peer with two URI SANs (openssl s_client plays the agent).
echo | sl_host_exec node timeout 10 openssl s_client -connect $SL_EGRESS_ADDR:$SL_GATEWAY_PORT \
  -servername $SL_ALLOWED_HOST -alpn h2 -CAfile "$pki/mesh-ca.pem" \
  -cert "$ca/out/agent-two-uris.pem" -key "$ca/out/agent-two-uris.key" > "$SL_RUN_DIR/two-uris-client.txt" 2>&1
check "the gateway refuses a client certificate with two URI SANs" wait_for_log gateway \
  "identity=- sni=- .*result=handshake-failed detail=.*peer certificate has 2 URI SANs; exactly one"

# Own certificate with two URI SANs at start: each daemon exits with the reason, the
# agent before it touches the kernel.
issue gateway-two-uris sluice-gateway "URI:$gateway_id,URI:spiffe://cluster.local/ns/other/sa/admin" serverAuth \
  $((t0 + 3600))
sed -e "s#$ag/agent.pem#$ca/out/agent-two-uris.pem#; s#$ag/agent.key#$ca/out/agent-two-uris.key#" \
  -e "s#$gw/tls.crt#$ca/out/gateway-two-uris.pem#; s#$gw/tls.key#$ca/out/gateway-two-uris.key#" \
  -e "s#$SL_GATEWAY_PORT#15444#" "$SL_RUN_DIR/rules.yaml" > "$SL_RUN_DIR/two-uris.yaml"
out=$(sl_host_exec egress timeout 10 "$SL_BUILD/userspace/sluice-gateway" --config "$SL_RUN_DIR/two-uris.yaml" 2>&1)
code=$?
check "the gateway does not start with its own certificate carrying two URI SANs (exit $code)" test "$code" -eq 1
check_contains "and says why" "$out" "critical sluice-gateway: certificate $ca/out/gateway-two-uris.pem refused: it has 2 URI SANs"
out=$(sl_host_exec node timeout 10 "$SL_BUILD/userspace/sluice-agent" --config "$SL_RUN_DIR/two-uris.yaml" \
  --pin-dir "$SL_PIN_DIR-two-uris" 2>&1)
code=$?
check "the agent does not start either (exit $code)" test "$code" -eq 1
check_contains "and says why" "$out" "critical sluice-agent: certificate $ca/out/agent-two-uris.pem refused: it has 2 URI SANs"
check "the agent failed before pinning anything" test ! -e "$SL_PIN_DIR-two-uris"

# The agent refuses a gateway whose certificate has two URI SANs: an openssl s_server
# with that certificate takes the gateway's place.
sl_stop gateway
sl_spawn fake-gateway egress openssl s_server -accept $SL_EGRESS_ADDR:$SL_GATEWAY_PORT -naccept 5 \
  -cert "$ca/out/gateway-two-uris.pem" -key "$ca/out/gateway-two-uris.key" -CAfile "$pki/mesh-ca.pem" -Verify 1 -quiet
sl_wait_listen egress $SL_GATEWAY_PORT
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_not_contains "no answer through a gateway with two URI SANs" "$out" "hello from"
check "the agent refuses the gateway's certificate with two URI SANs" wait_for_log agent \
  "tunnel gateway=$SL_EGRESS_ADDR:$SL_GATEWAY_PORT result=gateway-handshake:.*peer certificate has 2 URI SANs; exactly one"
