#!/usr/bin/env bash
# Enrolling the egress node's own cgroups cannot loop. A second agent runs on the egress
# node (its own namespace, pin directory and rules) and enrolls the cgroup the gateway
# runs in, as a kubepods-wide enrolment would. The gateway marks its upstream sockets;
# that agent trusts its own (the egress node's) namespace, so the gateway's dial to the
# origin is not redirected. With a mark the egress agent does not trust, the same dial
# is redirected and fails (the egress agent's gateway is unreachable by design, so a
# wrong guard shows as a failure, never as a loop).
source "$(dirname "$0")/../lib/harness.sh"
harness_start
egress_pins=$SL_PIN_DIR-egress
on_exit() {
  local code=$?
  [ -d "$egress_pins" ] && "$SL_BUILD/userspace/sluicectl" --pin-dir "$egress_pins" uninstall > /dev/null
  (exit $code)
  sl_harness_exit
}
trap on_exit EXIT

# write_egress_rules MARK: the egress agent's own file, as its node's ConfigMap would be.
write_egress_rules() {
  cat > "$SL_RUN_DIR/egress-agent.yaml" <<YAML
hosts:
  - name: $SL_ALLOWED_HOST
agent:
  listen: $SL_EGRESS_ADDR:$SL_AGENT_PORT
  socketMark: $1
  bypassCidrs: [198.18.3.0/24]
  cgroups: [sluice-$SL_PREFIX/host-egress]
  tls: {ca: $SL_RUN_DIR/pki/mesh-ca.pem, cert: $SL_RUN_DIR/pki/agent.pem, key: $SL_RUN_DIR/pki/agent.key}
  gateway:
    address: 127.0.0.1:9
    identity: spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account
    connectTimeoutMs: 1000
YAML
}
write_egress_rules 0x1051
# Its own admin port: the gateway has 127.0.0.1:15020 in this namespace.
sl_spawn egress-agent egress "$SL_BUILD/userspace/sluice-agent" --config "$SL_RUN_DIR/egress-agent.yaml" \
  --pin-dir "$egress_pins" --admin-address 127.0.0.1:15021
sl_wait_listen egress $SL_AGENT_PORT
check "the egress agent enrolled the gateway's cgroup" wait_for_log egress-agent "host-egress id=[0-9]+ enabled"
egress_counter() { kernel_counter "$1" "$egress_pins"; }

own=$(egress_counter agent_socket)
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "the seed request works with the gateway's cgroup enrolled" "$body" "^hello from $SL_ALLOWED_HOST"
check "the gateway's marked dial was exempt in its own node's namespace" \
  test "$(egress_counter agent_socket)" -gt "$own"
check_not_contains "the egress agent never took the gateway's dial" "$(log_of egress-agent)" "src=$SL_EGRESS_INET_ADDR|flow|deny"

# The egress agent now trusts another mark: the gateway's sockets are like any other.
write_egress_rules 0x2051
check "the egress agent took the new mark" wait_for_log egress-agent "rules reloaded .*version=2"
redirected=$(egress_counter redirected)
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_not_contains "control: with an untrusted mark the request fails" "$out" "^hello from"
check "control: the gateway's dial was redirected to the egress agent" \
  test "$(egress_counter redirected)" -gt "$redirected"
check "control: the egress agent took it (and could not loop it back)" wait_for_log egress-agent \
  "sni=$SL_ALLOWED_HOST .*result=(gateway-|no-gateway-available)"
