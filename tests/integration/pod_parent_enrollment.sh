#!/usr/bin/env bash
# Pods enrolled from their first connect: the agent attaches at the pod parent
# (agent.kubepodsCgroup; here a private stand-in for the kubelet's kubepods, never the
# node's own), so a pod cgroup created after the agent started, and a container cgroup
# nested in it, are redirected from the very first connect. A cgroup named in
# agent.exemptCgroups is not redirected, and is counted.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
kubepods=$(sl_cgroup_root)/kubepods
mkdir -p "$kubepods/exempt-pod"
sl_write_rules native
sed -i -e "s#^  cgroups:.*#  kubepodsCgroup: sluice-$SL_PREFIX/kubepods\n  exemptCgroups: [sluice-$SL_PREFIX/kubepods/exempt-pod]\n  cgroups: []#" \
  -e "/^    - sluice-$SL_PREFIX\/pod-a/d" "$SL_RUN_DIR/rules.yaml"
check_contains "the rules enroll the pod parent, not pod-a" "$(cat "$SL_RUN_DIR/rules.yaml")" "kubepodsCgroup:"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }
check "the agent enrolled the pod parent" wait_for_log agent "cgroup $kubepods id=[0-9]+ enabled"
status=$("$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status)
check_contains "sluicectl status lists the exempt cgroup" "$status" "exempt cgroups: $kubepods/exempt-pod"

# in_cgroup CGROUP CMD...: runs CMD in pod-a's network namespace and the given cgroup.
in_cgroup() {
  local cg=$1
  shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' "$cg" "$(sl_netns_path pod-a)" "$@"
}

# A pod created now, after the agent: its first connect ever is redirected, and the log
# names the pod by the UID in its cgroup path (cgroupfs driver layout).
uid=1b4e28ba-2fa1-11d2-883f-0016d3cca427
pod_new=$kubepods/burstable/pod$uid
mkdir -p "$pod_new"
out=$(in_cgroup "$pod_new" "$SL_PROBE" connect $SL_DENIED_ADDR:443 --hello $SL_DENIED_HOST --read)
port=$(probe_local_port "$out")
check "a pod created after the agent: its first connect is redirected and denied" wait_for_log agent \
  "deny cgroup=$(stat -c %i "$pod_new") pod=$uid src=$SL_POD_A_ADDR:$port dst=$SL_DENIED_ADDR:443 sni=$SL_DENIED_HOST reason=host-not-allowed"
body=$(in_cgroup "$pod_new" curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
  --resolve "$SL_ALLOWED_HOST:443:$SL_ALLOWED_ADDR" "https://$SL_ALLOWED_HOST/")
check_contains "the new pod reaches the allowed host through the gateway" "$body" "you came from $SL_EGRESS_INET_ADDR"

# A container cgroup nested in a pod created later still (systemd driver layout).
uid2=9f0c3d1e-0000-4a5b-8c7d-0123456789ab
container=$kubepods/kubepods-besteffort-pod${uid2//-/_}.slice/cri-containerd-1.scope
mkdir -p "$container"
out=$(in_cgroup "$container" "$SL_PROBE" connect $SL_DENIED_ADDR:443 --hello $SL_DENIED_HOST --read)
port=$(probe_local_port "$out")
check "a nested container cgroup: its first connect is redirected and denied" wait_for_log agent \
  "deny cgroup=$(stat -c %i "$container") pod=$uid2 src=$SL_POD_A_ADDR:$port .*reason=host-not-allowed"

# The exempt pod goes direct (give it a route: the node's drop is lifted for this).
sl_host_exec node iptables -F SL-POD-EGRESS
sl_host_exec egress sysctl -qw net.ipv4.ip_forward=1
ip -n "$(sl_ns egress)" route add 198.18.1.0/24 via 198.18.3.1
ip -n "$(sl_ns inet)" route add 198.18.1.0/24 via $SL_EGRESS_INET_ADDR
exempt=$(kernel_counter exempt)
body=$(in_cgroup "$kubepods/exempt-pod" curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
  --resolve "$SL_DENIED_HOST:443:$SL_DENIED_ADDR" "https://$SL_DENIED_HOST/")
check_contains "the exempt pod is not redirected: it reaches the origin itself" "$body" "^hello from $SL_DENIED_HOST"
check "the origin saw the exempt pod's own address" wait_for_log origin-access "^$SL_POD_A_ADDR $SL_DENIED_HOST "
check "the kernel counted the exemption" test "$(kernel_counter exempt)" -gt "$exempt"
out=$(in_cgroup "$pod_new" "$SL_PROBE" connect $SL_DENIED_ADDR:443 --hello $SL_DENIED_HOST --read)
check_contains "with the same route, a non-exempt pod is still reset by the agent" "$out" "read=(ECONNRESET|eof)"
