# Shared by the container tests: the netns topology of the root tests, with the node agent
# and the gateway run by podman from the manifests' own pod templates, and app "pods" as
# podman containers under the cgroup the agent enrolls (the kubelet's kubepods stand-in).
#
#   node's /sys/fs/bpf   a bpffs instance of this test's own (/tmp/sluice-bpffs-PREFIX)
#   node's cgroup root   the host's /sys/fs/cgroup (cgroup2 wherever it is mounted)
#   kubepods             sluice-PREFIX/kubepods under the cgroup2 mount: every app
#                        container's --cgroup-parent; the agent container is there too
#   hostNetwork          the agent in the node namespace, the gateway in the egress one
SL_CONTAINER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SL_PREFIX:=c$$}"
export SL_PREFIX
export SL_BPFFS=/tmp/sluice-bpffs-$SL_PREFIX
export SL_PIN_DIR=$SL_BPFFS/sluice
# shellcheck source=../lib/harness.sh
source "$SL_CONTAINER_DIR/../lib/harness.sh"

SL_MANIFESTS=$SL_ROOT/deploy/kubernetes
SL_IMAGE=localhost/sluice:test-$SL_PREFIX
SL_PY=/usr/bin/python3
export CONTAINERS_CONF=$SL_CONTAINER_DIR/containers.conf
# The sandbox forbids raising rlimits: every container gets limits below the soft ones.
sl_limit() { local have=$1 want=$2; [ "$have" = unlimited ] || [ "$have" -gt "$want" ] && echo "$want" || echo "$have"; }
sl_nofile=$(sl_limit "$(ulimit -Sn)" 16384)
sl_nproc=$(sl_limit "$(ulimit -Su)" 8192)
sl_ulimits=(--ulimit "nofile=$sl_nofile:$sl_nofile" --ulimit "nproc=$sl_nproc:$sl_nproc")
sl_containers=()

for tool in podman runc mmdebstrap "$SL_PY"; do
  command -v "$tool" > /dev/null || { not_ok "$tool is installed (scripts/install-deps.sh)"; exit 1; }
done

# The cgroup the agent enrolls, as the rules name it and as podman's --cgroup-parent does.
sl_kubepods() { echo "sluice-$SL_PREFIX/kubepods"; }

container_cleanup() {
  local name
  for name in ${sl_containers[@]+"${sl_containers[@]}"}; do
    podman rm -f -t 2 "$name" > /dev/null 2>&1
  done
  podman rmi -f "$SL_IMAGE" > /dev/null 2>&1
  if mountpoint -q "$SL_BPFFS"; then
    "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" uninstall > /dev/null 2>&1
    umount "$SL_BPFFS"
  fi
  rmdir "$SL_BPFFS" 2> /dev/null
  # runc also makes the cgroup parent in every cgroup v1 hierarchy of a hybrid layout;
  # the topology removes the cgroup2 one.
  local v1
  for v1 in /sys/fs/cgroup/*/sluice-"$SL_PREFIX"; do
    [ -d "$v1" ] && find "$v1" -depth -type d -exec rmdir {} + 2> /dev/null
  done
}
container_exit() {
  local code=$?
  set +e
  container_cleanup
  (exit $code)
  sl_harness_exit
}
trap container_exit EXIT

# container_topology_up: the netns topology, the node's bpffs and kubepods cgroup, the image.
container_topology_up() {
  sl_topology_up || { not_ok "topology up"; exit 1; }
  mkdir -p "$SL_BPFFS" && mount -t bpf bpf "$SL_BPFFS" || { not_ok "a bpffs for the test node"; exit 1; }
  mkdir -p "$(sl_cgroup2)/$(sl_kubepods)"
  if ! bash "$SL_ROOT/scripts/image.sh" --tag "test-$SL_PREFIX" --build-dir "$SL_BUILD" > "$SL_RUN_DIR/image.log" 2>&1; then
    cat "$SL_RUN_DIR/image.log"
    not_ok "scripts/image.sh builds the image"
    exit 1
  fi
  ok "scripts/image.sh built $(tail -1 "$SL_RUN_DIR/image.log" | sed 's/^image.sh: //')"
}

# container_rules: the ConfigMap's files, with the values the manifest marks SET given
# for this topology (as an operator's kustomize patch would), and the Secrets' files with
# certificates for the identities the manifests name.
container_rules() {
  local rules=$SL_RUN_DIR/configmap
  "$SL_PY" "$SL_CONTAINER_DIR/pod_to_podman.py" configmap "$SL_MANIFESTS/rules-configmap.yaml" sluice-rules "$rules"
  "$SL_PY" - "$rules" "$(sl_kubepods)" <<'PY'
import sys, yaml
rules, kubepods = sys.argv[1], sys.argv[2]
def patch(name, values):
    path = f"{rules}/{name}"
    doc = yaml.safe_load(open(path))
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = doc
        for p in parents:
            node = node[p]
        if key not in node:
            sys.exit(f"{name}: {dotted} is not in the manifest's ConfigMap")
        node[key] = value
    open(path, "w").write(yaml.safe_dump(doc, sort_keys=False))
patch("agent.yaml", {"agent.bypassCidrs": ["198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"],
                     "agent.kubepodsCgroup": kubepods, "agent.gateway.address": "198.18.3.2:15443"})
patch("gateway.yaml", {"gateway.dns": "198.18.100.53:53"})
PY
  local pki=$SL_RUN_DIR/pki
  # The gateway identity the manifests expect (pki.sh's gateway is Istio's).
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=sluice test mesh/CN=sluice-gateway" \
    -keyout "$pki/k8s-gateway.key" -out "$pki/k8s-gateway.csr" 2> /dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/sluice-system/sa/sluice-gateway\n' \
    > "$pki/k8s-gateway.ext"
  openssl x509 -req -in "$pki/k8s-gateway.csr" -CA "$pki/mesh-ca.pem" -CAkey "$pki/mesh-ca.key" -CAcreateserial \
    -days 1 -extfile "$pki/k8s-gateway.ext" -out "$pki/k8s-gateway.pem" 2> /dev/null
  local who
  for who in agent gateway; do
    mkdir -p "$SL_RUN_DIR/secret-$who"
    cp "$pki/mesh-ca.pem" "$SL_RUN_DIR/secret-$who/ca.crt"
  done
  cp "$pki/agent.pem" "$SL_RUN_DIR/secret-agent/tls.crt"
  cp "$pki/agent.key" "$SL_RUN_DIR/secret-agent/tls.key"
  cp "$pki/k8s-gateway.pem" "$SL_RUN_DIR/secret-gateway/tls.crt"
  cp "$pki/k8s-gateway.key" "$SL_RUN_DIR/secret-gateway/tls.key"
}

# container_run NAME KIND WORKLOAD NETNS_HOST NODE_IP CGROUP_PARENT: starts the workload's
# pod template (from the manifest file that holds it) as container NAME.
container_run() {
  local name=$1 kind=$2 workload=$3 host=$4 node_ip=$5 parent=$6 manifest args
  manifest=$(grep -l "^kind: $kind" "$SL_MANIFESTS"/*.yaml | xargs grep -l "^  name: $workload\$")
  mkdir -p "$SL_RUN_DIR/volumes-$name"
  mapfile -t args < <("$SL_PY" "$SL_CONTAINER_DIR/pod_to_podman.py" run "$manifest" "$kind" "$workload" \
    --network "$(sl_netns_path "$host")" --image "$SL_IMAGE" --volumes "$SL_RUN_DIR/volumes-$name" \
    --host-path /sys/fs/bpf="$SL_BPFFS" --host-path /sys/fs/cgroup=/sys/fs/cgroup \
    --config-map sluice-rules="$SL_RUN_DIR/configmap" \
    --secret sluice-agent-tls="$SL_RUN_DIR/secret-agent" --secret sluice-gateway-tls="$SL_RUN_DIR/secret-gateway" \
    --field status.hostIP="$node_ip")
  [ ${#args[@]} -gt 3 ] || { not_ok "$kind $workload converts to podman arguments"; return 1; }
  printf '%s\n' "${args[@]}" > "$SL_RUN_DIR/$name.args"
  sl_containers+=("$name")
  podman run -d --name "$name" "${sl_ulimits[@]}" --cgroup-parent "/$parent" "${args[@]}" > /dev/null ||
    { not_ok "podman runs $kind $workload"; return 1; }
}

# container_logs NAME: the container's output so far, also kept as NAME.log for the harness.
container_logs() { podman logs "$1" > "$SL_RUN_DIR/$1.log" 2>&1; cat "$SL_RUN_DIR/$1.log"; }
# wait_container_log NAME PATTERN [SECONDS]
wait_container_log() {
  local i
  for ((i = 0; i < ${3:-10} * 10; i++)); do
    container_logs "$1" | grep -Eq -- "$2" && return 0
    sleep 0.1
  done
  return 1
}

# run_probe NAME KIND WORKLOAD PROBE NODE_HOST NODE_IP: runs the manifest's probe as the
# kubelet does (exec in the container; tcpSocket from the node to the pod's address, the
# node's own with hostNetwork); exit 0 if it passes.
run_probe() {
  local name=$1 kind=$2 workload=$3 which=$4 host=$5 node_ip=$6 manifest probe
  manifest=$(grep -l "^kind: $kind" "$SL_MANIFESTS"/*.yaml | xargs grep -l "^  name: $workload\$")
  probe=$("$SL_PY" "$SL_CONTAINER_DIR/pod_to_podman.py" probes "$manifest" "$kind" "$workload")
  local action
  action=$("$SL_PY" -c 'import json,sys; p=json.loads(sys.argv[1])[sys.argv[2]]
if "exec" in p: print("exec\n" + "\n".join(p["exec"]["command"]))
elif "tcpSocket" in p: print("tcp\n" + str(p["tcpSocket"]["port"]))
elif "httpGet" in p: g = p["httpGet"]; print("http\n" + str(g["port"]) + "\n" + g.get("path", "/") + "\n" + g.get("host", ""))
else: sys.exit("probe kind not supported")' "$probe" "$which") || return 1
  local kind_of
  kind_of=$(head -1 <<< "$action")
  local rest
  mapfile -t rest < <(tail -n +2 <<< "$action")
  case $kind_of in
    exec) podman exec "$name" "${rest[@]}" > /dev/null 2>&1 ;;
    tcp) sl_host_exec "$host" "$SL_PROBE" connect "$node_ip:${rest[0]}" --timeout-ms 2000 | grep -q '^connect=ok' ;;
    # The kubelet's HTTP probe, from the node's namespace (the pod's, with hostNetwork):
    # 2xx and 3xx pass; `host` defaults to the pod's address.
    http) sl_host_exec "$host" curl -s -o /dev/null -m 2 -w '%{http_code}' \
      "http://${rest[2]:-$node_ip}:${rest[0]}${rest[1]}" | grep -q '^[23]' ;;
  esac
}

# app_pod NAME POD_NETNS: an app "pod" created now, in the pod's namespace and under
# kubepods; it runs this host's tools (curl, openssl, sl-probe) from an overlay of /.
app_pod() {
  sl_containers+=("$1")
  podman run -d --name "$1" "${sl_ulimits[@]}" --network "ns:$(sl_netns_path "$2")" \
    --cgroup-parent "/$(sl_kubepods)" --rootfs /:O sleep 600 > /dev/null
}
# app_cgroup_id NAME: the cgroup2 inode of the app container, as the agent logs it.
app_cgroup_id() {
  local id
  id=$(podman inspect --format '{{.Id}}' "$1")
  stat -c %i "$(sl_cgroup2)/$(sl_kubepods)/libpod-$id"
}
# app_curl NAME HOST ADDR: curl in the app container, trusting the public CA.
app_curl() {
  podman exec "$1" curl -sS --connect-timeout 3 -m 8 --cacert "$SL_RUN_DIR/pki/public-ca.pem" \
    --resolve "$2:443:$3" "https://$2/" 2>&1
}
# enabled_cgroups: the "enabled cgroups" lines of sluicectl status.
enabled_cgroups() {
  "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" status | awk '/^enabled cgroups:/{f=1; next} /^[^ ]/{f=0} f'
}
# pod_drops: packets of pods the node dropped on their way to the internet (direct tries).
pod_drops() { sl_host_exec node iptables -L SL-POD-EGRESS -v -x -n | awk '$3=="DROP"{s+=$1} END{print s+0}'; }
