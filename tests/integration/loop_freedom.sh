#!/usr/bin/env bash
# The agent's own connections are never redirected, by two independent guards: its cgroup
# is not enabled, and its sockets carry SL_AGENT_SOCKET_MARK. Remove each in turn; the
# other holds. The agent's own :443 connections come from ALLOW_ANY pass-through.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules native
sed -i 's/^hosts:/outboundTrafficPolicy:\n  mode: ALLOW_ANY\nhosts:/' "$SL_RUN_DIR/rules.yaml"
# ALLOW_ANY goes straight to the origin: let the egress node route the node's own traffic.
sl_host_exec egress sysctl -qw net.ipv4.ip_forward=1
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }

body=$(pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR)
check_contains "control: ALLOW_ANY passes an unlisted host directly (origin sees the node)" "$body" \
  "^hello from $SL_DENIED_HOST"
check "the agent logged the direct flow" wait_for_log agent "sni=$SL_DENIED_HOST rule=- via=direct .*result=ok"

# Guard 1 removed: the agent's own cgroup enabled. The mark still keeps it out.
out=$(ctl enable "$(sl_cgroup_name host-node)")
check_contains "the agent's cgroup is now enabled" "$out" "host-node: enabled"
marked=$(kernel_counter agent_socket)
body=$(pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR)
check_contains "guard 1 removed: the flow still works (no loop)" "$body" "^hello from $SL_DENIED_HOST"
check "guard 1 removed: the mark guard fired" test "$(kernel_counter agent_socket)" -gt "$marked"
check_not_contains "guard 1 removed: the agent never accepted its own connection" "$(log_of agent)" \
  "src=198.18.3.1|src=198.18.0.1"
ctl disable "$(sl_cgroup_name host-node)" > /dev/null

# Guard 2 removed: no socket mark. The unenrolled cgroup still keeps it out.
sl_stop agent
sl_start_agent --test-no-socket-mark
marked=$(kernel_counter agent_socket)
redirected=$(kernel_counter redirected)
body=$(pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR)
check_contains "guard 2 removed: the flow still works (no loop)" "$body" "^hello from $SL_DENIED_HOST"
check "guard 2 removed: no program ran for the agent's socket (mark counter unchanged)" \
  test "$(kernel_counter agent_socket)" -eq "$marked"
check "guard 2 removed: only the app's connect was redirected" \
  test "$(kernel_counter redirected)" -eq "$((redirected + 1))"
