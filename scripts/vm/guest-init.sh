#!/bin/busybox sh
# /init of the test guest (runs from the initramfs, as PID 1). The guest's root is the
# HOST's root, shared read-only by qemu over 9p, under a tmpfs overlay: the guest has the
# host's tools and built binaries exactly, can write anywhere, and nothing reaches the host.
# The one writable share is the host's run directory (tag `out`), where the command to run
# is and where its results go. Kernel command line: sl.kdir=DIR (the unpacked kernel
# package, for its modules), sl.out=DIR (the run directory's path on the host).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

fail() {
  echo "sluice-vm-init: $*" > /dev/console
  poweroff -f
}
for arg in $(cat /proc/cmdline); do
  case $arg in
    sl.kdir=*) kdir=${arg#sl.kdir=} ;;
    sl.out=*) out=${arg#sl.out=} ;;
  esac
done
[ -n "$kdir" ] && [ -n "$out" ] || fail "sl.kdir= and sl.out= are required on the kernel command line"

for ko in $(cat /modules/order); do
  insmod "/modules/$ko" || fail "insmod $ko failed"
done
# cache=loose: the host's root does not change under a test run, and 9p round trips are
# what makes a TCG guest slow.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 root /lower ||
  fail "cannot mount the host's root (9p tag root)"
mount -t tmpfs -o size=75% upper /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot ||
  fail "cannot mount the overlay root"

r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs shm $r/dev/shm
# What udev would add: bash's process substitution needs /dev/fd.
ln -s /proc/self/fd $r/dev/fd
ln -s /proc/self/fd/0 $r/dev/stdin
ln -s /proc/self/fd/1 $r/dev/stdout
ln -s /proc/self/fd/2 $r/dev/stderr
# A fresh /run: the host's (its network namespaces, sockets) are not the guest's. /tmp
# stays the host's, under the overlay: a checkout or build there (CI clones into a
# temporary folder) must be visible, and the guest's writes land in the overlay only.
mount -t tmpfs run $r/run
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t bpf bpf $r/sys/fs/bpf || fail "cannot mount bpffs"
mount -t tracefs tracefs $r/sys/kernel/tracing 2>/dev/null
# The guest kernel's modules where its modprobe looks (veth, netfilter, ... load on demand).
version=$(uname -r)
mkdir -p $r/lib/modules/$version
mount --bind $r$kdir/lib/modules/$version $r/lib/modules/$version || fail "no modules for $version in $kdir"
mkdir -p $r/run/sluice-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $r/run/sluice-vm ||
  fail "cannot mount the run directory (9p tag out)"
ip link set lo up
hostname sluice-vm

cut -d' ' -f1 /proc/uptime > $r/run/sluice-vm/boot-seconds
# switch_root, not chroot: the kernel runs its helpers (modprobe for veth, netfilter, ...)
# in PID 1's root, which must be the host's. The command's exit code is the guest's
# verdict; the host reads it from `exit-code`. Then power off (qemu -no-reboot exits).
exec switch_root $r /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 /bin/bash -c '
cd /
/bin/bash /run/sluice-vm/command < /dev/null > /dev/console 2>&1
echo $? > /run/sluice-vm/exit-code
sync
umount /run/sluice-vm
exec /bin/busybox poweroff -f'
