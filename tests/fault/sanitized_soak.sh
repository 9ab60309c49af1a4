#!/usr/bin/env bash
# The soak (fault/soak.sh, SL_SOAK_SECONDS default 60) with both daemons built with
# AddressSanitizer and UndefinedBehaviorSanitizer (-DSLUICE_SANITIZE=address,undefined,
# -fno-sanitize-recover=all) in a second build directory (SL_ASAN_BUILD, default
# $SL_BUILD/asan; only the daemons, sluicectl and sl-probe are built: about 5 minutes on
# 2 cores without ccache). Any sanitizer report (memory error, leak at exit, undefined
# behaviour) fails the test.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SL_BUILD:-$root/build}
asan=${SL_ASAN_BUILD:-$build/asan}
fail() {
  echo "not ok - $1"
  [ -f "$2" ] && tail -40 "$2"
  echo "0 passed, 1 failed"
  exit 1
}
launcher=()
if command -v ccache > /dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
start=$(date +%s)
cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ \
  -DSLUICE_SANITIZE=address,undefined "${launcher[@]}" > "$asan.configure.log" 2>&1 ||
  fail "configure the sanitized build in $asan" "$asan.configure.log"
cmake --build "$asan" -j "$(nproc)" --target sluice-agent sluice-gateway sluicectl sl-probe > "$asan.build.log" 2>&1 ||
  fail "build the sanitized daemons in $asan" "$asan.build.log"
echo "# sanitized daemons built in $(($(date +%s) - start)) s ($asan)"
for daemon in sluice-agent sluice-gateway; do
  libs=$(ldd "$asan/userspace/$daemon" 2>&1)
  grep -q libasan <<< "$libs" && grep -q libubsan <<< "$libs" ||
    fail "$daemon in $asan is built with AddressSanitizer and UBSan" ""
done
export SL_BUILD=$asan SL_PROBE=$asan/tests/sl-probe SL_SANITIZED=1
exec bash "$root/tests/fault/soak.sh"
