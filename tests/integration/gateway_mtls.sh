#!/usr/bin/env bash
# The gateway requires a client certificate from the mesh CA, and checks the host itself.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
pki=$SL_RUN_DIR/pki

# s_client from the node, as the agent would connect: ALPN h2 (the tunnel).
gateway_client() { # SNI [openssl args...]
  local sni=$1
  shift
  echo | sl_host_exec node timeout 10 openssl s_client -connect $SL_EGRESS_ADDR:$SL_GATEWAY_PORT \
    -servername "$sni" -alpn h2 -CAfile "$pki/mesh-ca.pem" "$@" 2>&1
}

# The agent's side of the tunnel by hand: one CONNECT stream per request.
tunnel_client() { # AUTHORITY
  sl_host_exec node timeout 20 "$SL_TUNNEL_CLIENT" --gateway $SL_EGRESS_ADDR:$SL_GATEWAY_PORT --ca "$pki/mesh-ca.pem" \
    --cert "$pki/agent.pem" --key "$pki/agent.key" --authority "$1" --connection-id 00000000000000aa --stdin no 2>&1
}

out=$(gateway_client $SL_ALLOWED_HOST -cert "$pki/agent.pem" -key "$pki/agent.key" -verify_return_error)
check_contains "with the agent's mesh certificate the handshake succeeds" "$out" "^Verification: OK"
check_contains "the gateway selects ALPN h2" "$out" "^ALPN protocol: h2"
out=$(tunnel_client $SL_ALLOWED_HOST:443)
check_contains "a CONNECT for the allowed host is answered 200 once the origin is connected" "$out" "^status=200 result=-"
check "the gateway accepted the agent's identity for the allowed host" wait_for_log gateway \
  "identity=spiffe://cluster.local/ns/sluice-system/sa/sluice-agent sni=$SL_ALLOWED_HOST port=443 upstream=$SL_ALLOWED_ADDR:443 .*connection_id=00000000000000aa( |\$)"

gateway_client $SL_ALLOWED_HOST -cert "$pki/rogue-agent.pem" -key "$pki/rogue-agent.key" > /dev/null
check "a client certificate from another CA is refused" wait_for_log gateway \
  "identity=- sni=- .*result=handshake-failed detail=.*certificate verify failed"

gateway_client $SL_ALLOWED_HOST > /dev/null
check "no client certificate is refused" wait_for_log gateway \
  "result=handshake-failed detail=.*peer did not return a certificate"

out=$(tunnel_client $SL_DENIED_HOST:443)
check_contains "the refusal travels back as a status and a reason" "$out" "^status=403 result=host-not-allowed"
check "the gateway refuses a host the rules do not allow, even from a valid agent" wait_for_log gateway \
  "sni=$SL_DENIED_HOST port=443 upstream=- .*result=host-not-allowed"
out=$(tunnel_client $SL_ALLOWED_HOST:8443)
check_contains "an allowed host on a port the rules do not name is refused" "$out" "^status=403 result=host-not-allowed"
out=$(tunnel_client 198.18.100.10:443)
check_contains "an address as :authority is refused (the gateway dials names only)" "$out" "^status=403|^status=400"
check_not_contains "the gateway never connected upstream for a refused client" \
  "$(grep -E 'upstream=198' "$SL_RUN_DIR/gateway.log" | grep -v 'identity=spiffe')" "."
