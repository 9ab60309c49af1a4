#!/usr/bin/env bash
# What the agent put in the kernel, seen by bpftool rather than by sluice's own tools:
# the seven programs with their types and BTF (CO-RE loaded), one bpf_link per hook on the
# enabled cgroup, the maps with their types, and the pins. Run in the vm tier on a second
# kernel; valid on any kernel.
source "$(dirname "$0")/../lib/harness.sh"
harness_start
check_contains "the agent's kernel feature probes passed on this kernel" "$(log_of agent)" \
  "kernel $(uname -r) has every feature sluice needs \(floor: Linux [0-9.]+\)"
features=$("$SL_BUILD/userspace/sluicectl" kernel)
check_contains "sluicectl kernel finds every feature on this kernel" "$features" "^every feature sluice needs is present"
check_not_contains "and lists none missing" "$features" "MISSING"

# one_per_line: bpftool's text output, each object on one line.
one_per_line() { awk '/^[0-9]+: /{if (l) print l; l=$0; next} {l=l" "$0} END{if (l) print l}' | tr -s ' \t' ' '; }
progs=$(bpftool prog show | one_per_line)
for p in connect4 connect6 sendmsg4 sendmsg6 getpeername4 getpeername6; do
  check_contains "program sl_$p is cgroup_sock_addr with BTF" "$progs" "cgroup_sock_addr name sl_$p .* btf_id [0-9]+"
done
check_contains "program sl_sockops is sock_ops with BTF" "$progs" "sock_ops name sl_sockops .* btf_id [0-9]+"

cg_id=$(stat -c %i "$(sl_cgroup_root)/pod-a")
links=$(bpftool link show | one_per_line)
for at in inet4_connect inet6_connect udp4_sendmsg udp6_sendmsg sock_ops inet4_getpeername inet6_getpeername; do
  check_contains "a cgroup bpf_link for $at on pod-a's cgroup" "$links" "cgroup prog [0-9]+ cgroup_id $cg_id attach_type cgroup_$at( |$)"
done
pod_b_id=$(stat -c %i "$(sl_cgroup_root)/pod-b")
check_not_contains "no link on pod-b's cgroup" "$links" "cgroup_id $pod_b_id "

maps=$(bpftool map show | one_per_line)
check_contains "original destinations in socket storage" "$maps" "sk_storage name sl_sk_orig "
check_contains "bypass CIDRs in LPM tries (v4)" "$maps" "lpm_trie name sl_bypass4 "
check_contains "bypass CIDRs in LPM tries (v6)" "$maps" "lpm_trie name sl_bypass6 "
check_contains "the hand-off map is a plain hash" "$maps" "hash name sl_orig_dst "

pins=$(find "$SL_PIN_DIR" | sed "s#^$SL_PIN_DIR/##")
check_contains "links pinned per cgroup id" "$pins" "^links/$cg_id/"
check_contains "the hand-off map is pinned" "$pins" "sl_orig_dst"
# A pinned link resolves to the same program bpftool listed.
pinned_link=$(find "$SL_PIN_DIR/links/$cg_id" -type f | head -1)
check_contains "a pinned link is readable by bpftool" "$(bpftool link show pinned "$pinned_link" | one_per_line)" \
  "cgroup prog [0-9]+ cgroup_id $cg_id "

# And it redirects on this kernel.
body=$(pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR)
check_contains "the allowed host answers through sluice" "$body" "^hello from $SL_ALLOWED_HOST"
