#!/usr/bin/env bash
# Installs every Debian package sluice needs to build, test, demo and benchmark.
# Safe to run twice: apt-get install is idempotent.
set -euo pipefail

packages=(
  # toolchain: g++ 12 for userspace (Boost.Asio coroutines), clang 14 for BPF
  build-essential g++ cmake ninja-build pkg-config clang llvm clang-format
  # libFuzzer and sanitizer runtimes for the fuzz tier
  libclang-rt-14-dev
  # BPF: libbpf (with libelf) for CO-RE loading, bpftool for skeletons and inspection
  libbpf-dev libelf-dev zlib1g-dev bpftool
  # userspace libraries
  libssl-dev libboost-dev libboost-program-options-dev libyaml-cpp-dev libspdlog-dev
  libfmt-dev libc-ares-dev libnghttp2-dev libgtest-dev libgmock-dev libbenchmark-dev
  # the daemons' allocator: jemalloc hands a burst's memory back (glibc's malloc cannot)
  libjemalloc-dev
  # observability: /metrics exposition, JSON access records and /config; promtool checks
  # the scrape output in the metrics test (Debian's prometheus package ships it)
  prometheus-cpp-dev nlohmann-json3-dev prometheus
  # test topology: namespaces, firewall, DNS server, HTTPS origins, real clients
  iproute2 iptables dnsmasq-base nginx-light curl openssl procps psmisc bc
  # benchmarks: nginx stream proxies (the sidecar-style alternative), the report chart, and
  # gdb for bench/idle_heap.sh (reads jemalloc's counters inside the daemons)
  libnginx-mod-stream gnuplot-nox gdb
  # sluicectl validate: the public suffix list, for warnings on wildcards over public zones
  publicsuffix
  # vm tier: a second kernel under qemu (TCG), a busybox initramfs, depmod/modprobe for
  # the guest kernel's modules (the kernel itself: scripts/vm/fetch-kernel.sh)
  qemu-system-x86 busybox-static kmod
  # the image without a registry (scripts/image.sh: Debian rootfs, file capability, podman
  # import), the container tests (podman with runc: crun refuses hybrid cgroup layouts),
  # the manifest check (Debian's python3 with PyYAML and jsonschema) and the unit check
  mmdebstrap libcap2-bin podman runc python3-yaml python3-jsonschema systemd
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# nginx-light's package enables a default site and starts a service on :80; the tests
# start their own nginx inside namespaces only, so stop the packaged one if it started.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx || true
  systemctl disable nginx >/dev/null 2>&1 || true
fi
