#!/usr/bin/env bash
# Builds the guest's tiny initramfs: Debian's static busybox, the kernel modules that
# reach the shared root (virtio PCI, 9p over virtio, overlayfs; modules in Debian's
# kernel, so insmod'ed here in dependency order) and scripts/vm/guest-init.sh as /init.
# Usage: make-initramfs.sh KERNEL_DIR OUTPUT   (KERNEL_DIR from fetch-kernel.sh)
set -euo pipefail
kdir=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox) || { echo "make-initramfs.sh: busybox-static is not installed" >&2; exit 1; }
ldd "$busybox" >/dev/null 2>&1 &&
  { echo "make-initramfs.sh: $busybox is dynamically linked; install busybox-static" >&2; exit 1; }
version=$(cat "$kdir/.version")

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,modules,lower,upper,newroot}
cp "$busybox" "$stage/bin/busybox"
cp "$here/guest-init.sh" "$stage/init"
chmod 755 "$stage/init"
# modprobe --show-depends gives each module's chain in load order; keep the first of each.
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -d "$kdir" -S "$version" --show-depends "$m"
done | awk '$1=="insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
  cp "$ko" "$stage/modules/"
  basename "$ko" >> "$stage/modules/order"
done
[ -s "$stage/modules/order" ] || { echo "make-initramfs.sh: no modules found in $kdir" >&2; exit 1; }
(cd "$stage" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out"
