#!/usr/bin/env bash
# `sluicectl enable|disable` takes effect at once for new connections, with no agent
# restart, and an enabled cgroup covers cgroups created inside it later.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }

out=$(pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "before: pod-b is not redirected (dropped by the node)" "$out" "Timeout was reached|timed out"

out=$(ctl enable "$(sl_cgroup_name pod-b)")
check_contains "sluicectl enable reports it" "$out" "pod-b: enabled$"
out=$(ctl enable "$(sl_cgroup_name pod-b)")
check_contains "enabling twice is harmless and says so" "$out" "pod-b: already enabled$"
body=$(pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "after enable: pod-b reaches the host through the gateway" "$body" "you came from $SL_EGRESS_INET_ADDR"
check "the agent logged pod-b's flow" wait_for_log agent "src=$SL_POD_B_ADDR:[0-9]+ dst=$SL_ALLOWED_ADDR:443 .*result=ok"

out=$(ctl disable "$(sl_cgroup_name pod-b)")
check_contains "sluicectl disable reports it" "$out" "pod-b: disabled$"
out=$(pod_curl pod-b $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "after disable: pod-b is dropped again" "$out" "Timeout was reached|timed out"

# A container cgroup created inside the enabled pod-a after enabling is covered.
mkdir "$(sl_cgroup_root)/pod-a/container-1"
body=$(bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
  "$(sl_cgroup_root)/pod-a/container-1" "$(sl_netns_path pod-a)" \
  curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
  --resolve "$SL_ALLOWED_HOST:443:$SL_ALLOWED_ADDR" "https://$SL_ALLOWED_HOST/")
check_contains "a nested cgroup of an enabled pod is redirected" "$body" "you came from $SL_EGRESS_INET_ADDR"
child=$(stat -c %i "$(sl_cgroup_root)/pod-a/container-1")
check "the agent logged the nested cgroup's id" wait_for_log agent "flow cgroup=$child "

out=$(ctl enable /no/such/cgroup 2>&1)
check_contains "enabling a missing cgroup fails with the path" "$out" "no/such/cgroup: No such file or directory"

# uninstall: every link detached, every pin gone, and said so.
out=$(ctl uninstall)
check_contains "uninstall names the detached cgroup" "$out" "detached cgroup id=[0-9]+ .*pod-a"
check_contains "uninstall names the removed programs and maps" "$out" "removed $SL_PIN_DIR/progs/sl_connect4"
check_contains "uninstall names the maps" "$out" "removed $SL_PIN_DIR/sl_orig_dst"
check "the pin directory is gone" test ! -e "$SL_PIN_DIR"
check_not_contains "no sluice program is left on pod-a's cgroup" \
  "$(bpftool cgroup show "$(sl_cgroup_root)/pod-a" 2>&1)" "sl_"
out=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1)
check_contains "after uninstall pod-a is no longer redirected (dropped by the node)" "$out" \
  "Timeout was reached|timed out"
