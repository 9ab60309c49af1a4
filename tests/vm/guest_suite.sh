#!/usr/bin/env bash
# Runs INSIDE the test guest (scripts/vm/run-guest.sh), on the guest's kernel: the bpf
# tier, bpftool checks of what the agent loads and attaches, and the integration and e2e
# scripts that cover redirect, getpeername v4/v6, fail closed, reload and the seed
# scenario. Each test's verdict goes to /run/sluice-vm/results ("EXIT NAME SECONDS"), its
# output to /run/sluice-vm/NAME.log; the host (tests/vm/vm_tier.sh) judges them.
# Env (from the host): SL_ROOT, SL_BUILD.
set -uo pipefail
out=/run/sluice-vm
: "${SL_ROOT:?}" "${SL_BUILD:?}"
export SL_PROBE=$SL_BUILD/tests/sl-probe
uname -r > "$out/uname"
echo "guest kernel: $(uname -r)"
: > "$out/results"

# guest_test NAME VARIANT CMD...: one test, bounded in time, with CTest's environment.
guest_test() {
  local name=$1 variant=$2 start rc
  shift 2
  start=$(date +%s)
  SL_RULES_VARIANT=$variant timeout -k 10 "${SL_VM_TEST_TIMEOUT:-900}" "$@" > "$out/$name.log" 2>&1
  rc=$?
  echo "$rc $name $(($(date +%s) - start))" >> "$out/results"
  if [ "$rc" -eq 0 ]; then
    echo "ok - $name ($(($(date +%s) - start)) s): $(tail -n 1 "$out/$name.log")"
  else
    echo "not ok - $name (exit $rc, $(($(date +%s) - start)) s); last lines:"
    tail -n 40 "$out/$name.log" | sed 's/^/    /'
  fi
}

guest_test bpf_tier native "$SL_BUILD/tests/sluice_bpf_tests"
guest_test vm_bpftool_checks native bash "$SL_ROOT/tests/vm/bpftool_checks.sh"
guest_test integration_getpeername native bash "$SL_ROOT/tests/integration/getpeername.sh"
guest_test integration_dual_stack native bash "$SL_ROOT/tests/integration/dual_stack.sh"
guest_test integration_agent_restart native bash "$SL_ROOT/tests/integration/agent_restart.sh"
guest_test integration_reload native bash "$SL_ROOT/tests/integration/reload.sh"
guest_test e2e_seed_allowed_istio istio bash "$SL_ROOT/tests/e2e/seed_allowed.sh"
guest_test e2e_seed_denied_istio istio bash "$SL_ROOT/tests/e2e/seed_denied.sh"
echo "guest suite done"
