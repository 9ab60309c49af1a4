#!/usr/bin/env bash
# Boots a second, real kernel under qemu (TCG: no KVM needed) and runs one bash script in
# it, with the host's root filesystem shared read-only (so the guest has the host's tools
# and built binaries) and no network to the outside (-nic none). Returns the script's exit
# code; the script's output goes to the guest console, copied to RUN_DIR/console.log.
#
# Usage: run-guest.sh RUN_DIR SCRIPT [TIMEOUT_SECONDS]
#   RUN_DIR  a host directory shared writable with the guest at /run/sluice-vm; SCRIPT is
#            copied there as `command`, and the guest leaves its results there.
# Env: SL_VM_CACHE (kernel cache, default /var/cache/sluice-vm), SL_VM_MEMORY (MiB, 3072),
#      SL_VM_CPUS (2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run_dir=$(cd "$1" && pwd)
script=$2
limit=${3:-1800}

for tool in qemu-system-x86_64 busybox modprobe; do
  command -v $tool >/dev/null || { echo "run-guest.sh: $tool is missing; run scripts/install-deps.sh" >&2; exit 1; }
done
kdir=$(bash "$here/fetch-kernel.sh")
version=$(cat "$kdir/.version")
initrd=$run_dir/initramfs.cpio.gz
bash "$here/make-initramfs.sh" "$kdir" "$initrd"
cp "$script" "$run_dir/command"
rm -f "$run_dir/exit-code" "$run_dir/boot-seconds"

qemu_pid=
stop_qemu() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  rm -f "$initrd"
}
trap stop_qemu EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
# The root share is read-only in qemu itself: nothing the guest does can write the host.
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "${SL_VM_CPUS:-2}" -m "${SL_VM_MEMORY:-3072}" \
  -nic none -display none -monitor none -no-reboot -serial "file:$run_dir/console.log" \
  -kernel "$kdir/boot/vmlinuz-$version" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 loglevel=4 sl.kdir=$kdir sl.out=$run_dir" \
  -virtfs "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$run_dir,mount_tag=out,security_model=none,multidevs=remap" &
qemu_pid=$!
deadline=$((started + limit))
ready_after=
while kill -0 "$qemu_pid" 2>/dev/null; do
  # The guest writes boot-seconds when its root is mounted, just before the command runs.
  [ -z "$ready_after" ] && [ -f "$run_dir/boot-seconds" ] && ready_after=$(($(date +%s) - started))
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "run-guest.sh: the guest did not finish within ${limit}s; killing qemu (pid $qemu_pid)" >&2
    break
  fi
  sleep 1
done
stop_qemu
wait "$qemu_pid" 2>/dev/null || true
echo "run-guest.sh: kernel $version; guest ready ${ready_after:-?}s after qemu started" \
  "(guest kernel uptime then: $(cat "$run_dir/boot-seconds" 2>/dev/null || echo '?')s); whole run $(($(date +%s) - started))s"
if [ ! -f "$run_dir/exit-code" ]; then
  echo "run-guest.sh: the guest wrote no exit code; its console:" >&2
  tail -n 60 "$run_dir/console.log" >&2
  exit 1
fi
exit "$(cat "$run_dir/exit-code")"
