#!/usr/bin/env bash
# Writes REPORT.md and the charts from the results of scripts/bench.sh.
#   report.sh OUT_DIR SMOKE "declare -A R=(...)"
# (bench.sh also saves that argument as OUT_DIR/results.txt, to re-render a report.)
set -euo pipefail
out=$1 smoke=$2
eval "declare -A R=${3#*=}"
root=$(cd "$(dirname "$0")/.." && pwd)
paths=(direct sluice pair plain)

med() { local v=${R[$1,$2]:-}; [ -n "$v" ] && echo "${v%% *}" || echo ""; }
cell() { # "median (min–max)" rounded to DIGITS decimals
  local v=${R[$1,$2]:-} digits=${3:-0}
  [ -n "$v" ] || { echo "–"; return; }
  read -r m lo hi <<< "$v"
  printf "%.${digits}f (%.${digits}f–%.${digits}f)" "$m" "$lo" "$hi"
}
ratio() { # A / B of medians, 2 decimals
  local a b
  a=$(med "$1" "$2") b=$(med "$1" "$3")
  [ -n "$a" ] && [ -n "$b" ] && [ "$(echo "$b != 0" | bc)" = 1 ] && printf "%.2f" "$(echo "$a / $b" | bc -l)" || echo "–"
}
quotient() { # FIGURE_A FIGURE_B KEY: medians A / B at the same key, 2 decimals
  local a b
  a=$(med "$1" "$3") b=$(med "$2" "$3")
  [ -n "$a" ] && [ -n "$b" ] && [ "$(echo "$b != 0" | bc)" = 1 ] && printf "%.2f" "$(echo "$a / $b" | bc -l)" || echo "–"
}
row() { # LABEL FIGURE DIGITS
  printf '| %s |' "$1"
  for p in "${paths[@]}"; do printf ' %s |' "$(cell "$2" "$p" "${3:-0}")"; done
  printf ' %s | %s | %s |\n' "$(ratio "$2" sluice pair)" "$(ratio "$2" sluice plain)" "$(ratio "$2" sluice direct)"
}
# minus FIGURE A B: A's median less B's, whole units, or "–" when either was not measured
# (a run of some phases only: BENCH_PHASES).
minus() {
  local a b
  a=$(med "$1" "$2") b=$(med "$1" "$3")
  [ -n "$a" ] && [ -n "$b" ] && printf %.0f "$(echo "$a - $b" | bc -l)" || echo "–"
}
one_decimal() { local v; v=$(med "$1" "$2"); [ -n "$v" ] && printf %.1f "$v" || echo "–"; }
# verdict "VALUE OP BOUND": met / not met, or "not measured" for a missing value.
verdict() {
  case "$1" in *–*) echo "not measured"; return ;; esac
  [ "$(echo "$1" | bc -l)" = 1 ] && echo "met" || echo "not met"
}

{
  echo "# sluice benchmark report"
  echo
  if [ "$smoke" = 1 ]; then
    echo "**Smoke run**: a few seconds per figure, to show every path and figure works. Not for reading."
    echo
  fi
  echo "Produced by \`sudo scripts/bench.sh\` on $(date -u +%Y-%m-%d) (sluice $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown))."
  echo
  echo "## Machine"
  echo
  echo "- $(nproc) cores: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "- Linux $(uname -r), Debian $(cat /etc/debian_version)"
  echo "- $(openssl version), $(nginx -v 2>&1 | sed 's/.*: //'), $(g++ --version | head -1)"
  echo "- Each figure: median of the runs with (min–max); the connection and latency figures ($([ "$smoke" = 1 ] && echo 1 || echo 5) runs) take
  the paths in turns, run by run (drift falls on all alike); the others run one path after the other."
  echo "- Every namespace: \`net.ipv4.tcp_tw_reuse=1\`, ports 1024–65000 (thousands of short connections per second)."
  echo "- The origins' names resolve with a ${SL_DNS_TTL:-0} s TTL (dnsmasq \`--local-ttl\`); sluice's gateway keeps an answer at least \`gateway.dnsMinCacheMs\` (default 1 s), the pair's nginx 300 s."
  echo "- sluice built as $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "${SL_BUILD:-$root/build-release}/CMakeCache.txt" 2>/dev/null || echo '?'); load average when the report was written: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every path)."
  echo
  echo "## Paths"
  echo
  echo "- **direct**: the pod routed straight to the origin (the floor)."
  echo "- **sluice**: BPF redirect, sluice-agent, mTLS (TLS 1.3, P-256 certificates), sluice-gateway."
  echo "- **pair**: iptables REDIRECT in the pod to an nginx stream proxy (\`ssl_preread\`) that wraps the stream in mTLS"
  echo "  to a second nginx on the egress node (client certificate required), which connects by SNI: the sidecar style."
  echo "  It skips verifying the gateway's name (its certificate has only a SPIFFE URI), which favours it slightly."
  echo "- **plain**: the same two nginx hops over plain TCP: not a real alternative (no mTLS), the ceiling for two"
  echo "  userspace hops here. Every nginx runs one worker per core, as sluice's daemons run one event loop per core."
  echo
  echo "Path-only: each connection sends a real ClientHello (made by OpenSSL) and reads a short reply from a plain"
  echo "TCP origin. Realistic: each connection is a full TLS handshake with the HTTPS origin (nginx) and one small"
  echo "request. Latency is connect start to first byte, at 1 client."
  echo
  echo "## Figures"
  echo
  echo "| figure | direct | sluice | pair | plain | sluice/pair | sluice/plain | sluice/direct |"
  echo "|---|---|---|---|---|---|---|---|"
  row "path-only conn/s, 1 client" cps_path_1
  row "path-only conn/s, 16 clients" cps_path_16
  row "realistic conn/s, 1 client" cps_tls_1
  row "realistic conn/s, 16 clients" cps_tls_16
  row "path-only p50 µs, 1 client" p50_path_1
  row "path-only p99 µs, 1 client" p99_path_1
  row "path-only p50 µs, 16 clients" p50_path_16
  row "path-only p99 µs, 16 clients" p99_path_16
  row "realistic p50 µs, 1 client" p50_tls_1
  row "realistic p99 µs, 1 client" p99_tls_1
  row "1 stream MiB/s" mibs_1
  row "8 streams MiB/s (total)" mibs_8
  row "node CPU s per GiB, 1 stream" cpu_node_1 3
  row "gateway CPU s per GiB, 1 stream" cpu_gw_1 3
  row "node CPU s per GiB, 8 streams" cpu_node_8 3
  row "gateway CPU s per GiB, 8 streams" cpu_gw_8 3
  row "node KiB per idle connection" mem_node 1
  row "gateway KiB per idle connection" mem_gw 1
  echo
  echo "Added latency over direct (path-only, 1 client, p50): sluice $(minus p50_path_1 sluice direct) µs,"
  echo "pair $(minus p50_path_1 pair direct) µs,"
  echo "plain $(minus p50_path_1 plain direct) µs."
  echo
  echo "### New connections per second against the agent's cores"
  echo
  echo "Path-only, 16 clients, the agent started with \`--threads N\` (the gateway on its default, one loop per core)."
  echo
  echo "| agent worker loops | conn/s, median (min–max) | vs 1 loop |"
  echo "|---|---|---|"
  for t in ${R[cores,list]:-}; do
    printf '| %s | %s | %s |\n' "$t" "$(cell cps_cores "$t")" "$(ratio cps_cores "$t" 1)"
  done
  echo
  echo "Realistic, 16 clients, both daemons started with \`--threads N\`; direct takes turns with sluice, run by run."
  echo
  echo "| worker loops (agent and gateway) | sluice conn/s | direct conn/s | sluice/direct |"
  echo "|---|---|---|---|"
  for t in ${R[loops,list]:-}; do
    printf '| %s | %s | %s | %s |\n' "$t" "$(cell cps_loops_tls "$t")" "$(cell cps_loops_tls_direct "$t")" \
      "$(quotient cps_loops_tls cps_loops_tls_direct "$t")"
  done
  echo
  echo "### One gateway and two"
  echo
  echo "Path-only, 16 clients, the agent given gateway A only, then A and B (a second gateway process on the same"
  echo "egress node, so both share its cores: this shows the cost of spreading, not added capacity)."
  echo
  echo "| gateways | conn/s, median (min–max) | vs 1 gateway |"
  echo "|---|---|---|"
  for g in ${R[gateways,list]:-}; do
    printf '| %s | %s | %s |\n' "$g" "$(cell cps_gateways "$g")" "$(ratio cps_gateways "$g" 1)"
  done
  echo
  echo "### A gateway killed during a run of new connections"
  echo
  echo "Realistic connections (full TLS with the origin), 16 clients, two gateways; gateway A gets SIGKILL a third of"
  echo "the way in. *Failed before a byte*: the app got nothing back (the agent should have retried it on B: target 0);"
  echo "*failed after a byte*: the origin's handshake bytes had reached the app, so the stream could not be moved."
  echo
  echo "| attempted | ok | failed before a byte | failed after a byte | streams retried by the agent |"
  echo "|---|---|---|---|---|"
  printf '| %s | %s | %s | %s | %s |\n' "${R[failover,attempted]:-–}" "${R[failover,ok]:-–}" "${R[failover,before]:-–}" \
    "${R[failover,after]:-–}" "${R[failover,retries]:-–}"
  echo
  echo "### connect() cost"
  echo
  echo "ns inside a non-blocking \`connect()\` (hooks, sockops, netfilter, the SYN). *no program*: pod-b, not enabled,"
  echo "connecting to the agent's address, where sluice sends an external :443; *sluice*: pod-a to the external :443;"
  echo "*iptables REDIRECT*: pod-c with the nat rule, to the same external :443."
  echo
  echo "| path | ns, median (min–max) | vs no program |"
  echo "|---|---|---|"
  for k in none sluice iptables; do
    label=$([ $k = none ] && echo "no program" || ([ $k = sluice ] && echo "sluice programs" || echo "iptables REDIRECT"))
    printf '| %s | %s | %s |\n' "$label" "$(cell connect $k)" "$(ratio connect $k none)"
  done
  echo
  echo "## Targets"
  echo
  echo "| target | value | status |"
  echo "|---|---|---|"
  v=$(ratio cps_path_16 sluice pair); echo "| path-only conn/s ≥ 5× pair (16 clients) | $v | $(verdict "$v >= 5") |"
  v=$(ratio cps_path_16 sluice plain); echo "| path-only conn/s ≥ 0.7× plain (16 clients) | $v | $(verdict "$v >= 0.7") |"
  v=$(ratio cps_tls_16 sluice direct); echo "| realistic conn/s ≥ 0.75× direct (16 clients) | $v | $(verdict "$v >= 0.75") |"
  v=$(minus p50_path_1 sluice direct)
  echo "| added p50 ≤ 100 µs over direct (path-only) | $v µs | $(verdict "$v <= 100") |"
  v=$(ratio mibs_1 sluice pair); echo "| 1-stream throughput ≥ 1.2× pair | $v | $(verdict "$v >= 1.2") |"
  v=$(one_decimal mem_node sluice); echo "| node memory ≤ 8 KiB per idle connection | $v KiB | $(verdict "$v <= 8") |"
  v=$(one_decimal mem_gw sluice); echo "| gateway memory ≤ 8 KiB per idle connection | $v KiB | $(verdict "$v <= 8") |"
  v=$(ratio cpu_node_1 sluice pair); echo "| node CPU per GiB ≤ pair's (1 stream) | $v | $(verdict "$v <= 1") |"
  v=$(ratio cpu_gw_1 sluice pair); echo "| gateway CPU per GiB ≤ pair's (1 stream) | $v | $(verdict "$v <= 1") |"
  v=$(minus connect sluice none)
  echo "| connect() overhead ≤ 1 µs over no program | $v ns | $(verdict "$v <= 1000") |"
  v2=$(ratio connect sluice iptables); echo "| connect() below iptables REDIRECT | $v2 | $(verdict "$v2 < 1") |"
  v=${R[failover,before]:-}
  echo "| gateway killed: 0 failed before a byte | ${v:-–} ($(printf %s "${R[failover,after]:-–}") after a byte) | $([ -n "$v" ] && verdict "$v == 0" || echo "not measured") |"
  echo
  echo "![connections per second](bench-cps.png)"
  echo
  echo "![latency](bench-latency.png)"
} > "$out/REPORT.md"

# Charts: grouped bars per path (none for a run without the latency phase, BENCH_PHASES).
[ -n "$(med cps_path_1 sluice)" ] || exit 0
data=$(mktemp)
{
  for p in "${paths[@]}"; do
    echo "$p $(med cps_path_1 $p) $(med cps_path_16 $p) $(med cps_tls_1 $p) $(med cps_tls_16 $p) $(med p50_path_1 $p) $(med p99_path_1 $p)"
  done
} > "$data"
gnuplot <<GP
set terminal pngcairo size 900,480 font ",10"
set style data histograms
set logscale y
set yrange [10:*]
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set grid ytics
set output "$out/bench-cps.png"
set title "New connections per second (higher is better; log scale)"
set ylabel "connections/s"
plot "$data" using 2:xtic(1) title "path-only, 1 client", '' using 3 title "path-only, 16 clients", \
     '' using 4 title "realistic TLS, 1 client", '' using 5 title "realistic TLS, 16 clients"
set output "$out/bench-latency.png"
set title "Connect to first byte, path-only, 1 client (lower is better; log scale)"
set ylabel "µs"
plot "$data" using 6:xtic(1) title "p50", '' using 7 title "p99"
GP
rm -f "$data"
