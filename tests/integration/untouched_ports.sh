#!/usr/bin/env bash
# Only redirected ports to non-bypassed destinations from enabled cgroups are redirected:
# other ports, bypassed CIDRs and other cgroups reach their destination directly.
source "$(dirname "$0")/../lib/harness.sh"
harness_start

# Servers on the egress node (a cluster address, reachable from pods).
sl_spawn serve8443 egress "$SL_PROBE" serve $SL_EGRESS_ADDR:8443 --count 1 --timeout-ms 20000
sl_spawn serve443 egress "$SL_PROBE" serve $SL_EGRESS_ADDR:443 --count 2 --timeout-ms 20000
sl_wait_listen egress 8443 && sl_wait_listen egress 443

out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_EGRESS_ADDR:8443 --read)
check_contains "port 8443 from pod-a connects to its server" "$out" "peer=$SL_EGRESS_ADDR:8443 "
check_contains "and reads its reply" "$out" "read=hello from sl-probe"
check "the server saw pod-a itself, not the agent" wait_for_log serve8443 "accepted peer=$SL_POD_A_ADDR:"
check_contains "the kernel counted a non-redirected port" "$(kernel_counter port_ignored)" "^[1-9]"

out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_EGRESS_ADDR:443 --read)
check_contains "443 to a bypassed CIDR connects to its server" "$out" "peer=$SL_EGRESS_ADDR:443 "
check_contains "and reads its reply" "$out" "read=hello from sl-probe"
check "the server saw pod-a directly" wait_for_log serve443 "accepted peer=$SL_POD_A_ADDR:"
check_contains "the kernel counted the bypass" "$(kernel_counter bypassed)" "^[1-9]"

before=$(kernel_counter redirected)
out=$(sl_pod_exec pod-b "$SL_PROBE" connect $SL_EGRESS_ADDR:443 --read)
check_contains "pod-b (not enabled) reaches its server" "$out" "read=hello from sl-probe"
check "the server saw pod-b directly" wait_for_log serve443 "accepted peer=$SL_POD_B_ADDR:"
check_contains "no sluice program ran for pod-b" "$(kernel_counter redirected)" "^$before$"

# Control: the same probe to an external :443 from pod-a is redirected.
out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_ALLOWED_ADDR:443)
check_contains "control: external :443 from pod-a is redirected" "$(kernel_counter redirected)" "^$((before + 1))$"

# sluicectl explain agrees with what the kernel and the agent did.
explain() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" explain --config "$SL_RUN_DIR/rules.yaml" "$@"; }
out=$(explain --cgroup "$(sl_cgroup_name pod-a)" --to $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST)
check "explain: allowed exits 0" test $? -eq 0
check_contains "explain: pod-a to the allowed host is redirected and allowed" "$out" \
  "decision: allow: the gateway \(rule '$SL_ALLOWED_HOST'\) connects to $SL_ALLOWED_HOST:443"
out=$(explain --cgroup "$(sl_cgroup_name pod-a)" --to $SL_DENIED_ADDR:443 --sni $SL_DENIED_HOST)
check "explain: denied exits 4" test $? -eq 4
check_contains "explain: the denied host names the reason" "$out" "reason=host-not-allowed"
out=$(explain --cgroup "$(sl_cgroup_name pod-a)" --to $SL_EGRESS_ADDR:8443)
check_contains "explain: port 8443 is not redirected" "$out" "port 8443 is not in agent.redirectPorts"
out=$(explain --cgroup "$(sl_cgroup_name pod-b)" --to $SL_ALLOWED_ADDR:443 --sni $SL_ALLOWED_HOST)
check_contains "explain: pod-b is not enabled" "$out" "the cgroup is not enabled"
