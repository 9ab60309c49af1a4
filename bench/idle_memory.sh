#!/usr/bin/env bash
# The agent's memory before, at the peak of and after a burst of idle clients (TCP
# connections that never send their ClientHello), on the netns topology. Reported, not
# asserted. As root:  sudo bench/idle_memory.sh [CLIENTS]   (default 10000; about 1 minute)
set -uo pipefail
clients=${1:-10000}
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
pid=$(awk '$2=="agent"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
rss() { awk '/^VmRSS/{print $2}' "/proc/$pid/status"; }
curl_once() {
  sl_pod_exec pod-a curl -sS -o /dev/null --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
    --resolve "$SL_ALLOWED_HOST:443:$SL_ALLOWED_ADDR" "https://$SL_ALLOWED_HOST/"
}
curl_once
before=$(rss)
bash -c 'echo $$ > "$0/cgroup.procs" && ulimit -Sn "$(ulimit -Hn)"; exec nsenter --net="$1" -- "${@:2}"' \
  "$(sl_cgroup_root)/pod-a" "$(sl_netns_path pod-a)" python3 "$root/tests/tools/flood.py" tcp $SL_ALLOWED_ADDR 443 \
  --count "$clients" --settle-s 2 > "$SL_RUN_DIR/flood.log" 2>&1 &
echo "$! flood" >> "$SL_RUN_DIR/pids"
for _ in $(seq 600); do grep -q '^holding' "$SL_RUN_DIR/flood.log" && break; sleep 0.1; done
held=$(sl_host_exec node ss -Htn state established "( sport = :$SL_AGENT_PORT )" | grep -c .)
peak=$(rss)
sl_stop flood
for _ in $(seq 100); do
  [ "$(sl_host_exec node ss -Htn "( sport = :$SL_AGENT_PORT )" | grep -c .)" -eq 0 ] && break
  sleep 0.1
done
sleep 3  # the agent's periodic trim check runs every 2 s
curl_once
after=$(rss)
echo "idle clients: $clients requested, $held held by the agent ($(grep '^opened' "$SL_RUN_DIR/flood.log" | tail -1))"
echo "agent VmRSS: before ${before} KiB, at the peak ${peak} KiB, after ${after} KiB"
echo "per idle client at the peak: $(((peak - before) * 1024 / (held > 0 ? held : 1))) bytes"
