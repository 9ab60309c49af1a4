#!/usr/bin/env bash
# Inside the Vagrant VM: the demo, then every test tier but `vm` (that tier boots a second
# kernel to test Debian 12's 6.1 from another host; this VM already runs it).
set -euo pipefail
dir=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "run-in-vm.sh: run as root (sudo)" >&2
  exit 1
fi
echo "== kernel $(uname -r)"
bash "$dir/scripts/demo.sh"
SL_TEST_LABELS='unit|bpf|integration|e2e|fuzz' bash "$dir/scripts/test.sh"
