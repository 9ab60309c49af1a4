#!/usr/bin/env bash
# Soak: mixed traffic at a bounded rate (about one round a second) for SL_SOAK_SECONDS
# (default 60; the issue's long run: SL_SOAK_SECONDS=600, see the README), while the
# agent's and the gateway's RSS and open descriptors are sampled every SL_SOAK_SAMPLE_S
# (5) seconds. Each round from pod-a: an allowed flow (curl), a denied one (curl), a
# garbage "hello", an aborted flow (openssl s_client killed mid-session), and every other
# round an idle connection that never sends its hello (reset at the 2 s hello timeout);
# both daemons reload their rules (SIGHUP) every 20 s. Asserted: every allowed flow
# served, every denied/garbage one refused; afterwards the descriptors of both daemons
# back at their baseline, the hand-off map empty, no error lines in either log, and
# both daemons stop cleanly on SIGTERM. Reported: least-squares slopes of RSS (KiB/min)
# and descriptors (fds/min). With SL_SANITIZED=1 (fault/sanitized_soak.sh: ASan+UBSan
# daemons) any sanitizer report fails the test.
source "$(dirname "$0")/../lib/harness.sh"
DURATION=${SL_SOAK_SECONDS:-60}
SAMPLE_S=${SL_SOAK_SAMPLE_S:-5}
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  # Reports to files of their own (PID appended), read at the end.
  export ASAN_OPTIONS="log_path=$SL_RUN_DIR/sanitizer-asan:detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="log_path=$SL_RUN_DIR/sanitizer-ubsan:print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan.supp"
fi
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
sed -i "s#^  clientHelloTimeoutMs: 5000#  clientHelloTimeoutMs: 2000#" "$SL_RUN_DIR/rules.yaml"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
pid_of() { awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1; }
agent_pid=$(pid_of agent)
gateway_pid=$(pid_of gateway)
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
ADMIN=127.0.0.1:15020
metric() { sl_host_exec "$1" curl -sS -m 5 "http://$ADMIN/metrics" | awk -v s="$2" '$1==s{print int($2)}'; }
ca=$SL_RUN_DIR/pki/public-ca.pem
cg_a=$(sl_cgroup_root)/pod-a
ns_a=$(sl_netns_path pod-a)

body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "a first flow is served" "$body" "^hello from $SL_ALLOWED_HOST"
sleep 2
agent_fds0=$(fds $agent_pid)
gateway_fds0=$(fds $gateway_pid)
handoff0=$(metric node sluice_handoff_map_entries)
echo "# baseline: agent rss $(rss $agent_pid) KiB fds $agent_fds0, gateway rss $(rss $gateway_pid) KiB fds $gateway_fds0, hand-off entries ${handoff0:-?}"

# The sampler: "seconds agent_rss agent_fds gateway_rss gateway_fds" every SAMPLE_S.
samples=$SL_RUN_DIR/samples.txt
(
  start=$(date +%s)
  while kill -0 $agent_pid 2> /dev/null && kill -0 $gateway_pid 2> /dev/null; do
    echo "$(($(date +%s) - start)) $(rss $agent_pid) $(fds $agent_pid) $(rss $gateway_pid) $(fds $gateway_pid)" >> "$samples"
    sleep "$SAMPLE_S"
  done
) &
echo "$! sampler" >> "$SL_RUN_DIR/pids"

allowed=0 allowed_ok=0 denied=0 denied_ok=0 garbage=0 garbage_ok=0 aborted=0 idle=0 reloads=0
end=$(($(date +%s) + DURATION))
next_reload=$(($(date +%s) + 20))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  allowed=$((allowed + 1))
  body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
  if grep -q "^hello from $SL_ALLOWED_HOST" <<< "$body"; then
    allowed_ok=$((allowed_ok + 1))
  else
    echo "# round $round: allowed flow failed: $body"
  fi
  denied=$((denied + 1))
  body=$(pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR 2>&1)
  if grep -Eq "reset by peer|SSL_ERROR_SYSCALL|Connection reset" <<< "$body"; then
    denied_ok=$((denied_ok + 1))
  else
    echo "# round $round: denied flow not refused: $body"
  fi
  garbage=$((garbage + 1))
  out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 3000 \
    --send "GET / HTTP/1.1 this is no ClientHello" --read)
  if grep -Eq "ECONNRESET|read=eof" <<< "$out"; then garbage_ok=$((garbage_ok + 1)); else echo "# garbage: $out"; fi
  # Aborted: a TLS session through the tunnel, killed (SIGKILL) while it is open.
  aborted=$((aborted + 1))
  sleep 1 | timeout -s KILL 0.5 bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
    "$cg_a" "$ns_a" openssl s_client -quiet -connect $SL_ALLOWED_ADDR:443 -servername $SL_ALLOWED_HOST \
    -CAfile "$ca" > /dev/null 2>&1
  if [ $((round % 2)) -eq 0 ]; then
    idle=$((idle + 1))
    sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 4000 --read > /dev/null 2>&1 &
  fi
  if [ "$(date +%s)" -ge "$next_reload" ]; then
    reloads=$((reloads + 1))
    kill -HUP $agent_pid $gateway_pid
    next_reload=$(($(date +%s) + 20))
  fi
  sleep 0.2
done
wait_idle_start=$(date +%s)
sleep 3 # the last idle connections reach their hello timeout
sl_stop sampler
echo "# $round rounds in ${DURATION}s: allowed $allowed_ok/$allowed, denied $denied_ok/$denied, garbage $garbage_ok/$garbage, aborted $aborted, idle $idle, reloads $reloads"
check "every allowed flow was served ($allowed_ok/$allowed)" test $allowed_ok -eq $allowed
check "every denied flow was refused ($denied_ok/$denied)" test $denied_ok -eq $denied
check "every garbage hello was reset ($garbage_ok/$garbage)" test $garbage_ok -eq $garbage
[ $reloads -gt 0 ] && check "the daemons took the SIGHUP reloads ($reloads)" wait_for_log agent "rules reloaded \(SIGHUP\)" 5

# Slopes (least squares) over the samples, per minute.
# The first minute apart as well: the daemons hand back their start-up memory then.
slope() { # COLUMN [FROM-SECONDS]
  awk -v c="$1" -v from="${2:-0}" '$1 >= from {x=$1/60; y=$c; n++; sx+=x; sy+=y; sxx+=x*x; sxy+=x*y}
    END {d=n*sxx-sx*sx; if (n<2 || d==0) print "n/a"; else printf "%.1f", (n*sxy-sx*sy)/d}' "$samples"
}
echo "# samples ($(grep -c . "$samples"), every ${SAMPLE_S}s; seconds agent_rss_kib agent_fds gateway_rss_kib gateway_fds):"
awk 'NR % 12 == 1' "$samples" | sed 's/^/#   /'
echo "# agent:   RSS slope $(slope 2) KiB/min ($(slope 2 60) after the first minute), descriptors $(slope 3) fds/min"
echo "# gateway: RSS slope $(slope 4) KiB/min ($(slope 4 60) after the first minute), descriptors $(slope 5) fds/min"

# Back to the baseline.
for _ in $(seq 100); do
  [ "$(fds $agent_pid)" -le "$agent_fds0" ] && [ "$(fds $gateway_pid)" -le "$gateway_fds0" ] && break
  sleep 0.1
done
echo "# after $(($(date +%s) - wait_idle_start))s: agent fds $(fds $agent_pid) (baseline $agent_fds0), gateway fds $(fds $gateway_pid) (baseline $gateway_fds0); agent rss $(rss $agent_pid) KiB, gateway rss $(rss $gateway_pid) KiB"
check "the agent's descriptors return to the baseline ($(fds $agent_pid) <= $agent_fds0)" test "$(fds $agent_pid)" -le "$agent_fds0"
check "the gateway's descriptors return to the baseline ($(fds $gateway_pid) <= $gateway_fds0)" \
  test "$(fds $gateway_pid)" -le "$gateway_fds0"
handoff=$(metric node sluice_handoff_map_entries)
check "the hand-off map is back at its baseline (${handoff:-?} entries, baseline ${handoff0:-?})" \
  test -n "$handoff" -a "${handoff:-x}" = "${handoff0:-y}"

# No error lines: the soak's refusals are warnings (denies) or info (flow records).
errors=$(grep -hE '^[0-9T:.-]+Z? (error|critical) ' "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/gateway.log")
check "no error lines in either log ($(grep -c . <<< "$errors") found)" test -z "$errors"
[ -n "$errors" ] && head -10 <<< "$errors" | sed 's/^/#   /'

# Both stop cleanly (a sanitizer's leak check runs at exit).
stop_clean() { # NAME PID
  kill -TERM "$2"
  for _ in $(seq 200); do kill -0 "$2" 2> /dev/null || break; sleep 0.1; done
  wait "$2"
  local rc=$?
  sed -i "/^$2 $1\$/d" "$SL_RUN_DIR/pids"
  check "the $1 stops on SIGTERM and exits 0 (rc=$rc)" test $rc -eq 0
}
stop_clean agent $agent_pid
stop_clean gateway $gateway_pid
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  reports=$(ls "$SL_RUN_DIR"/sanitizer-* 2> /dev/null)
  check "no sanitizer report (ASan, UBSan, LSan)" test -z "$reports"
  for f in $reports; do
    echo "== $f"
    head -60 "$f"
  done
  check_not_contains "no sanitizer line in the daemons' logs" "$(cat "$SL_RUN_DIR/agent.log" "$SL_RUN_DIR/gateway.log")" \
    "AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer"
fi
