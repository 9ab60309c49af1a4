#!/usr/bin/env bash
# Fetches Debian's own kernel (the distribution's generic amd64 flavour: 6.1 on Debian 12,
# with BTF) for the `vm` test tier, WITHOUT installing it: `apt-get install` of a kernel
# would run the host's initramfs and bootloader hooks. The package is downloaded and
# unpacked with dpkg-deb into a cache, and depmod indexes its modules there so the guest's
# modprobe finds them. Prints the unpacked directory. Idempotent: a complete unpack is reused.
#
# The generic flavour, not -cloud: the cloud kernel has no 9p, which the tier uses to
# share the host's root read-only (enforced by qemu, not by the guest).
#
# Usage: fetch-kernel.sh [CACHE_DIR]   (default $SL_VM_CACHE or /var/cache/sluice-vm)
set -euo pipefail
cache=${1:-${SL_VM_CACHE:-/var/cache/sluice-vm}}
meta=${SL_VM_KERNEL_META:-linux-image-amd64}

if [ "$(id -u)" -ne 0 ]; then
  echo "fetch-kernel.sh: run as root (apt-get download, depmod into the cache)" >&2
  exit 1
fi
# The metapackage depends on the versioned image package, e.g. linux-image-6.1.0-56-amd64.
image_package() {
  apt-cache depends --no-recommends --no-suggests "$meta" 2>/dev/null |
    awk '$1=="Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(image_package)
if [ -z "$pkg" ]; then
  apt-get update -qq
  pkg=$(image_package)
fi
[ -n "$pkg" ] || { echo "fetch-kernel.sh: apt knows no kernel behind $meta" >&2; exit 1; }

dir=$cache/$pkg
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt's download sandbox user must be able to write where the .deb lands.
chmod 755 "$work"
chown _apt "$work" 2>/dev/null || true
(cd "$work" && apt-get download -q "$pkg" >&2)
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/root"
version=$(basename "$(ls -d "$work"/root/lib/modules/*/)")
depmod -b "$work/root" "$version"
mv "$work/root" "$work/unpacked"
rm -rf "$dir"
mv "$work/unpacked" "$dir"
echo "$version" > "$dir/.version"
touch "$dir/.complete"
echo "$dir"
