#!/usr/bin/env bash
# Inside the Vagrant VM, as root: the demo, then every test tier but `vm` (that tier boots
# a second kernel to test Debian 12's 6.1 from another host; this VM already runs it).
# demo.sh and test.sh check for root themselves.
set -euo pipefail
dir=$(cd "$(dirname "$0")/.." && pwd)
echo "== kernel $(uname -r)"
bash "$dir/scripts/demo.sh"
SL_TEST_LABELS='unit|bpf|integration|e2e|fuzz|container' bash "$dir/scripts/test.sh"
