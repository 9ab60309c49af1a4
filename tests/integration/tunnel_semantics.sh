#!/usr/bin/env bash
# The tunnel's truth table end to end: a real app socket in pod-a, the agent, the HTTP/2
# CONNECT tunnel, the gateway and an origin this test controls (tunnel/origin.py), one
# origin address per behaviour. Each row: what one side does -> what the other side sees.
SL_EXTRA_ORIGINS=(fin.tunnel.test=198.18.100.31 rst.tunnel.test=198.18.100.32 half.tunnel.test=198.18.100.33
  watch.tunnel.test=198.18.100.34 silent.tunnel.test=198.18.100.35)
source "$(dirname "$0")/../lib/harness.sh"
here=$(cd "$(dirname "$0")" && pwd)
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
rules=$SL_RUN_DIR/rules.yaml
sed -i 's/^hosts:$/hosts:\n  - name: "*.tunnel.test"\n    ports: [443]/' "$rules"
# PING often (the PING timeout row), with 1.5 s to answer: a shorter timeout could end a
# tunnel in the other rows whenever a busy machine stalls a daemon for a moment.
sed -i 's/^    address: 198.18.3.2:15443$/&\n    pingIntervalMs: 300\n    pingTimeoutMs: 1500/' "$rules"
check "the rules allow *.tunnel.test and ping the tunnel every 300 ms" grep -q "pingIntervalMs: 300" "$rules"
for origin in fin=31 rst=32 half=33 watch=34 silent=35; do
  sl_spawn "origin-${origin%=*}" inet python3 "$here/tunnel/origin.py" 198.18.100.${origin#*=} "${origin%=*}" \
    "$SL_RUN_DIR/origin-events.log"
done
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
for _ in $(seq 50); do [ "$(sl_host_exec inet ss -Hltn 'sport = :443' | grep -c 198.18.100.3)" -ge 5 ] && break; sleep 0.1; done

app() { # HOST ADDR ACTION: the app in pod-a
  sl_pod_exec pod-a env APP_TIMEOUT=${APP_TIMEOUT:-8} APP_SAY_FIRST=${APP_SAY_FIRST:-0} CA="$SL_RUN_DIR/pki/public-ca.pem" python3 "$here/tunnel/app.py" \
    "$2" "$1" "$3" 2>&1
}
origin_saw() { wait_for_log origin-events "$1" 5; }
gateway_pid() { awk '$2=="gateway"{print $1}' "$SL_RUN_DIR/pids" | tail -1; }

# Origin FIN: the app gets every byte, then EOF, and may still send (half-close).
out=$(app fin.tunnel.test 198.18.100.31 sendmore)
check_contains "origin FIN: the app reads the origin's bytes, then EOF, and can still send" "$out" \
  "^recv=12 end=eof sent-more$"
check "origin FIN: the origin got the app's late bytes, then its FIN" origin_saw "^fin client-eof after=4$"
check "origin FIN: the agent logs the flow as ok" wait_for_log agent "sni=fin.tunnel.test .*result=ok"

# Origin RST: the app's connection is reset.
out=$(app rst.tunnel.test 198.18.100.32 read)
check_contains "origin RST: the app sees a reset" "$out" "end=reset"
check "origin RST: the gateway saw the origin's reset" wait_for_log gateway \
  "sni=rst.tunnel.test .*result=relay-error detail=\"?Connection reset by peer"
check "origin RST: the agent got RST_STREAM" wait_for_log agent "sni=rst.tunnel.test .*result=reset detail=stream-reset"

# App FIN: the origin sees EOF after every byte, and can still answer.
out=$(app half.tunnel.test 198.18.100.33 fin)
check_contains "app FIN: the app still receives the origin's answer after its FIN, then EOF" "$out" "^recv=3 end=eof$"
check "app FIN: the origin saw EOF" origin_saw "^half client-eof after=0$"

# App RST: the origin's connection is reset.
out=$(app watch.tunnel.test 198.18.100.34 rst)
check_contains "app RST: the app got a byte and reset" "$out" "^recv=12 end=sent-reset$"
check "app RST: the origin sees a reset" origin_saw "^watch client-reset"
# App RST before the origin sent a byte (the agent still waits for one, able to retry):
# the reset is passed on as a reset, not as a FIN.
APP_RESET_WHEN=$SL_RUN_DIR/reset-now app silent.tunnel.test 198.18.100.35 rstnow > "$SL_RUN_DIR/app-rstnow.log" &
app_pid=$!
check "app RST before any byte back: the hello reached the origin" origin_saw "^silent first="
touch "$SL_RUN_DIR/reset-now"
wait $app_pid
check "app RST before any byte back: the origin sees a reset, not a FIN" origin_saw "^silent client-reset"

# Refusal at the gateway (a name its DNS does not know): the app is reset, having
# received nothing; the agent logs the gateway's reason.
out=$(app unknown.tunnel.test 198.18.100.36 read)
check_contains "refusal at the gateway: the app sees a reset and no byte" "$out" "^recv=0 end=reset$"
check "refusal at the gateway: the agent logs the gateway's reason" wait_for_log agent \
  "sni=unknown.tunnel.test .*result=gateway-refused detail=\"?dns-failed:unknown.tunnel.test"
check "refusal at the gateway: the gateway logs it with the agent's connection id" wait_for_log gateway \
  "sni=unknown.tunnel.test .*result=dns-failed .*connection_id=[0-9a-f]{16}( |\$)"

# The tunnel's PING timeout: the gateway freezes (SIGSTOP); an open flow (one that has
# had bytes from the origin, so it is not retried) is reset once a PING goes unanswered,
# and the pool reconnects when the gateway wakes.
: > "$SL_RUN_DIR/origin-events.log"
APP_SAY_FIRST=1 APP_TIMEOUT=15 app watch.tunnel.test 198.18.100.34 read > "$SL_RUN_DIR/app-ping.log" &
app_pid=$!
check "PING timeout: the flow reached the origin" origin_saw "^watch first="
check "PING timeout: the origin's bytes reached the app" wait_for_log app-ping "^first$"
gw=$(gateway_pid)
kill -STOP "$gw"
start=$(date +%s%N)
wait "$app_pid"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$gw"
check_contains "PING timeout: the app sees a reset" "$(cat "$SL_RUN_DIR/app-ping.log")" "^recv=12 end=reset$"
# At worst interval + timeout (1.8 s): the STOP may come just after a PING's answer, and
# the next PING goes an interval later. The bound leaves a loaded machine slack, and is
# far below the app's 15 s.
check "PING timeout: within interval + timeout and some slack (${elapsed_ms} ms)" test "$elapsed_ms" -lt 6000
check "PING timeout: the agent says why" wait_for_log agent "tunnel gateway=198.18.3.2:15443 result=lost:ping-timeout"
check "PING timeout: the origin's connection is reset too, once the gateway wakes" origin_saw "^watch client-reset"
out=$(app www.googleapis.com $SL_ALLOWED_ADDR tls)
check_contains "after the PING timeout a new connection works (the pool reconnected)" "$out" "^ok "

# The gateway killed mid-stream: the open flow is reset; nothing else.
: > "$SL_RUN_DIR/origin-events.log"
APP_SAY_FIRST=1 APP_TIMEOUT=15 app watch.tunnel.test 198.18.100.34 read > "$SL_RUN_DIR/app-kill.log" &
app_pid=$!
check "gateway killed: the flow reached the origin" origin_saw "^watch first="
check "gateway killed: the origin's bytes reached the app" wait_for_log app-kill "^first$"
kill -KILL "$(gateway_pid)"
wait "$app_pid"
check_contains "gateway killed: the app sees a reset" "$(cat "$SL_RUN_DIR/app-kill.log")" "^recv=12 end=reset$"
check "gateway killed: the agent logs the tunnel lost" wait_for_log agent "tunnel gateway=198.18.3.2:15443 result=lost:"

# Gateway unreachable: a new connection is reset at once, with the reason logged.
start=$(date +%s%N)
out=$(app www.googleapis.com $SL_ALLOWED_ADDR read)
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check_contains "gateway unreachable: the app sees a reset and no byte" "$out" "^recv=0 end=reset$"
check "gateway unreachable: promptly (${elapsed_ms} ms, connect timeout 5000)" test "$elapsed_ms" -lt 5500
check "gateway unreachable: the agent names it" wait_for_log agent "result=no-gateway-available detail=\"?198.18.3.2:15443="

# Gateway restart: the pool reconnects with backoff; new connections work again.
sed -i "/ gateway$/d" "$SL_RUN_DIR/pids"
mv "$SL_RUN_DIR/gateway.log" "$SL_RUN_DIR/gateway-1.log"
mapfile -t args < <(sl_config_args)
sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}"
sl_wait_listen egress $SL_GATEWAY_PORT
ok_after=""
for _ in $(seq 40); do
  out=$(APP_TIMEOUT=3 app www.googleapis.com $SL_ALLOWED_ADDR tls)
  case $out in ok*) ok_after=yes && break ;; esac
  sleep 0.25
done
check "gateway restart: new connections work again" test -n "$ok_after"
check "gateway restart: the agent logs the recovery" wait_for_log agent "tunnel gateway=198.18.3.2:15443 result=recovered"
