#!/usr/bin/env bash
# Builds the sluice image without a registry and loads it into podman as
# localhost/sluice:TAG (default: the project version). The same image as
# deploy/docker/Dockerfile: Debian 12 minbase (what debian:12-slim is) with the runtime
# libraries of deploy/docker/runtime-packages.txt, the three binaries in /usr/local/bin,
# the examples in /usr/local/share/sluice, user sluice (65532), no ENTRYPOINT.
#   scripts/image.sh [--tag TAG] [--build-dir DIR] [--output rootfs.tar]
# The packages come from this host's apt sources (/etc/apt/sources.list.d/debian.sources
# or /etc/apt/sources.list); the binaries from `cmake --install` of BUILD_DIR (built with
# scripts/build.sh first if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
tag=""
output=""
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    *) echo "image.sh: unknown argument '$1' (--tag TAG, --build-dir DIR, --output FILE)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image.sh: run as root (mmdebstrap and podman's root storage)" >&2; exit 1; }
for tool in mmdebstrap podman; do
  command -v $tool > /dev/null || { echo "image.sh: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
if [ -z "$tag" ]; then
  tag=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
  [ -n "$tag" ] || { echo "image.sh: no project version in CMakeLists.txt" >&2; exit 1; }
fi
[ -x "$build/userspace/sluice-agent" ] || BUILD_DIR=$build bash "$root/scripts/build.sh"

work=$(mktemp -d /tmp/sluice-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
staging=$work/staging

# The binaries and examples where a package puts them: cmake --install when the build has
# install rules, otherwise the same layout by hand.
cmake --install "$build" --prefix "$staging/usr/local" > "$work/install.log" 2>&1 || true
if [ ! -x "$staging/usr/local/bin/sluice-agent" ]; then
  install -D -m 0755 -t "$staging/usr/local/bin" \
    "$build/userspace/sluice-agent" "$build/userspace/sluice-gateway" "$build/userspace/sluicectl"
  install -D -m 0644 -t "$staging/usr/local/share/sluice/examples/istio" "$root"/examples/istio/*.yaml
  install -D -m 0644 -t "$staging/usr/local/share/sluice/examples" "$root/examples/seed-native.yaml"
fi
for bin in sluice-agent sluice-gateway sluicectl; do
  [ -x "$staging/usr/local/bin/$bin" ] || { echo "image.sh: $bin was not installed" >&2; exit 1; }
  strip --strip-debug "$staging/usr/local/bin/$bin"
done

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
packages=$(grep -v '^#' "$root/deploy/docker/runtime-packages.txt" | paste -sd, -)
rootfs=${output:-$work/rootfs.tar}
# minbase without documentation, as debian:12-slim; the user as the Dockerfile makes it.
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='chroot "$1" groupadd --system -K SYS_GID_MAX=65532 --gid 65532 sluice' \
  --customize-hook='chroot "$1" useradd --system -K SYS_UID_MAX=65532 --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice' \
  --customize-hook="sync-in $staging /" \
  --customize-hook='setcap cap_net_raw=ep "$1"/usr/local/bin/sluice-gateway' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$rootfs" "$sources"

# An image imported from a tar has no config: set what the Dockerfile's base and
# instructions set.
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'USER 65532:65532' \
  --change 'CMD ["/usr/local/bin/sluicectl", "--version"]' \
  --change "LABEL org.opencontainers.image.title=sluice" \
  --change "LABEL org.opencontainers.image.version=$tag" \
  "$rootfs" "localhost/sluice:$tag" > /dev/null
size=$(podman image inspect --format '{{.Size}}' "localhost/sluice:$tag")
echo "image.sh: localhost/sluice:$tag, $((size / 1024 / 1024)) MiB ($size bytes)"
