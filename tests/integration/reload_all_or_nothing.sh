#!/usr/bin/env bash
# A rejected reload changes nothing in the kernel. Each bad rule set below adds a bypass
# CIDR over the denied origin; it also names a cgroup that does not exist, or more
# bypass CIDRs than the kernel map holds. The agent refuses it before touching a map:
# the version in force stays, `sluicectl status` and the log agree, and a connect to an
# address in the rejected bypass CIDR is still redirected (and denied by the agent).
source "$(dirname "$0")/../lib/harness.sh"
harness_start
ctl() { "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" "$@"; }
rules=$SL_RUN_DIR/rules.yaml
cp "$rules" "$SL_RUN_DIR/good.yaml"

# denied_still_redirected LABEL: the denied origin's address is still taken by the agent.
denied_still_redirected() {
  local out port
  out=$(sl_pod_exec pod-a "$SL_PROBE" connect $SL_DENIED_ADDR:443 --hello $SL_DENIED_HOST --read)
  port=$(probe_local_port "$out")
  check "$1: a connect into the rejected bypass CIDR is still redirected and denied" wait_for_log agent \
    "deny .*src=$SL_POD_A_ADDR:$port dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"
}
# write_in_place FILE: the change arrives as one write of the whole file.
write_in_place() { cat "$1" > "$rules"; }

status=$(ctl status)
check_contains "version 1 in force" "$status" "rules version: 1"
check_not_contains "the denied origin is not bypassed" "$status" "198.18.100.0/24"

# 1. A cgroup that does not exist.
sed -e "s#    - 198.18.1.0/24#    - 198.18.100.0/24\n    - 198.18.1.0/24#" \
  -e "s#    - sluice-$SL_PREFIX/pod-a#    - sluice-$SL_PREFIX/pod-a\n    - sluice-$SL_PREFIX/no-such-pod#" \
  "$SL_RUN_DIR/good.yaml" > "$SL_RUN_DIR/missing-cgroup.yaml"
check_contains "the bad file really adds the bypass" "$(cat "$SL_RUN_DIR/missing-cgroup.yaml")" "198.18.100.0/24"
write_in_place "$SL_RUN_DIR/missing-cgroup.yaml"
check "missing cgroup: the agent rejects the rules, naming the cgroup" wait_for_log agent \
  "rules rejected .*keeping version=1: agent.cgroups: .*no-such-pod"
status=$(ctl status)
check_contains "missing cgroup: sluicectl status shows the old version" "$status" "rules version: 1"
check_not_contains "missing cgroup: the rejected bypass CIDR is not in the kernel" "$status" "198.18.100.0/24"
denied_still_redirected "missing cgroup"

# 2. More IPv4 bypass CIDRs than sl_bypass4 holds (1024), among them the denied origin's.
{
  sed -n '1,/^  bypassCidrs:/p' "$SL_RUN_DIR/good.yaml"
  echo "    - 198.18.100.0/24"
  for i in $(seq 0 1029); do echo "    - 10.$((i / 256)).$((i % 256)).0/24"; done
  sed -n '/^  bypassCidrs:/,$p' "$SL_RUN_DIR/good.yaml" | tail -n +2
} > "$SL_RUN_DIR/too-many.yaml"
write_in_place "$SL_RUN_DIR/too-many.yaml"
check "too many CIDRs: the agent rejects the rules, naming the limit" wait_for_log agent \
  "rules rejected .*keeping version=1: the rules need 10[0-9][0-9] IPv4 bypass CIDRs .*in the kernel, which holds at most 1024"
status=$(ctl status)
check_contains "too many CIDRs: sluicectl status shows the old version" "$status" "rules version: 1"
check_not_contains "too many CIDRs: no bypass CIDR of the rejected file is in the kernel" "$status" \
  "198.18.100.0/24|10\.0\.0\.0/24"
denied_still_redirected "too many CIDRs"

# 3. The good file again, now with the bypass: accepted, and only then in force.
sed "s#    - 198.18.1.0/24#    - 198.18.100.0/24\n    - 198.18.1.0/24#" "$SL_RUN_DIR/good.yaml" > "$SL_RUN_DIR/v2.yaml"
write_in_place "$SL_RUN_DIR/v2.yaml"
check "a good file is accepted as version 2" wait_for_log agent "rules reloaded \(file changed\) version=2"
status=$(ctl status)
check_contains "sluicectl status shows version 2" "$status" "rules version: 2"
check_contains "the accepted bypass CIDR is in the kernel" "$status" "198.18.100.0/24"
