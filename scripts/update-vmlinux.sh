#!/usr/bin/env bash
# Regenerates the committed vmlinux.h from this machine's kernel BTF. The build never
# reads the build host's kernel: CO-RE relocates against the running kernel at load.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(uname -m)
mkdir -p "bpf/include/$arch"
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "bpf/include/$arch/vmlinux.h"
echo "wrote bpf/include/$arch/vmlinux.h from $(uname -r)"
