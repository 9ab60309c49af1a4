#!/usr/bin/env bash
# Link pins of removed cgroups are reaped, and entries under links/ that sluice did not
# make are reported but never stop the agent, `sluicectl status` or `uninstall`.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }

gone=$(sl_cgroup_root)/short-lived
mkdir "$gone"
gone_id=$(stat -c %i "$gone")
check_contains "a short-lived cgroup is enabled" "$(ctl enable "$gone")" "enabled"
check "its link pins exist" test -d "$SL_PIN_DIR/links/$gone_id"
rmdir "$gone"
mkdir -p "$SL_PIN_DIR/links/not-a-cgroup-id"

# From the node's namespace, where the agent's admin endpoint (127.0.0.1:15020) is: exit 0
# means the agent answered and is ready.
out=$(sl_host_exec node "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status 2>&1)
check "sluicectl status still works with stray entries" test $? -eq 0
check_contains "status reports the stray directory (bpffs holds only directories and pins)" "$out" \
  "stray entry .*links/not-a-cgroup-id"

# A reload reaps; so does a restart. The kernel detaches a removed cgroup's links when it
# releases the cgroup, which happens a little after rmdir: reload until then (10 s at most).
agent_pid=$(awk '$2=="agent"{print $1}' "$SL_RUN_DIR/pids" | tail -1)
for _ in $(seq 20); do
  kill -HUP "$agent_pid"
  sleep 0.5
  grep -q "cgroup id=$gone_id is gone" "$SL_RUN_DIR/agent.log" && break
done
check "the reload reaped the removed cgroup's links" wait_for_log agent "cgroup id=$gone_id is gone: its link pins were removed"
check "its link directory is gone" test ! -e "$SL_PIN_DIR/links/$gone_id"
sl_stop agent
sl_start_agent
check "the restarted agent reports the stray entry and runs" wait_for_log agent \
  "links/not-a-cgroup-id is not a sluice link directory"
check "the restarted agent is ready" wait_for_log agent "agent ready"
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "pod-a still works through the restarted agent" "$body" "^hello from $SL_ALLOWED_HOST"
check "the stray directory was left alone" test -d "$SL_PIN_DIR/links/not-a-cgroup-id"
out=$(ctl uninstall 2>&1)
check "uninstall succeeds with stray entries" test $? -eq 0
check "uninstall removed the pin directory" test ! -e "$SL_PIN_DIR"
