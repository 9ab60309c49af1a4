#!/usr/bin/env bash
# Runs a libFuzzer target for a bounded time from OpenSSL-made seeds plus the committed
# regression corpus (inputs that once failed stay tested forever). Fails on any crash.
#   run_fuzz.sh FUZZER SEED-MAKER CORPUS-DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds_tool=$2 corpus=$3 seconds=$4
work=$(mktemp -d /tmp/sluice-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/seeds" "$work/new"
"$seeds_tool" "$work/seeds"
# Regression inputs first: each must pass on its own.
if [ -n "$(ls -A "$corpus" 2>/dev/null)" ]; then "$fuzzer" -runs=0 "$corpus"; fi
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -max_len=20000 \
  -artifact_prefix="$work/" "$work/new" "$work/seeds" "$corpus" 2>&1 | tail -5
echo "fuzzed for ${seconds}s: no crash"
