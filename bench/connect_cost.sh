#!/usr/bin/env bash
# connect() cost, in one run on the netns topology: no program (pod-b, not enabled),
# sluice's programs (pod-a, enabled), and an iptables REDIRECT (pod-b with a nat rule),
# all to the same external :443. Prints a table with ratios. Needs root and a build.
#   bench/connect_cost.sh [COUNT] [ROUNDS]
set -euo pipefail
count=${1:-20000}
rounds=${2:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
export SL_PREFIX=${SL_PREFIX:-slbc$$}
export SL_RUN_DIR=/tmp/sluice-bench-$SL_PREFIX
export SL_PIN_DIR=/sys/fs/bpf/sluice-bench-$SL_PREFIX
source "$root/scripts/lib/topology.sh"
trap sl_topology_down EXIT
trap 'exit 130' INT TERM
tool=$SL_BUILD/bench/sl-connect-cost
sl_topology_up > /dev/null
sl_write_rules native
sl_start_sluice
# The agent's accept work would share the 2 cores with the measuring process: stop it.
# connect() itself does not wait for it; the RST from the empty port ends each socket.
sl_stop agent

# Rounds interleave the paths (A B C D A B C D ...) so that drift on this shared machine
# falls on all of them alike; each path's figure is the median of its rounds.
one() { sed -n 's/^median_ns=\([0-9]*\).*/\1/p'; }
declare -A samples
for ((r = 0; r < rounds; r++)); do
  samples[none]+="$(sl_pod_exec pod-b "$tool" $SL_ALLOWED_ADDR:443 "$count" 1 | one) "
  # Like for like: no program, but to where sluice sends it (the agent's address, a RST).
  samples[agent]+="$(sl_pod_exec pod-b "$tool" $SL_AGENT_ADDR:$SL_AGENT_PORT "$count" 1 | one) "
  samples[sluice]+="$(sl_pod_exec pod-a "$tool" $SL_ALLOWED_ADDR:443 "$count" 1 | one) "
  sl_host_exec pod-b iptables -t nat -A OUTPUT -p tcp --dport 443 -j REDIRECT --to-ports $SL_AGENT_PORT
  samples[iptables]+="$(sl_pod_exec pod-b "$tool" $SL_ALLOWED_ADDR:443 "$count" 1 | one) "
  sl_host_exec pod-b iptables -t nat -F OUTPUT
done
stats() { tr ' ' '\n' <<< "${samples[$1]}" | grep . | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)], v[1], v[NR]}'; }
read -r none_med none_min none_max < <(stats none)
read -r agent_med agent_min agent_max < <(stats agent)
read -r sl_med sl_min sl_max < <(stats sluice)
read -r ipt_med ipt_min ipt_max < <(stats iptables)

printf '| path | connect() ns, median | min | max | vs no program |\n|---|---|---|---|---|\n'
printf '| no program | %s | %s | %s | 1.00 |\n' "$none_med" "$none_min" "$none_max"
printf '| no program, straight to the agent address | %s | %s | %s | %.2f |\n' "$agent_med" "$agent_min" "$agent_max" \
  "$(echo "$agent_med / $none_med" | bc -l)"
printf '| sluice (connect4 + sockops) | %s | %s | %s | %.2f |\n' "$sl_med" "$sl_min" "$sl_max" \
  "$(echo "$sl_med / $none_med" | bc -l)"
printf '| iptables REDIRECT | %s | %s | %s | %.2f |\n' "$ipt_med" "$ipt_min" "$ipt_max" \
  "$(echo "$ipt_med / $none_med" | bc -l)"
printf '\nsluice programs: %d ns over the same path without them; iptables REDIRECT: %d ns over no program; sluice / iptables = %.2f\n' \
  $((sl_med - agent_med)) $((ipt_med - none_med)) "$(echo "$sl_med / $ipt_med" | bc -l)"
