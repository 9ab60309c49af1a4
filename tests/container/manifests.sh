#!/usr/bin/env bash
# deploy/ offline: the Kubernetes manifests parse, match the vendored OpenAPI schema
# (strict) and carry the capabilities, mounts and probes the README promises; the rules
# in the ConfigMap load in each daemon (${NODE_IP} set as the downward API would); the
# systemd units pass `systemd-analyze verify` with the binaries at their ExecStart paths.
source "$(dirname "$0")/../lib/harness.sh"
deploy=$SL_ROOT/deploy
mkdir -p "$SL_RUN_DIR"

out=$(/usr/bin/python3 "$(dirname "$0")/check_manifests.py" "$deploy/kubernetes" "$SL_ROOT/examples/istio/seed-egress.yaml" 2>&1)
echo "$out"
grep -q '^ok - ' <<< "$out" || not_ok "check_manifests.py ran: $out"
grep -q '^not ok - ' <<< "$out" && not_ok "every manifest check passed"
grep '^ok - ' <<< "$out" | while read -r _; do echo ok >> "$sl_results"; done

# Each daemon's rules as its pod loads them: its section file and the seed, with the
# certificate paths of the pod's Secret pointing at a test PKI here.
rules=$SL_RUN_DIR/configmap
/usr/bin/python3 "$(dirname "$0")/pod_to_podman.py" configmap "$deploy/kubernetes/rules-configmap.yaml" sluice-rules "$rules"
bash "$SL_ROOT/scripts/pki.sh" "$SL_RUN_DIR/pki" > /dev/null
mkdir -p "$SL_RUN_DIR/tls"
cp "$SL_RUN_DIR/pki/mesh-ca.pem" "$SL_RUN_DIR/tls/ca.crt"
cp "$SL_RUN_DIR/pki/agent.pem" "$SL_RUN_DIR/tls/tls.crt"
cp "$SL_RUN_DIR/pki/agent.key" "$SL_RUN_DIR/tls/tls.key"
sed -i "s#/etc/sluice/tls/#$SL_RUN_DIR/tls/#" "$rules/agent.yaml" "$rules/gateway.yaml"
for daemon in agent gateway; do
  if out=$(NODE_IP=198.18.0.1 "$SL_BUILD/userspace/sluicectl" validate "$rules/$daemon.yaml" "$rules/seed-egress.yaml" 2>&1); then
    ok "the ConfigMap's $daemon.yaml with seed-egress.yaml loads (NODE_IP set)"
  else
    not_ok "the ConfigMap's $daemon.yaml with seed-egress.yaml loads (NODE_IP set): $out"
  fi
done
out=$(env -u NODE_IP "$SL_BUILD/userspace/sluicectl" validate "$rules/agent.yaml" "$rules/seed-egress.yaml" 2>&1)
check_contains "without NODE_IP the agent's rules are refused, naming the place" "$out" "agent.yaml:[0-9]+:[0-9]+: .*NODE_IP.* not set"

# systemd-analyze verify checks that ExecStart= and ExecReload= binaries exist: verify in a
# root holding the units, systemd's own units and the binaries where the units name them.
root=$SL_RUN_DIR/root
mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/systemd" "$root/bin"
cp -a /lib/systemd/system "$root/usr/lib/systemd/"
cp /bin/kill "$root/bin/"
for bin in sluice-agent sluice-gateway; do cp "$SL_BUILD/userspace/$bin" "$root/usr/local/bin/"; done
cp "$deploy"/systemd/*.service "$root/etc/systemd/system/"
for unit in sluice-agent sluice-gateway; do
  if out=$(systemd-analyze verify --root="$root" "$root/etc/systemd/system/$unit.service" 2>&1) && [ -z "$out" ]; then
    ok "$unit.service passes systemd-analyze verify with no warning"
  else
    not_ok "$unit.service passes systemd-analyze verify with no warning: $out"
  fi
done
agent_caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$deploy/systemd/sluice-agent.service")
ds_caps=$(/usr/bin/python3 -c 'import sys, yaml
d = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x][0]
print(" ".join("CAP_" + c for c in d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]))' \
  "$deploy/kubernetes/agent-daemonset.yaml")
check "the agent unit has the DaemonSet's capability set ($ds_caps)" test "$agent_caps" = "$ds_caps"
check_contains "the gateway unit runs as user sluice with only CAP_NET_RAW" \
  "$(grep -E '^(User|CapabilityBoundingSet|AmbientCapabilities)=' "$deploy/systemd/sluice-gateway.service" | tr '\n' ' ')" \
  "^User=sluice CapabilityBoundingSet=CAP_NET_RAW AmbientCapabilities=CAP_NET_RAW $"
for unit in sluice-agent sluice-gateway; do
  check_contains "$unit.service reloads with SIGHUP and restarts on failure" "$(cat "$deploy/systemd/$unit.service")" \
    'ExecReload=/bin/kill -HUP \$MAINPID'
done
