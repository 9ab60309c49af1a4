# Shared by the root tests: a private topology per test (unique namespaces, cgroups and
# pin directory), assertions that count, logs on failure, and teardown on every exit.
set -uo pipefail

SL_ROOT=${SL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export SL_PREFIX=${SL_PREFIX:-t$$}
export SL_RUN_DIR=${SL_RUN_DIR:-/tmp/sluice-test-$SL_PREFIX}
export SL_PIN_DIR=${SL_PIN_DIR:-/sys/fs/bpf/sluice-test-$SL_PREFIX}
# shellcheck source=../../scripts/lib/topology.sh
source "$SL_ROOT/scripts/lib/topology.sh"
SL_PROBE=${SL_PROBE:-$SL_BUILD/tests/sl-probe}
SL_TUNNEL_CLIENT=${SL_TUNNEL_CLIENT:-$SL_BUILD/tests/sl-tunnel-client}

if [ "$(id -u)" -ne 0 ]; then
  echo "FAIL: this test needs root (CAP_BPF, CAP_NET_ADMIN, cgroups); CI runs it as root" >&2
  exit 1
fi
for tool in "$SL_BUILD/userspace/sluice-agent" "$SL_BUILD/userspace/sluice-gateway" "$SL_PROBE"; do
  [ -x "$tool" ] || { echo "FAIL: $tool is not built" >&2; exit 1; }
done

# Results go to a file as well as stdout, so a check made in a subshell (a pipeline,
# $(...)) still counts.
sl_results=$(mktemp /tmp/sluice-results.XXXXXX)
ok() {
  echo "ok" >> "$sl_results"
  echo "ok - $*"
}
not_ok() {
  echo "not ok" >> "$sl_results"
  echo "not ok - $*"
}
# check LABEL CMD...: passes if CMD exits 0.
check() {
  local label=$1
  shift
  if "$@"; then ok "$label"; else not_ok "$label"; fi
}
# check_contains LABEL TEXT PATTERN (extended regex)
check_contains() {
  if grep -Eq -- "$3" <<< "$2"; then ok "$1"; else not_ok "$1: no match for /$3/ in: $2"; fi
}
check_not_contains() {
  if grep -Eq -- "$3" <<< "$2"; then not_ok "$1: unexpected /$3/ in: $(grep -E -- "$3" <<< "$2" | head -3)"; else ok "$1"; fi
}
log_of() { cat "$SL_RUN_DIR/$1.log" 2>/dev/null; }
# wait_for_log NAME PATTERN [SECONDS]: log lines are written as they happen.
wait_for_log() {
  local i
  for ((i = 0; i < ${3:-5} * 20; i++)); do
    grep -Eq -- "$2" "$SL_RUN_DIR/$1.log" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# kernel_counter NAME [PIN_DIR]: a counter from `sluicectl status` (this test's pins by default).
kernel_counter() {
  "$SL_BUILD/userspace/sluicectl" --pin-dir "${2:-$SL_PIN_DIR}" status |
    awk -v n="$1" '/^counters:/{inside=1; next} /^[^ ]/{inside=0} inside && $1==n {print $2}'
}

# probe_local_port TEXT: the local port of an `sl-probe connect` answer (IPv4, IPv6 or
# v4-mapped), the key the agent's log line carries as src.
probe_local_port() { sed -n 's/.*local=\(\[[^]]*\]\|[0-9.]*\):\([0-9]*\).*/\2/p' <<< "$1"; }

sl_harness_exit() {
  local code=$?
  local sl_checks sl_failures
  sl_checks=$(grep -c . "$sl_results")
  sl_failures=$(grep -c '^not ok' "$sl_results")
  rm -f "$sl_results"
  if [ "$sl_failures" -gt 0 ] || [ "$code" -ne 0 ]; then
    echo "---- logs of $SL_PREFIX ----"
    for f in "$SL_RUN_DIR"/*.log; do
      [ -f "$f" ] && { echo "== $(basename "$f")"; tail -n 40 "$f"; }
    done
  fi
  # A run that leaves namespaces, cgroups or pins behind fails, even if every check passed.
  sl_topology_down || { sl_failures=$((sl_failures + 1)); sl_checks=$((sl_checks + 1)); echo "not ok - teardown left state behind"; }
  echo "$((sl_checks - sl_failures)) passed, $sl_failures failed"
  if [ "$sl_failures" -gt 0 ] || [ "$sl_checks" -eq 0 ]; then exit 1; fi
  exit "$code"
}
trap sl_harness_exit EXIT
trap 'exit 130' INT TERM

# The usual start: topology, rules, gateway and agent.
harness_start() {
  sl_topology_up || { not_ok "topology up"; exit 1; }
  sl_write_rules || { not_ok "rules written"; exit 1; }
  sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
}

# pod_curl POD HOST [ADDR] [extra curl args...]: a real client, trusting the public CA,
# with the name resolved as the pod's DNS would (the test DNS is on the gateway's side).
pod_curl() {
  local pod=$1 host=$2 addr=$3
  shift 3
  sl_pod_exec "$pod" curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
    --resolve "$host:443:$addr" "$@" "https://$host/"
}

# open_stream NAME: a TLS session from pod-a to the allowed host, kept open (its stdin is
# a fifo held on fd 3); its output goes to $SL_RUN_DIR/NAME.log.
open_stream() {
  mkfifo "$SL_RUN_DIR/$1.in"
  sl_pod_exec pod-a openssl s_client -quiet -connect $SL_ALLOWED_ADDR:443 -servername $SL_ALLOWED_HOST \
    -CAfile "$SL_RUN_DIR/pki/public-ca.pem" < "$SL_RUN_DIR/$1.in" > "$SL_RUN_DIR/$1.log" 2>&1 &
  echo "$! $1" >> "$SL_RUN_DIR/pids"
  exec 3> "$SL_RUN_DIR/$1.in"
}
# stream_request NAME: sends one HTTP request on the open stream, closes its input, and
# waits up to 5 s for the origin's answer in the stream's output.
stream_request() {
  printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' $SL_ALLOWED_HOST >&3
  exec 3>&-
  for _ in $(seq 50); do grep -q "hello from $SL_ALLOWED_HOST" "$SL_RUN_DIR/$1.log" && return 0; sleep 0.1; done
  return 1
}
# agent_established: connections the agent's listener holds now.
agent_established() { sl_host_exec node ss -Htn state established "( sport = :$SL_AGENT_PORT )" | grep -c .; }

# flood_start POD|HOST NAME FLOOD-ARGS...: tests/tools/flood.py in the pod's (or host's)
# cgroup and namespace, in the background (stopped with `sl_stop NAME`); output in NAME.log.
# Exec'd all the way down, so the recorded PID is the flood's own.
flood_start() {
  local where=$1 name=$2 cg
  shift 2
  cg=$(sl_cgroup_root)/$where
  [ -d "$cg" ] || cg=$(sl_cgroup_root)/host-$where
  bash -c 'echo $$ > "$0/cgroup.procs" && ulimit -Sn "$(ulimit -Hn)"; exec nsenter --net="$1" -- "${@:2}"' \
    "$cg" "$(sl_netns_path "$where")" python3 "$SL_ROOT/tests/tools/flood.py" "$@" > "$SL_RUN_DIR/$name.log" 2>&1 &
  echo "$! $name" >> "$SL_RUN_DIR/pids"
}
