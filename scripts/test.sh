#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test tier
# (unit, bpf, integration, e2e, fuzz, vm) with CTest. Root tests need root; run as root.
# SL_TEST_LABELS picks tiers (a CTest label regex), e.g. 'unit|bpf' or, inside a VM that
# already runs the kernel the vm tier boots, everything but vm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (sudo): the bpf, integration and e2e tests attach BPF programs" >&2
  exit 1
fi
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
# Root tests make uniquely named namespaces, so they could run in parallel; serially
# keeps their timing clean on a 2-core machine. The vm tier (Debian 12's kernel under
# qemu without KVM) takes about 10 minutes of the run; the other tiers about 4.
ctest --output-on-failure -L "${SL_TEST_LABELS:-unit|bpf|integration|e2e|fault|fuzz|container|vm}" "$@"
