#!/usr/bin/env bash
# Where an idle flow's memory goes: both daemons' VmRSS and jemalloc stats.allocated before
# and while N flows are held idle (sl-bench-client hold, as bench.sh's memory phase, but
# measured after the daemons settled: no warm pages from earlier traffic), and after.
# PROF=1: jemalloc heap profiles at each point (every allocation sampled), then
#   python3 bench/heap_diff.py OUT/before.agent.heap OUT/hold.agent.heap N
# lists the bytes per flow by allocation site. Needs gdb (reads mallctl in the daemons).
# As root: sudo [N=1000] [PROF=1] [OUT=DIR] bench/idle_heap.sh   (about 1 minute)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export SL_BUILD=${SL_BUILD:-$root/build}
export SL_PREFIX=idg$$
export SL_RUN_DIR=/tmp/sluice-bench-$SL_PREFIX
export SL_PIN_DIR=/sys/fs/bpf/sluice-bench-$SL_PREFIX
out=${OUT:-/tmp/sluice-idle-heap}
n=${N:-1000}
rm -rf "$out"; mkdir -p "$out"
PLAIN_HOST=plain.bench.example PLAIN_ADDR=198.18.100.30
export SL_EXTRA_ORIGINS=("$PLAIN_HOST=$PLAIN_ADDR")
source "$root/scripts/lib/topology.sh"
trap sl_topology_down EXIT
sl_topology_up > /dev/null || exit 1
sl_spawn origin-reply inet "$SL_BUILD/bench/sl-bench-origin" reply $PLAIN_ADDR:443
sl_write_rules native
sed -i "s/^hosts:/hosts:\n  - name: $PLAIN_HOST/" "$SL_RUN_DIR/rules.yaml"
[ -n "${PROF:-}" ] && export MALLOC_CONF="prof:true,lg_prof_sample:${LG_SAMPLE:-0},prof_prefix:$out/jeprof"
[ -n "${EXTRA_CONF:-}" ] && export MALLOC_CONF="${MALLOC_CONF:+$MALLOC_CONF,}$EXTRA_CONF"
sl_start_sluice || exit 1
unset MALLOC_CONF
pid_of() { awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1; }
rss() { awk '/^VmRSS/{print $2}' "/proc/$(pid_of "$1")/status"; }
client() { sl_pod_exec pod-a "$SL_BUILD/bench/sl-bench-client" "$@"; }
snap() { # tag
  for d in agent gateway; do
    local p; p=$(pid_of $d)
    echo "$1 $d rss=$(rss $d)" >> "$out/rss.txt"
    cat /proc/$p/smaps_rollup > "$out/$1.$d.smaps_rollup"
    gdb -p $p -batch -ex 'set $b = (size_t*)malloc(64)' -ex 'set $l = (size_t*)malloc(8)' \
      -ex 'call (int)mallctl("epoch", (void*)0, (void*)0, $b, 8)' \
      -ex 'set *$l = 8' -ex 'call (int)mallctl("stats.allocated", $b, $l, (void*)0, 0)' -ex 'printf "allocated=%lu\n", *$b' \
      -ex 'set *$l = 8' -ex 'call (int)mallctl("stats.active", $b, $l, (void*)0, 0)' -ex 'printf "active=%lu\n", *$b' \
      -ex 'set *$l = 8' -ex 'call (int)mallctl("stats.resident", $b, $l, (void*)0, 0)' -ex 'printf "resident=%lu\n", *$b' \
      -ex 'set *$l = 8' -ex 'call (int)mallctl("stats.metadata", $b, $l, (void*)0, 0)' -ex 'printf "metadata=%lu\n", *$b' \
      ${PROF:+-ex 'call (int)mallctl("prof.dump", (void*)0, (void*)0, (void*)0, 0)'} 2>/dev/null \
      | grep -E '^(allocated|active|resident|metadata)=' | sed "s/^/$1 $d /" >> "$out/rss.txt"
    if [ -n "${PROF:-}" ]; then f=$(ls -t "$out"/jeprof.$p.*.heap 2>/dev/null | head -1); [ -n "$f" ] && mv "$f" "$out/$1.$d.heap"; fi
  done
}
client path $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency 4 --duration-ms 1000 > /dev/null
sleep ${SETTLE:-7}
snap before
client hold $PLAIN_ADDR:443 --sni $PLAIN_HOST --concurrency $n --duration-ms ${HOLD_MS:-12000} > "$out/hold.out" &
holder=$!
for _ in $(seq 100); do grep -q held= "$out/hold.out" && break; sleep 0.1; done
sleep 0.5
snap hold
echo "hold: $(cat $out/hold.out)" >> "$out/rss.txt"
wait $holder
sleep 8
snap after
cp "$SL_RUN_DIR"/agent.log "$SL_RUN_DIR"/gateway.log "$out/"
cat "$out/rss.txt"
