#!/usr/bin/env bash
# How the agent reads a ClientHello, from a pod: at once when it is there at accept (the
# usual case), and under the hello deadline when it comes in pieces, late or never.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

sed -i 's/^  clientHelloTimeoutMs: 5000/  clientHelloTimeoutMs: 1500/' "$SL_RUN_DIR/rules.yaml"
check "a 1.5 s hello deadline is loaded" wait_for_log agent "rules reloaded \(file changed\) version=2"

# app MODE: one connection to the allowed host from pod-a. Prints how many bytes came
# back (the origin's TLS answer), how the connection ended and when (ms after connect).
#   pieces   the hello in three writes: 1 byte, 200 ms, 10 bytes, 200 ms, the rest
#   late     connect, 400 ms of silence, then the whole hello
#   silent   connect and say nothing
#   close    connect, make the file $APP_CONNECTED, close once the file $APP_CLOSE_WHEN exists
app() {
  sl_pod_exec pod-a env PYTHONPATH="$SL_ROOT/tests/tools" python3 - "$1" $SL_ALLOWED_ADDR $SL_ALLOWED_HOST <<'PY'
import os, socket, sys, time
from tls_hello import client_hello
mode, addr, host = sys.argv[1:4]
hello = client_hello(host)
s = socket.create_connection((addr, 443), timeout=5)
connected = time.monotonic()
if mode == "close":
    open(os.environ["APP_CONNECTED"], "w").close()
    while not os.path.exists(os.environ["APP_CLOSE_WHEN"]) and time.monotonic() < connected + 5:
        time.sleep(0.02)
    s.close()
    print("closed")
    sys.exit(0)
if mode == "pieces":
    for piece in (hello[:1], hello[1:11], hello[11:]):
        s.sendall(piece)
        time.sleep(0.2)
elif mode == "late":
    time.sleep(0.4)
    s.sendall(hello)
got = b""
def end(how):
    print(f"bytes={len(got)} end={how} after_ms={int((time.monotonic() - connected) * 1000)}")
try:
    while len(got) < 5:
        chunk = s.recv(4096)
        if not chunk:
            end("eof")
            sys.exit(0)
        got += chunk
    end("open")
except ConnectionResetError:
    end("reset")
except socket.timeout:
    end("timeout")
PY
}

out=$(app pieces)
check_contains "a hello in three pieces, 200 ms apart, reaches the origin" "$out" "^bytes=([5-9]|[0-9]{2,}) end=open"
out=$(app late)
check_contains "a hello sent 400 ms after connect reaches the origin" "$out" "^bytes=([5-9]|[0-9]{2,}) end=open"
tunnelled() { grep -c "sni=$SL_ALLOWED_HOST rule=$SL_ALLOWED_HOST .*tunnel=h2" "$SL_RUN_DIR/agent.log"; }
for _ in $(seq 100); do [ "$(tunnelled)" -ge 2 ] && break; sleep 0.05; done
check "both were allowed and tunnelled" test "$(tunnelled)" -eq 2

out=$(app silent)
check_contains "a connection that says nothing is reset" "$out" "^bytes=0 end=(reset|eof)"
after_ms=$(sed -n 's/.* after_ms=\([0-9]*\).*/\1/p' <<< "$out")
check "at the hello deadline, not before (after ${after_ms:-?} ms; deadline 1500)" test "${after_ms:-0}" -ge 1450
check "and reported as client-hello-timeout" wait_for_log agent "deny .*reason=client-hello-timeout"

# Closed once the agent has taken its hand-off entry (no flow waits for the agent): closed
# sooner, before the accept, sockops removes the entry and the agent logs
# no-original-destination instead.
pending() {
  "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status | sed -n 's/^flows waiting for the agent: \([0-9]*\).*/\1/p'
}
APP_CONNECTED=$SL_RUN_DIR/close-connected APP_CLOSE_WHEN=$SL_RUN_DIR/close-now app close > /dev/null &
app_pid=$!
for _ in $(seq 100); do [ -e "$SL_RUN_DIR/close-connected" ] && break; sleep 0.05; done
for _ in $(seq 100); do [ "$(pending)" = 0 ] && break; sleep 0.05; done
check "the agent took the closing connection's hand-off entry" test "$(pending)" = 0 -a -e "$SL_RUN_DIR/close-connected"
touch "$SL_RUN_DIR/close-now"
wait $app_pid
check "a connection closed before its hello is reported as such" \
  wait_for_log agent "deny .*reason=client-closed-before-hello"
check_not_contains "no hello read ended in a read error" "$(log_of agent)" "reason=client-read-error"
