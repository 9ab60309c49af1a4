#!/usr/bin/env bash
# In an enabled pod, getpeername() returns the original destination, while the agent
# receives the connection and learns the same destination from the BPF map.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

# The client sends a non-TLS line and waits for the agent's verdict, so the agent takes the
# original destination while the client is still there (a client that closes first takes
# its hand-off entry with it: on a slow VM the agent then has no destination to log).
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443 --timeout-ms 5000 --send "GET / HTTP/1.0" --read)
check_contains "connect from pod-a succeeds" "$out" "^connect=ok"
check_contains "getpeername returns the original destination" "$out" "peer=$SL_ALLOWED_ADDR:443 "
local_port=$(probe_local_port "$out")
check "agent saw the same client and destination" \
  wait_for_log agent "src=$SL_POD_A_ADDR:$local_port dst=$SL_ALLOWED_ADDR:443 sni=- reason=not-tls"
check_contains "the kernel counted the getpeername rewrite" "$(kernel_counter peername)" "^[1-9]"
check_contains "the kernel counted the redirect" "$(kernel_counter redirected)" "^[1-9]"
check_contains "the hand-off entry was taken by the agent" \
  "$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)" "flows waiting for the agent: 0 "
