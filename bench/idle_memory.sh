#!/usr/bin/env bash
# Both daemons' memory (VmRSS) before, at the peak of and after a burst of idle clients, on
# the netns topology. Reported, not asserted.
#   agent:   CLIENTS TCP connections from pod-a that never send their ClientHello
#   gateway: GATEWAY_CLIENTS mutual-TLS connections from the node (the agent's identity,
#            ALPN h2) that complete their handshake and then go silent
# "before" is taken once the daemons have settled after a first flow, "after" a few seconds
# after the last client closed (the daemons hand memory back within ~2 s of a burst).
# As root:  sudo bench/idle_memory.sh [CLIENTS] [GATEWAY_CLIENTS]   (default 10000 2000;
# about 1.5 minutes)
set -uo pipefail
clients=${1:-10000}
gateway_clients=${2:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
export SL_PREFIX=bm$$
export SL_RUN_DIR=/tmp/sluice-bench-$SL_PREFIX
export SL_PIN_DIR=/sys/fs/bpf/sluice-bench-$SL_PREFIX
source "$root/scripts/lib/topology.sh"
trap sl_topology_down EXIT
[ "$(id -u)" -eq 0 ] || { echo "bench/idle_memory.sh: run as root" >&2; exit 1; }
sl_topology_up || exit 1
sl_write_rules native
# Room for the burst: caps above it, and a hello timeout longer than the run.
sed -i "s#^  clientHelloTimeoutMs: 5000#  clientHelloTimeoutMs: 120000\n  maxConnections: $((clients + 1000))\n  maxConnectionsPerPod: $((clients + 1000))#" \
  "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || exit 1
pid_of() { awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1; }
rss() { awk '/^VmRSS/{print $2}' "/proc/$(pid_of "$1")/status"; }
curl_once() {
  sl_pod_exec pod-a curl -sS -o /dev/null --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
    --resolve "$SL_ALLOWED_HOST:443:$SL_ALLOWED_ADDR" "https://$SL_ALLOWED_HOST/"
}
# flood CGROUP HOST NAME ARGS...: tests/tools/flood.py in that cgroup and namespace.
flood() {
  local cg=$1 host=$2 name=$3
  shift 3
  bash -c 'echo $$ > "$0/cgroup.procs" && ulimit -Sn "$(ulimit -Hn)"; exec nsenter --net="$1" -- "${@:2}"' \
    "$(sl_cgroup_root)/$cg" "$(sl_netns_path "$host")" python3 "$root/tests/tools/flood.py" "$@" \
    > "$SL_RUN_DIR/$name.log" 2>&1 &
  echo "$! $name" >> "$SL_RUN_DIR/pids"
  for _ in $(seq 1200); do grep -q '^holding' "$SL_RUN_DIR/$name.log" && return 0; sleep 0.1; done
  echo "$name: the flood did not finish opening" >&2
}
# closed HOST PORT: waits until no connection to PORT is left in HOST's namespace.
closed() {
  for _ in $(seq 100); do
    [ "$(sl_host_exec "$1" ss -Htn "( sport = :$2 )" | grep -c .)" -eq 0 ] && return 0
    sleep 0.1
  done
}
settle=6

curl_once
sleep $settle
agent_before=$(rss agent)
gateway_before=$(rss gateway)

flood pod-a node agentflood tcp $SL_ALLOWED_ADDR 443 --count "$clients" --settle-s 2
agent_held=$(sl_host_exec node ss -Htn state established "( sport = :$SL_AGENT_PORT )" | grep -c .)
agent_peak=$(rss agent)
sl_stop agentflood
closed node $SL_AGENT_PORT
sleep $settle
curl_once
agent_after=$(rss agent)

pki=$SL_RUN_DIR/pki
flood host-node node gatewayflood tls $SL_EGRESS_ADDR $SL_GATEWAY_PORT --count "$gateway_clients" \
  --cert "$pki/agent.pem" --key "$pki/agent.key" --ca "$pki/mesh-ca.pem" --sni $SL_ALLOWED_HOST --alpn h2 --settle-s 2
gateway_held=$(sl_host_exec egress ss -Htn state established "( sport = :$SL_GATEWAY_PORT )" | grep -c .)
gateway_peak=$(rss gateway)
sl_stop gatewayflood
for _ in $(seq 100); do
  [ "$(sl_host_exec egress ss -Htn state established "( sport = :$SL_GATEWAY_PORT )" | grep -c .)" -le 2 ] && break
  sleep 0.1
done
sleep $settle
curl_once
gateway_after=$(rss gateway)

per() { echo $((($2 - $1) * 1024 / ($3 > 0 ? $3 : 1))); }
pct() { echo $((($2 - $1) * 100 / $1)); }
echo "allocator: $(sed -n 's/.*memory: allocator \([^;]*\);.*/\1/p' "$SL_RUN_DIR/agent.log" | head -1)"
echo "agent: $clients idle TCP clients requested, $agent_held held ($(grep '^opened' "$SL_RUN_DIR/agentflood.log" | tail -1))"
echo "agent VmRSS: before ${agent_before} KiB, at the peak ${agent_peak} KiB, after ${agent_after} KiB" \
  "($(pct "$agent_before" "$agent_after")% over before; $(per "$agent_before" "$agent_peak" "$agent_held") bytes per idle client at the peak)"
echo "gateway: $gateway_clients idle mTLS clients requested, $gateway_held held ($(grep '^opened' "$SL_RUN_DIR/gatewayflood.log" | tail -1))"
echo "gateway VmRSS: before ${gateway_before} KiB, at the peak ${gateway_peak} KiB, after ${gateway_after} KiB" \
  "($(pct "$gateway_before" "$gateway_after")% over before; $(per "$gateway_before" "$gateway_peak" "$gateway_held") bytes per idle client at the peak)"
