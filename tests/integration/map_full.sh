#!/usr/bin/env bash
# When the hand-off map is full, a new redirected connect fails closed (reset, counted as
# handoff_full) and flows already established keep going.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }

open_stream stream
for _ in $(seq 40); do [ "$(agent_established)" -gt 0 ] && break; sleep 0.05; done
check "a stream is established before the map fills" test "$(agent_established)" -gt 0

# Fill sl_orig_dst to its 65536 entries with fake sources (198.19.x.y, no such client).
batch=$SL_RUN_DIR/fill.batch
awk -v pin="$SL_PIN_DIR/sl_orig_dst" 'BEGIN {
  for (i = 0; i < 65536; i++) {
    printf "map update pinned %s key hex c6 13 %02x %02x 00 00 00 00 00 00 00 00 00 00 00 00 01 bb 02 00 00 00 00 00", pin, int(i / 256), i % 256
    printf " value hex 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 bb 02 00 00 00 00 00 00 00 00 00 00 00 00 00\n"
  }
}' > "$batch"
bpftool batch file "$batch" > /dev/null 2>&1
check_contains "the hand-off map is full" "$(ctl status)" "flows waiting for the agent: 65536 of 65536"

origin_before=$(wc -l < "$SL_RUN_DIR/origin-access.log")
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
# The agent resets at accept; curl words it as a reset or, if the RST beats its connect
# check, as "Couldn't connect". Either way the origin must not have been reached.
check_contains "a new connect fails closed" "$out" "reset by peer|SSL_ERROR_SYSCALL|Couldn't connect"
check "the origin was not reached" test "$(wc -l < "$SL_RUN_DIR/origin-access.log")" -eq "$origin_before"
check_contains "the kernel counted it" "$(kernel_counter handoff_full)" "^[1-9]"
check "the agent refused it for want of a destination" wait_for_log agent "reason=no-original-destination"

check "the established stream is unaffected" stream_request stream
