#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine, installs, builds, brings up
# the netns topology, runs the seed scenario (Istio's egress task) and tears it down.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: run as root (sudo): it attaches BPF programs and makes namespaces" >&2
  exit 1
fi
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"

export SL_PREFIX=${SL_PREFIX:-sldemo}
export SL_RUN_DIR=/tmp/sluice-demo-$SL_PREFIX
export SL_PIN_DIR=${SL_PIN_DIR:-/sys/fs/bpf/sluice}
source "$root/scripts/lib/topology.sh"
trap sl_topology_down EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "topology: pod-a (enabled), pod-b, node (agent), egress (gateway), inet (origins, DNS)"
sl_topology_up
# The rules are the Istio task's four resources, byte for byte, plus the node facts Istio
# does not state (SL_RULES_VARIANT=native runs the same scenario from sluice's format).
export SL_RULES_VARIANT=${SL_RULES_VARIANT:-istio}
sl_write_rules
say "rules ($SL_RULES_VARIANT): ${SL_RULE_FILES[*]}"
"$SL_BUILD/userspace/sluicectl" validate "${SL_RULE_FILES[@]}"
sl_start_sluice

curl_from() { # POD HOST ADDR
  sl_pod_exec "$1" curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
    --resolve "$2:443:$3" "https://$2/" 2>&1 || true
}

say "1. pod-a: curl https://$SL_ALLOWED_HOST/ (allowed by the rules)"
curl_from pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR
say "2. pod-a: curl https://$SL_DENIED_HOST/ (not in the rules)"
curl_from pod-a $SL_DENIED_HOST $SL_DENIED_ADDR
say "3. pod-b (not enabled): curl https://$SL_ALLOWED_HOST/ directly (the node drops it)"
curl_from pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR
sleep 0.2
say "agent log (node)"
grep -E ' (flow|deny) ' "$SL_RUN_DIR/agent.log" || true
say "gateway access log (egress node)"
grep -E ' access ' "$SL_RUN_DIR/gateway.log" || true
say "origin access log ($SL_ALLOWED_HOST sees the egress node's address)"
cat "$SL_RUN_DIR/origin-access.log"
say "sluicectl status (from the node's namespace, where the agent's admin endpoint is)"
sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status || true
say "a few of the agent's metrics (curl http://127.0.0.1:15020/metrics on the node)"
sl_host_exec node curl -sS -m 5 http://127.0.0.1:15020/metrics |
  grep -E '^sluice_(agent_connections_total\{.*\} [1-9]|kernel_decisions_total\{reason="(redirected|handoff)"\})' || true
say "tearing down"
