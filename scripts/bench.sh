#!/usr/bin/env bash
# sluice against what users would run instead, side by side, in one run on the netns
# topology, and bench/REPORT.md (with charts) from it. As root, on a fresh Debian 12:
#   sudo scripts/bench.sh            the full run (about 15 minutes after the build)
#   sudo scripts/bench.sh --smoke    a few seconds per figure: every path and figure works
#   --out DIR                        where REPORT.md and the charts go (default bench/)
#   BENCH_PHASES="gateways failover" only those phases (default: all of latency cores
#                                    throughput memory connect loops gateways failover)
#
# Paths, each from its own pod namespace to the same origins:
#   direct   pod-b: routed straight to the origin (the floor; the bench opens this route)
#   sluice   pod-a: BPF redirect, sluice-agent, mTLS, sluice-gateway
#   pair     pod-c: iptables REDIRECT to an nginx stream proxy that wraps the stream in mTLS
#            to a second nginx on the egress node, which connects by SNI (sidecar style)
#   plain    pod-d: the same two nginx hops relaying plain TCP: not a real alternative
#            (no mTLS), the ceiling for two userspace hops on this machine
# All traffic stays inside the namespaces; every loop is bounded by count or time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
out=$root/bench
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=1 ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench.sh [--smoke] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/bench.sh: run as root (sudo): it attaches BPF programs and makes namespaces" >&2
  exit 1
fi
if [ "${SL_BENCH_SKIP_SETUP:-0}" != 1 ]; then
  bash "$root/scripts/install-deps.sh"
  BUILD_DIR=${SL_BUILD:-$root/build-release} bash "$root/scripts/build.sh" Release
fi
export SL_BUILD=${SL_BUILD:-$root/build-release}

if [ $smoke = 1 ]; then
  runs=1 lat_runs=1 seconds=1 stream_bytes=$((64 << 20)) idle=100 connects=2000
else
  # lat_runs: the connection and latency figures, the noisiest here, take 5 turns each.
  runs=3 lat_runs=5 seconds=2 stream_bytes=$((1 << 30)) idle=1000 connects=20000
fi

phases=" ${BENCH_PHASES:-latency cores throughput memory connect loops gateways failover} "
want() { [[ $phases == *" $1 "* ]]; }

export SL_PREFIX=${SL_PREFIX:-slb$$}
# The origins' names keep dnsmasq's TTL of 0 unless SL_DNS_TTL says otherwise: the gateway
# reuses such an answer for gateway.dnsMinCacheMs (1 s by default), the pair's nginx for its
# resolver's valid=300s.
export SL_DNS_TTL=${SL_DNS_TTL:-0}
export SL_RUN_DIR=/tmp/sluice-bench-$SL_PREFIX
export SL_PIN_DIR=/sys/fs/bpf/sluice-bench-$SL_PREFIX
PLAIN_HOST=plain.bench.example PLAIN_ADDR=198.18.100.30
STREAM_HOST=stream.bench.example STREAM_ADDR=198.18.100.31
export SL_EXTRA_ORIGINS=("$PLAIN_HOST=$PLAIN_ADDR" "$STREAM_HOST=$STREAM_ADDR")
SL_EXTRA_HOSTS=(pod-c pod-d)
source "$root/scripts/lib/topology.sh"
trap sl_topology_down EXIT
trap 'exit 130' INT TERM
mkdir -p "$out"
log() { printf '[bench] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- topology and paths
log "topology"
sl_topology_up > /dev/null
for pod in pod-c:5 pod-d:6; do
  name=${pod%%:*} n=${pod##*:}
  ip netns add "$(sl_ns $name)"
  ip -n "$(sl_ns $name)" link set lo up
  sl_veth $name eth0 198.18.$n.2/24 node p$n 198.18.$n.1/24
  ip -n "$(sl_ns $name)" route add 198.18.0.0/15 via 198.18.$n.1
  mkdir -p "$(sl_cgroup_root)/$name"
done
# Thousands of short connections per second per path: as on a busy node, reuse TIME_WAIT
# ports for outgoing connections and use the whole port range, or the later runs would
# measure ephemeral-port exhaustion left by the earlier ones.
for h in "${SL_HOSTS[@]}" "${SL_EXTRA_HOSTS[@]}"; do
  sl_host_exec $h sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
done
# The direct path: pod-b may reach the origins; the egress node routes; inet routes back.
sl_host_exec node iptables -D FORWARD -i pb -j SL-POD-EGRESS
sl_host_exec egress sysctl -qw net.ipv4.ip_forward=1
ip -n "$(sl_ns inet)" route replace 198.18.0.0/16 via $SL_EGRESS_INET_ADDR
sl_spawn origin-reply inet "$SL_BUILD/bench/sl-bench-origin" reply $PLAIN_ADDR:443
sl_spawn origin-stream inet "$SL_BUILD/bench/sl-bench-origin" stream $STREAM_ADDR:443

# sluice: the seed rules plus the bench origins.
sl_write_rules native
sed -i "s/^hosts:/hosts:\n  - name: $PLAIN_HOST\n  - name: $STREAM_HOST/" "$SL_RUN_DIR/rules.yaml"
sed -i 's/^    - 198.18.3.0\/24/    - 198.18.3.0\/24\n    - 198.18.5.0\/24\n    - 198.18.6.0\/24/' "$SL_RUN_DIR/rules.yaml"
sl_start_sluice
pki=$SL_RUN_DIR/pki

# nginx stream proxies with one worker per core, as sluice's daemons run one event loop
# per core (--threads 0): like for like.
# bench_nginx NAME HOST CGROUP SERVER-BLOCK
bench_nginx() {
  local name=$1 host=$2 cgroup=$3 server=$4 dir=$SL_RUN_DIR/$1
  mkdir -p "$dir" "$(sl_cgroup_root)/$cgroup"
  cat > "$dir/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
user root;
daemon off;
worker_processes $(nproc);
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections 20000; }
stream {
  resolver $SL_DNS_ADDR valid=300s ipv6=off;
  $server
}
NGINX
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
    "$(sl_cgroup_root)/$cgroup" "$(sl_netns_path "$host")" nginx -c "$dir/nginx.conf" -e "$dir/error.log" \
    > "$SL_RUN_DIR/$name.log" 2>&1 &
  echo "$! $name" >> "$SL_RUN_DIR/pids"
}
bench_nginx pair-egress egress pair-egress "server {
    listen $SL_EGRESS_ADDR:16443 ssl;
    ssl_certificate $pki/gateway.pem; ssl_certificate_key $pki/gateway.key;
    ssl_client_certificate $pki/mesh-ca.pem; ssl_verify_client on;
    ssl_protocols TLSv1.3; ssl_session_tickets off;
    proxy_pass \$ssl_server_name:443;
  }"
bench_nginx pair-local pod-c pair-local "server {
    listen 15001; ssl_preread on;
    proxy_pass $SL_EGRESS_ADDR:16443;
    proxy_ssl on; proxy_ssl_protocols TLSv1.3;
    proxy_ssl_certificate $pki/agent.pem; proxy_ssl_certificate_key $pki/agent.key;
    proxy_ssl_server_name on; proxy_ssl_name \$ssl_preread_server_name;
  }"
bench_nginx plain-egress egress plain-egress "server {
    listen $SL_EGRESS_ADDR:16080; ssl_preread on;
    proxy_pass \$ssl_preread_server_name:443;
  }"
bench_nginx plain-local pod-d plain-local "server {
    listen 15001; ssl_preread on;
    proxy_pass $SL_EGRESS_ADDR:16080;
  }"
for pod in pod-c pod-d; do
  sl_host_exec $pod iptables -t nat -A OUTPUT -p tcp --dport 443 -j REDIRECT --to-ports 15001
done
sl_wait_listen egress 16443 && sl_wait_listen egress 16080
sl_wait_listen pod-c 15001 && sl_wait_listen pod-d 15001

paths=(direct sluice pair plain)
declare -A pod=([direct]=pod-b [sluice]=pod-a [pair]=pod-c [plain]=pod-d)
declare -A node_cg=([sluice]=host-node [pair]=pair-local [plain]=plain-local)
declare -A gw_cg=([sluice]=host-egress [pair]=pair-egress [plain]=plain-egress)

client() { # PATH ARGS...: the load generator in the path's pod
  local p=$1
  shift
  sl_pod_exec "${pod[$p]}" "$SL_BUILD/bench/sl-bench-client" "$@"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }
cpu_us() { awk '$1=="usage_usec"{print $2}' "$(sl_cgroup_root)/$1/cpu.stat"; }
rss_kib() { # sum of VmRSS over a cgroup's processes
  local total=0 pid kib
  for pid in $(cat "$(sl_cgroup_root)/$1/cgroup.procs"); do
    kib=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kib:-0}))
  done
  echo $total
}
# stats VALUES...: "median min max" of numbers
# Nothing (the figure reads "–" in the report) when no run gave a number.
stats() {
  printf '%s\n' "$@" | { grep -E '^-?[0-9.]+$' || true; } | sort -g |
    awk '{v[NR]=$1} END{if (NR) printf "%s %s %s\n", v[int((NR+1)/2)], v[1], v[NR]}'
}

# Sanity before measuring: each path reaches both kinds of origin.
for p in "${paths[@]}"; do
  r=$(client $p path $PLAIN_ADDR:443 --sni $PLAIN_HOST --duration-ms 300)
  [ "$(field conns "$r")" -gt 0 ] || { log "path $p does not work (path-only): $r"; exit 1; }
  r=$(client $p tls $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST --ca "$pki/public-ca.pem" --duration-ms 300)
  [ "$(field conns "$r")" -gt 0 ] || { log "path $p does not work (TLS): $r"; exit 1; }
done

declare -A R  # results: R[figure,path] = "median min max"

# ---------------------------------------------------------------- connections and latency
if want latency; then
for mode in path tls; do
  for c in 1 16; do
    # The paths take turns run by run (direct sluice pair plain, direct sluice ...): this
    # shared machine drifts by tens of percent over a minute, and a drift then falls on
    # every path alike instead of on whichever ran last.
    declare -A turn_cps=() turn_p50=() turn_p99=()
    for ((i = 0; i < lat_runs; i++)); do
      for p in "${paths[@]}"; do
        if [ $mode = path ]; then
          r=$(client $p path $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency $c --duration-ms $((seconds * 1000))) || r=
        else
          r=$(client $p tls $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST --ca "$pki/public-ca.pem" \
            --concurrency $c --duration-ms $((seconds * 1000))) || r=
        fi
        # A run with no connection (r empty) leaves no number: the figure shows it as fewer runs, or "–".
        turn_cps[$p]+="$(field cps "$r") " turn_p50[$p]+="$(field p50_us "$r") " turn_p99[$p]+="$(field p99_us "$r") "
      done
    done
    for p in "${paths[@]}"; do
      # shellcheck disable=SC2086
      R[cps_${mode}_$c,$p]=$(stats ${turn_cps[$p]})
      # shellcheck disable=SC2086
      R[p50_${mode}_$c,$p]=$(stats ${turn_p50[$p]})
      # shellcheck disable=SC2086
      R[p99_${mode}_$c,$p]=$(stats ${turn_p99[$p]})
      log "$mode c=$c $p: cps ${R[cps_${mode}_$c,$p]} p50 ${R[p50_${mode}_$c,$p]} p99 ${R[p99_${mode}_$c,$p]}"
    done
  done
done

fi

# ---------------------------------------------------------------- agent cores
if want cores; then
# New connections per second (path-only, 16 clients) with the agent on 1..N worker loops;
# the gateway keeps its default (one per core).
cores=()
for ((t = 1; t <= $(nproc); t++)); do
  sl_stop agent
  sl_start_agent --threads $t
  cps=()
  for ((i = 0; i < runs; i++)); do
    r=$(client sluice path $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency 16 --duration-ms $((seconds * 1000)))
    cps+=("$(field cps "$r")")
  done
  R[cps_cores,$t]=$(stats "${cps[@]}")
  cores+=($t)
  log "agent threads=$t: cps ${R[cps_cores,$t]}"
done
R[cores,list]="${cores[*]}"
sl_stop agent
sl_start_agent

fi

# ---------------------------------------------------------------- throughput and CPU per GiB
if want throughput; then
for streams in 1 8; do
  for p in "${paths[@]}"; do
    mibs=() node_cpu=() gw_cpu=()
    for ((i = 0; i < runs; i++)); do
      n0=0 g0=0
      [ $p != direct ] && n0=$(cpu_us ${node_cg[$p]}) && g0=$(cpu_us ${gw_cg[$p]})
      r=$(client $p stream $STREAM_ADDR:443 --sni $STREAM_HOST --concurrency $streams --bytes $stream_bytes)
      mibs+=("$(field mib_per_s "$r")")
      if [ $p != direct ]; then
        gib=$(echo "$(field bytes "$r") / 1073741824" | bc -l)
        node_cpu+=("$(echo "($(cpu_us ${node_cg[$p]}) - $n0) / 1000000 / $gib" | bc -l)")
        gw_cpu+=("$(echo "($(cpu_us ${gw_cg[$p]}) - $g0) / 1000000 / $gib" | bc -l)")
      fi
    done
    R[mibs_$streams,$p]=$(stats "${mibs[@]}")
    if [ $p != direct ]; then
      R[cpu_node_$streams,$p]=$(stats "${node_cpu[@]}")
      R[cpu_gw_$streams,$p]=$(stats "${gw_cpu[@]}")
    fi
    log "stream x$streams $p: MiB/s ${R[mibs_$streams,$p]}"
  done
done

fi

# ---------------------------------------------------------------- memory per idle connection
if want memory; then
# The daemons settle first (sluice hands a burst's memory back within ~2 s), so earlier
# phases' pages are not there for the held connections to reuse.
sleep 6
for p in sluice pair plain; do
  n0=$(rss_kib ${node_cg[$p]}) g0=$(rss_kib ${gw_cg[$p]})
  client $p hold $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency $idle --duration-ms 4000 > "$SL_RUN_DIR/hold.out" &
  holder=$!
  for _ in $(seq 60); do grep -q held= "$SL_RUN_DIR/hold.out" && break; sleep 0.1; done
  sleep 0.5
  n1=$(rss_kib ${node_cg[$p]}) g1=$(rss_kib ${gw_cg[$p]})
  held=$(field held "$(cat "$SL_RUN_DIR/hold.out")")
  wait $holder || true
  # KiB per idle connection: one measurement (RSS deltas of 1,000 connections).
  R[mem_node,$p]=$(stats "$(echo "($n1 - $n0) / ${held:-1}" | bc -l)")
  R[mem_gw,$p]=$(stats "$(echo "($g1 - $g0) / ${held:-1}" | bc -l)")
  log "idle x$held $p: node +$((n1 - n0)) KiB, gateway +$((g1 - g0)) KiB"
done

fi

# ---------------------------------------------------------------- connect() cost
if want connect; then
# The agent is stopped so its accept work does not share the cores with the measurement:
# connect() does not wait for it, the RST from the empty port ends each socket. "No
# program" is like for like: pod-b (not enabled) connecting to where sluice sends it.
sl_stop agent
declare -A cc
for ((i = 0; i < runs * 2; i++)); do
  cc[none]+="$(sl_pod_exec pod-b "$SL_BUILD/bench/sl-connect-cost" $SL_AGENT_ADDR:$SL_AGENT_PORT $connects 1 | sed -n 's/^median_ns=\([0-9]*\).*/\1/p') "
  cc[sluice]+="$(sl_pod_exec pod-a "$SL_BUILD/bench/sl-connect-cost" $PLAIN_ADDR:443 $connects 1 | sed -n 's/^median_ns=\([0-9]*\).*/\1/p') "
  cc[iptables]+="$(sl_pod_exec pod-c "$SL_BUILD/bench/sl-connect-cost" $PLAIN_ADDR:443 $connects 1 | sed -n 's/^median_ns=\([0-9]*\).*/\1/p') "
done
for k in none sluice iptables; do
  # shellcheck disable=SC2086
  R[connect,$k]=$(stats ${cc[$k]})
done

fi

# ---------------------------------------------------------------- worker loops, realistic
if want loops; then
# Realistic connections (16 clients) with both daemons on N loops, direct taking turns
# with sluice: on a machine the apps and the origin already keep busy, more loops mean
# fewer events per wake-up.
restart_sluice() { # ARGS for both daemons
  sl_stop agent
  sl_stop gateway
  sl_start_gateway "$@"
  sl_start_agent "$@"
}
for ((t = 1; t <= $(nproc); t++)); do
  restart_sluice --threads $t
  declare -A turn_loops=()
  for ((i = 0; i < lat_runs; i++)); do
    for p in direct sluice; do
      r=$(client $p tls $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST --ca "$pki/public-ca.pem" --concurrency 16 \
        --duration-ms $((seconds * 1000))) || r=
      turn_loops[$p]+="$(field cps "$r") "
    done
  done
  # shellcheck disable=SC2086
  R[cps_loops_tls,$t]=$(stats ${turn_loops[sluice]})
  # shellcheck disable=SC2086
  R[cps_loops_tls_direct,$t]=$(stats ${turn_loops[direct]})
  log "both daemons threads=$t: realistic cps ${R[cps_loops_tls,$t]} (direct ${R[cps_loops_tls_direct,$t]})"
done
restart_sluice
R[loops,list]=$(seq -s ' ' "$(nproc)")

fi

# ---------------------------------------------------------------- one gateway and two
# Path-only new connections (16 clients) with the agent given gateway A only, then A and
# B (a second gateway process on the egress node: scripts/lib/topology.sh). Both
# gateways share the egress node's cores, as A alone does.
if want gateways || want failover; then
  # wait_tunnels N: until the agent holds N tunnel connections (2 per gateway and loop).
  wait_tunnels() {
    for _ in $(seq 50); do
      [ "$(sl_host_exec node ss -Htn state established "( dport = :$SL_GATEWAY_PORT )" | grep -c .)" -ge "$1" ] && return
      sleep 0.1
    done
  }
  sl_stop agent
  sl_start_agent
  wait_tunnels 2
  sluice_cps16() {
    local cps=() r i
    for ((i = 0; i < runs; i++)); do
      r=$(client sluice path $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency 16 --duration-ms $((seconds * 1000)))
      cps+=("$(field cps "$r")")
    done
    stats "${cps[@]}"
  }
  want gateways && R[cps_gateways,1]=$(sluice_cps16) && log "1 gateway: cps ${R[cps_gateways,1]}"
  sl_second_gateway "$SL_GATEWAY_B_ADDR:$SL_GATEWAY_PORT"
  sl_stop agent
  sl_start_agent
  wait_tunnels 4
  want gateways && R[cps_gateways,2]=$(sluice_cps16) && log "2 gateways: cps ${R[cps_gateways,2]}"
  if want gateways; then R[gateways,list]="1 2"; fi
fi

# ---------------------------------------------------------------- a gateway killed
# Realistic connections (full TLS with the origin, 16 clients) through two gateways;
# gateway A gets SIGKILL a third of the way in. Counted: connections attempted, failed
# before any byte came back (the target: 0, the agent retries them on B), failed after
# (their bytes were already on the way: reset, as a real failover must), and the
# agent's retries.
if want failover; then
  fo_ms=$((smoke ? 3000 : 6000))
  retries0=$(grep -c 'retry gateway=' "$SL_RUN_DIR/agent.log" || true)
  client sluice tls $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST --ca "$pki/public-ca.pem" --concurrency 16 \
    --duration-ms $fo_ms > "$SL_RUN_DIR/failover.out" || true &
  loadgen=$!
  sleep "$(echo "$fo_ms / 3000" | bc -l)"
  gw=$(awk '$2=="gateway"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
  kill -KILL "$gw"
  wait $loadgen || true
  sed -i "/^$gw gateway$/d" "$SL_RUN_DIR/pids"
  r=$(cat "$SL_RUN_DIR/failover.out")
  conns=$(field conns "$r") errors=$(field errors "$r")
  R[failover,attempted]=$((${conns:-0} + ${errors:-0}))
  R[failover,ok]=${conns:-0}
  R[failover,before]=$(field failed_before_byte "$r")
  R[failover,after]=$(field failed_after_byte "$r")
  R[failover,retries]=$(($(grep -c 'retry gateway=' "$SL_RUN_DIR/agent.log" || true) - retries0))
  log "gateway killed: ${R[failover,attempted]} attempted, ${R[failover,before]} failed before a byte," \
    "${R[failover,after]} after, ${R[failover,retries]} retried"
fi

# ---------------------------------------------------------------- the report
declare -p R > "$out/results.txt"
bash "$root/bench/report.sh" "$out" "$smoke" "$(declare -p R)"
log "wrote $out/REPORT.md"
