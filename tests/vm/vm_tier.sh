#!/usr/bin/env bash
# The `vm` tier: boots a second, real kernel (Debian 12's 6.1 by default) under qemu and
# runs tests/vm/guest_suite.sh in it with this build's binaries. Fails if the guest is the
# host's kernel, if the guest did not finish, or if any guest test failed or is missing.
# Env: SL_BUILD (CTest sets it); SL_VM_TIMEOUT (whole run, seconds); SL_KEEP_RUN_DIR=1.
set -uo pipefail
SL_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SL_BUILD=${SL_BUILD:-$SL_ROOT/build}
if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: the vm tier needs root (the kernel cache, qemu reading the host's root)" >&2
  exit 1
fi
run_dir=$(mktemp -d /tmp/sluice-vm.XXXXXX)
cleanup() {
  if [ "${SL_KEEP_RUN_DIR:-0}" = 1 ]; then echo "kept $run_dir"; else rm -rf "$run_dir"; fi
}
trap cleanup EXIT
cat > "$run_dir/guest-command.sh" <<CMD
export SL_ROOT=$SL_ROOT SL_BUILD=$SL_BUILD SL_VM_TEST_TIMEOUT=${SL_VM_TEST_TIMEOUT:-900}
exec bash $SL_ROOT/tests/vm/guest_suite.sh
CMD

start=$(date +%s)
bash "$SL_ROOT/scripts/vm/run-guest.sh" "$run_dir" "$run_dir/guest-command.sh" "${SL_VM_TIMEOUT:-3000}"
guest_rc=$?
elapsed=$(($(date +%s) - start))
echo "---- guest console ----"
cat "$run_dir/console.log" 2>/dev/null
echo "---- verdict ----"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }

host_kernel=$(uname -r)
guest_kernel=$(cat "$run_dir/uname" 2>/dev/null)
echo "host kernel: $host_kernel; guest kernel: ${guest_kernel:-unknown}; tier run time: ${elapsed}s"
if [ -n "$guest_kernel" ] && [ "$guest_kernel" != "$host_kernel" ]; then
  pass "the guest runs a second kernel ($guest_kernel, host $host_kernel)"
else
  fail "the guest must run a kernel other than the host's (guest '${guest_kernel}', host '$host_kernel')"
fi
if [ "$guest_rc" -eq 0 ]; then pass "the guest suite finished"; else fail "the guest suite exited $guest_rc"; fi
# Every test the guest suite names must have a verdict, and every verdict must be 0.
expected=$(sed -n 's/^guest_test \([a-z0-9_]*\) .*/\1/p' "$SL_ROOT/tests/vm/guest_suite.sh")
for name in $expected; do
  line=$(awk -v n="$name" '$2==n' "$run_dir/results" 2>/dev/null)
  if [ -z "$line" ]; then
    fail "$name: no result from the guest"
  elif [ "${line%% *}" -eq 0 ]; then
    pass "$name in the guest (${line##* } s)"
  else
    fail "$name in the guest (exit ${line%% *})"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
