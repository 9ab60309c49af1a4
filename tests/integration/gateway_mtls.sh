#!/usr/bin/env bash
# The gateway requires a client certificate from the mesh CA, and checks the host itself.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
pki=$SL_RUN_DIR/pki

# s_client from the node, as the agent would connect: SNI = host, ALPN = port.
gateway_client() { # SNI [openssl args...]
  local sni=$1
  shift
  echo | sl_host_exec node timeout 10 openssl s_client -connect $SL_EGRESS_ADDR:$SL_GATEWAY_PORT \
    -servername "$sni" -alpn sluice/port=443 -CAfile "$pki/mesh-ca.pem" "$@" 2>&1
}

out=$(gateway_client $SL_ALLOWED_HOST -cert "$pki/agent.pem" -key "$pki/agent.key" -verify_return_error)
check_contains "with the agent's mesh certificate the handshake succeeds" "$out" "^Verification: OK"
check "the gateway accepted the agent's identity for the allowed host" wait_for_log gateway \
  "identity=spiffe://cluster.local/ns/sluice-system/sa/sluice-agent sni=$SL_ALLOWED_HOST port=443 upstream=$SL_ALLOWED_ADDR:443"

gateway_client $SL_ALLOWED_HOST -cert "$pki/rogue-agent.pem" -key "$pki/rogue-agent.key" > /dev/null
check "a client certificate from another CA is refused" wait_for_log gateway \
  "identity=- sni=- .*result=handshake-failed detail=.*certificate verify failed"

gateway_client $SL_ALLOWED_HOST > /dev/null
check "no client certificate is refused" wait_for_log gateway \
  "result=handshake-failed detail=.*peer did not return a certificate"

gateway_client $SL_DENIED_HOST -cert "$pki/agent.pem" -key "$pki/agent.key" > /dev/null
check "the gateway refuses a host the rules do not allow, even from a valid agent" wait_for_log gateway \
  "sni=$SL_DENIED_HOST port=443 upstream=- .*result=host-not-allowed"
check_not_contains "the gateway never connected upstream for a refused client" \
  "$(grep -E 'upstream=198' "$SL_RUN_DIR/gateway.log" | grep -v 'identity=spiffe')" "."
