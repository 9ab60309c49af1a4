#!/usr/bin/env bash
# The seed scenario, allowed path: curl in an enabled pod reaches www.googleapis.com
# through the agent and the gateway, verified end to end against the public CA.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "curl from pod-a gets the origin's answer" "$body" "^hello from $SL_ALLOWED_HOST"
check_contains "the origin saw the egress node's address" "$body" "you came from $SL_EGRESS_INET_ADDR\$"
check "origin access log shows the egress node and the SNI" \
  grep -q "^$SL_EGRESS_INET_ADDR $SL_ALLOWED_HOST \"GET / HTTP/1.1\" 200" "$SL_RUN_DIR/origin-access.log"

# The app's TLS session is with the origin itself: its certificate (signed by the public
# CA, key only on the origin) is what the app sees, not anything of the mesh.
s_client() { echo | sl_pod_exec pod-a timeout 10 openssl s_client -connect $SL_ALLOWED_ADDR:443 \
  -servername $SL_ALLOWED_HOST -showcerts "$@" 2>&1; }
out=$(s_client -CAfile "$SL_RUN_DIR/pki/public-ca.pem" -verify_return_error)
check_contains "openssl s_client verifies the origin against the public CA" "$out" "^Verification: OK"
seen=$(sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' <<< "$out" | openssl x509 -noout -fingerprint -sha256)
want=$(openssl x509 -noout -fingerprint -sha256 -in "$SL_RUN_DIR/pki/origin-$SL_ALLOWED_HOST.pem")
check "the certificate the app sees is the origin's own" test "$seen" = "$want"
out=$(s_client -CAfile "$SL_RUN_DIR/pki/mesh-ca.pem" -verify_return_error)
check_contains "the mesh CA does not verify it (the app never sees mesh certificates)" "$out" \
  "certificate verify failed"

check "the gateway logged the access with the agent's identity" wait_for_log gateway \
  "access peer=198.18.3.1:[0-9]+ identity=spiffe://cluster.local/ns/sluice-system/sa/sluice-agent sni=$SL_ALLOWED_HOST port=443 upstream=$SL_ALLOWED_ADDR:443 up=[1-9][0-9]* down=[1-9][0-9]* duration_ms=[0-9]+ result=ok"
cg=$(stat -c %i "$(sl_cgroup_root)/pod-a")
check "the agent logged the flow with pod-a's cgroup and the original destination" wait_for_log agent \
  "flow cgroup=$cg pod=- src=$SL_POD_A_ADDR:[0-9]+ dst=$SL_ALLOWED_ADDR:443 sni=$SL_ALLOWED_HOST rule=$SL_ALLOWED_HOST .*result=ok"
check_contains "the gateway holds no origin key" "$(ls "$SL_RUN_DIR/pki" | grep -c '^gateway')" "^2$"
if [ "${SL_RULES_VARIANT:-native}" = istio ]; then
  check "the gateway loaded the Istio resources verbatim (it names their inert cert paths)" \
    grep -q "seed-egress.yaml:30:26: 'serverCertificate' has no effect" "$SL_RUN_DIR/gateway.log"
  check "the seed file is byte for byte the committed copy" cmp -s "$SL_RUN_DIR/seed-egress.yaml" \
    "$SL_ROOT/examples/istio/seed-egress.yaml"
fi
# Flows ride the pooled tunnel: several accesses arrive over one agent connection (one
# peer port), and the agent's connection id is the same on both sides.
shared_peer() {
  grep -E "access .*sni=$SL_ALLOWED_HOST .*result=ok" "$SL_RUN_DIR/gateway.log" | grep -oE 'peer=[^ ]+' | sort |
    uniq -c | awk '$1 >= 2 {found=1} END {exit !found}'
}
check "two flows were carried by one tunnel connection" shared_peer
id=$(grep -E "flow .*sni=$SL_ALLOWED_HOST .*result=ok" "$SL_RUN_DIR/agent.log" | head -1 | grep -oE 'connection_id=[0-9a-f]{16}')
check "the agent logs a 16-hex connection id per flow" test -n "$id"
check "the gateway logs the same connection id" grep -qE "access .*$id( |\$)" "$SL_RUN_DIR/gateway.log"
check_not_contains "every relayed access at the gateway carries the agent's identity" \
  "$(grep 'result=ok' "$SL_RUN_DIR/gateway.log")" "identity=- "
