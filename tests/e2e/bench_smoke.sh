#!/usr/bin/env bash
# The benchmark's smoke mode: every path works and every figure is produced. The figures
# themselves are never asserted.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d /tmp/sluice-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
SL_BENCH_SKIP_SETUP=1 bash "$root/scripts/bench.sh" --smoke --out "$out" > "$out/bench.log" 2>&1
rc=$?
failures=0
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }
[ $rc -eq 0 ] && pass "bench.sh --smoke exits 0" || { fail "bench.sh --smoke exited $rc"; tail -30 "$out/bench.log"; }
report=$out/REPORT.md
[ -s "$report" ] && pass "REPORT.md written" || fail "no REPORT.md"
for figure in "path-only conn/s, 1 client" "path-only conn/s, 16 clients" "realistic conn/s, 1 client" \
  "realistic conn/s, 16 clients" "path-only p50 µs, 1 client" "path-only p99 µs, 1 client" \
  "realistic p50 µs, 1 client" "1 stream MiB/s" "8 streams MiB/s (total)"; do
  line=$(grep -F "| $figure |" "$report")
  # direct, sluice, pair, plain: four numbers, none missing.
  if [ "$(grep -oE '\| [0-9.]+ \(' <<< "$line" | wc -l)" -eq 4 ]; then pass "$figure: all four paths"; else
    fail "$figure: $line"; fi
done
for figure in "node CPU s per GiB, 1 stream" "gateway CPU s per GiB, 8 streams" "node KiB per idle connection" \
  "gateway KiB per idle connection"; do
  line=$(grep -F "| $figure |" "$report")
  if [ "$(grep -oE '\| -?[0-9.]+ \(' <<< "$line" | wc -l)" -eq 3 ]; then pass "$figure: the three proxied paths"; else
    fail "$figure: $line"; fi
done
for k in "no program" "sluice programs" "iptables REDIRECT"; do
  grep -qE "^\| $k \| [0-9]+ \(" "$report" && pass "connect() cost: $k" || fail "connect() cost: $k missing"
done
# section HEADING: the report's lines under "### HEADING", up to the next heading.
section() { awk -v h="### $1" '/^#/{inside=($0==h); next} inside' "$report"; }
cores=$(section "New connections per second against the agent's cores")
for t in $(seq "$(nproc)"); do
  # Path-only with the agent's loops: conn/s and the ratio to 1 loop.
  grep -qE "^\| $t \| [0-9.]+ \([^|]*\) \| [0-9.]+ \|$" <<< "$cores" && pass "cores: path-only, $t loop(s)" ||
    fail "cores: path-only, $t loop(s) missing"
  # Realistic with both daemons' loops: sluice, direct and their ratio.
  grep -qE "^\| $t \| [0-9.]+ \([^|]*\) \| [0-9.]+ \([^|]*\) \| [0-9.]+ \|$" <<< "$cores" &&
    pass "loops: realistic, $t loop(s)" || fail "loops: realistic, $t loop(s) missing"
done
for g in 1 2; do
  section "One gateway and two" | grep -qE "^\| $g \| [0-9.]+ \(" && pass "$g gateway(s): conn/s" ||
    fail "$g gateway(s): conn/s missing"
done
section "A gateway killed during a run of new connections" | grep -qE '^\| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \|$' &&
  pass "gateway killed: attempted, ok, failed before and after a byte, retried" || fail "gateway killed: counts missing"
for png in bench-cps.png bench-latency.png; do
  [ "$(head -c 4 "$out/$png" | tail -c 3)" = PNG ] && pass "chart $png" || fail "chart $png missing"
done
[ $failures -eq 0 ] || { echo "$failures failed"; exit 1; }
echo "bench smoke: all figures produced"
