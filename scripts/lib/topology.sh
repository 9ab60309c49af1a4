# The netns test topology of ARCHITECTURE.md. Source this file, then call
# sl_topology_up; always arrange `trap sl_topology_down EXIT`.
#
#   pod-a 198.18.1.2 ─┐                                  ┌ egress 198.18.3.2 (gateway :15443)
#   pod-b 198.18.2.2 ─┴ node (agent 198.18.0.1:15001) ───┘        │ 198.18.4.1
#                       drops pods' direct traffic to inet   inet 198.18.4.2
#                                                            origins 198.18.100.10 (www.googleapis.com)
#                                                                    198.18.100.20 (blocked.example.net)
#                                                            dnsmasq 198.18.100.53
# Addresses exist only inside the namespaces; no namespace has a default route, and
# the root namespace gets no interface or route of the topology.

SL_ROOT=${SL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SL_BUILD=${SL_BUILD:-$SL_ROOT/build}
SL_PREFIX=${SL_PREFIX:-sl}
SL_RUN_DIR=${SL_RUN_DIR:-/tmp/sluice-run-$SL_PREFIX}
SL_PIN_DIR=${SL_PIN_DIR:-/sys/fs/bpf/sluice}

SL_AGENT_ADDR=198.18.0.1
SL_AGENT_ADDR6=2001:db8::1
SL_AGENT_PORT=15001
SL_POD_A_ADDR6=2001:db8:1::2
SL_POD_B_ADDR6=2001:db8:2::2
SL_ALLOWED_ADDR6=2001:db8:100::10  # no host has it: an IPv6 app's destination, redirected
SL_POD_A_ADDR=198.18.1.2
SL_POD_B_ADDR=198.18.2.2
SL_EGRESS_ADDR=198.18.3.2
SL_GATEWAY_PORT=15443
SL_EGRESS_INET_ADDR=198.18.4.1
SL_ALLOWED_HOST=www.googleapis.com
SL_ALLOWED_ADDR=198.18.100.10
SL_DENIED_HOST=blocked.example.net
SL_DENIED_ADDR=198.18.100.20
SL_DNS_ADDR=198.18.100.53
SL_HOSTS=(pod-a pod-b node egress inet)
# Extra origin names for dnsmasq and inet's loopback: "name=address" (benchmarks).
SL_EXTRA_ORIGINS=(${SL_EXTRA_ORIGINS[@]+"${SL_EXTRA_ORIGINS[@]}"})
SL_RULE_FILES=()

sl_ns() { echo "$SL_PREFIX-$1"; }
sl_log() { printf '[topology] %s\n' "$*" >&2; }
sl_cgroup2() { awk '$3=="cgroup2"{print $2; exit}' /proc/mounts; }
sl_cgroup_root() { echo "$(sl_cgroup2)/sluice-$SL_PREFIX"; }
# The cgroup name as the rules file names it (relative to the cgroup2 mount).
sl_cgroup_name() { echo "sluice-$SL_PREFIX/$1"; }

# sl_veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair made directly inside the two
# namespaces, so no interface ever exists in the root namespace.
sl_veth() {
  ip link add "$2" netns "$(sl_ns "$1")" type veth peer name "$5" netns "$(sl_ns "$4")"
  ip -n "$(sl_ns "$1")" addr add "$3" dev "$2"
  ip -n "$(sl_ns "$4")" addr add "$6" dev "$5"
  ip -n "$(sl_ns "$1")" link set "$2" up
  ip -n "$(sl_ns "$4")" link set "$5" up
}

sl_topology_up() {
  [ "$(id -u)" -eq 0 ] || { echo "the topology needs root" >&2; return 1; }
  local cg2
  cg2=$(sl_cgroup2)
  [ -n "$cg2" ] || { echo "no cgroup2 mount in /proc/mounts" >&2; return 1; }
  mkdir -p "$SL_RUN_DIR"
  : > "$SL_RUN_DIR/pids"
  for h in "${SL_HOSTS[@]}"; do
    ip netns add "$(sl_ns "$h")"
    ip -n "$(sl_ns "$h")" link set lo up
  done
  sl_veth pod-a eth0 $SL_POD_A_ADDR/24 node pa 198.18.1.1/24
  sl_veth pod-b eth0 $SL_POD_B_ADDR/24 node pb 198.18.2.1/24
  sl_veth node eg 198.18.3.1/24 egress eth0 $SL_EGRESS_ADDR/24
  sl_veth egress inet $SL_EGRESS_INET_ADDR/24 inet eth0 198.18.4.2/24
  ip -n "$(sl_ns node)" addr add $SL_AGENT_ADDR/32 dev lo
  # IPv6 for the pods and the agent (nodad: usable at once). The node has no IPv6 route
  # beyond the pods: an IPv6 connection leaves only through the agent.
  ip -n "$(sl_ns pod-a)" -6 addr add $SL_POD_A_ADDR6/64 dev eth0 nodad
  ip -n "$(sl_ns node)" -6 addr add 2001:db8:1::1/64 dev pa nodad
  ip -n "$(sl_ns pod-b)" -6 addr add $SL_POD_B_ADDR6/64 dev eth0 nodad
  ip -n "$(sl_ns node)" -6 addr add 2001:db8:2::1/64 dev pb nodad
  ip -n "$(sl_ns node)" -6 addr add $SL_AGENT_ADDR6/128 dev lo nodad
  ip -n "$(sl_ns pod-a)" -6 route add 2001:db8::/32 via 2001:db8:1::1
  ip -n "$(sl_ns pod-b)" -6 route add 2001:db8::/32 via 2001:db8:2::1
  for a in $SL_ALLOWED_ADDR $SL_DENIED_ADDR $SL_DNS_ADDR; do
    ip -n "$(sl_ns inet)" addr add $a/32 dev lo
  done
  local extra
  for extra in ${SL_EXTRA_ORIGINS[@]+"${SL_EXTRA_ORIGINS[@]}"}; do
    ip -n "$(sl_ns inet)" addr add "${extra#*=}/32" dev lo
  done
  # Routes: only between test ranges. No default route anywhere.
  ip -n "$(sl_ns pod-a)" route add 198.18.0.0/15 via 198.18.1.1
  ip -n "$(sl_ns pod-b)" route add 198.18.0.0/15 via 198.18.2.1
  ip -n "$(sl_ns node)" route add 198.18.4.0/24 via $SL_EGRESS_ADDR
  ip -n "$(sl_ns node)" route add 198.18.100.0/24 via $SL_EGRESS_ADDR
  ip -n "$(sl_ns egress)" route add 198.18.0.0/16 via 198.18.3.1
  ip -n "$(sl_ns egress)" route add 198.18.100.0/24 via 198.18.4.2
  ip -n "$(sl_ns inet)" route add 198.18.3.0/24 via $SL_EGRESS_INET_ADDR
  ip netns exec "$(sl_ns node)" sysctl -qw net.ipv4.ip_forward=1
  # The node forwards pods to cluster addresses but drops their direct traffic to the
  # internet, as a NetworkPolicy would: the gateway is the only way out.
  local nodens
  nodens=$(sl_ns node)
  ip netns exec "$nodens" iptables -N SL-POD-EGRESS
  ip netns exec "$nodens" iptables -A FORWARD -i pa -j SL-POD-EGRESS
  ip netns exec "$nodens" iptables -A FORWARD -i pb -j SL-POD-EGRESS
  ip netns exec "$nodens" iptables -A SL-POD-EGRESS -d 198.18.100.0/24 -j DROP
  ip netns exec "$nodens" iptables -A SL-POD-EGRESS -d 198.18.4.0/24 -j DROP

  mkdir -p "$(sl_cgroup_root)"
  for c in pod-a pod-b; do mkdir -p "$(sl_cgroup_root)/$c"; done
  for h in "${SL_HOSTS[@]}"; do mkdir -p "$(sl_cgroup_root)/host-$h"; done

  bash "$SL_ROOT/scripts/pki.sh" "$SL_RUN_DIR/pki" $SL_ALLOWED_HOST $SL_DENIED_HOST
  sl_start_internet
}

# Processes enter only the host's network namespace (nsenter --net), not a mount
# namespace: `ip netns exec` remounts /sys privately, which hides the cgroup2 and bpffs
# mounts the agent needs, as a DaemonSet's hostPath mounts would provide them.
sl_netns_path() { echo "/run/netns/$(sl_ns "$1")"; }

# sl_spawn NAME HOST CMD...: runs CMD in the host's network namespace and its cgroup
# (host-HOST, never enabled unless a test says so) in the background, logging to
# $SL_RUN_DIR/NAME.log; the PID is recorded.
sl_spawn() {
  local name=$1 host=$2
  shift 2
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
    "$(sl_cgroup_root)/host-$host" "$(sl_netns_path "$host")" "$@" > "$SL_RUN_DIR/$name.log" 2>&1 &
  local pid=$!
  echo "$pid $name" >> "$SL_RUN_DIR/pids"
}

# sl_pod_exec POD CMD...: runs CMD in the pod's cgroup and namespace, in the foreground.
sl_pod_exec() {
  local pod=$1
  shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "${@:2}"' \
    "$(sl_cgroup_root)/$pod" "$(sl_netns_path "$pod")" "$@"
}

# sl_host_exec HOST CMD...: runs CMD in the host's network namespace, in the foreground.
sl_host_exec() {
  local host=$1
  shift
  nsenter --net="$(sl_netns_path "$host")" -- "$@"
}

# sl_wait_listen HOST PORT [SECONDS]: waits until something listens on the TCP/UDP port.
sl_wait_listen() {
  local host=$1 port=$2 limit=${3:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    if sl_host_exec "$host" ss -Hltnu "sport = :$port" | grep -q .; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $port in $(sl_ns "$host") after ${limit}s" >&2
  return 1
}

# sl_start_dns [DNSMASQ ARGS...]: the internet's DNS server (dnsmasq), answering the
# topology's names. ARGS, if given, replace the answer for the allowed host (tests of
# what the gateway does with an answer); `sl_stop dnsmasq` first to change it.
sl_start_dns() {
  local extra
  local answers=("$@")
  [ "${#answers[@]}" -gt 0 ] || answers=("--address=/$SL_ALLOWED_HOST/$SL_ALLOWED_ADDR")
  # dnsmasq answers from its configuration with TTL 0 (nobody caches them) unless
  # SL_DNS_TTL says otherwise: a benchmark gives them a real record's lifetime.
  [ -z "${SL_DNS_TTL:-}" ] || answers+=("--local-ttl=$SL_DNS_TTL")
  for extra in ${SL_EXTRA_ORIGINS[@]+"${SL_EXTRA_ORIGINS[@]}"}; do
    answers+=("--address=/${extra%%=*}/${extra#*=}")
  done
  sl_spawn dnsmasq inet dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
    --bind-interfaces --listen-address=$SL_DNS_ADDR --user=root --log-queries --log-facility=- \
    --pid-file="$SL_RUN_DIR/dnsmasq.pid" --address=/$SL_DENIED_HOST/$SL_DENIED_ADDR "${answers[@]}"
  sl_wait_listen inet 53
}

# sl_nginx_conf DIR ACCESS_LOG SERVERS: writes DIR/nginx.conf, an nginx that runs in the
# foreground with its state under DIR, logs access to ACCESS_LOG ("off" for none) and
# serves the server blocks in SERVERS. One prelude for every test origin.
sl_nginx_conf() {
  local dir=$1 access=$2 servers=$3 log=off
  [ "$access" = off ] || log="$access origin"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<NGINX
user root;
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  log_format origin '\$remote_addr \$ssl_server_name "\$request" \$status';
  access_log $log;
  default_type text/plain;
$servers
}
NGINX
}

sl_start_internet() {
  local run=$SL_RUN_DIR
  sl_start_dns
  sl_nginx_conf "$run/nginx" "$run/origin-access.log" "  server {
    listen $SL_ALLOWED_ADDR:443 ssl;
    server_name $SL_ALLOWED_HOST;
    ssl_certificate $run/pki/origin-$SL_ALLOWED_HOST.pem;
    ssl_certificate_key $run/pki/origin-$SL_ALLOWED_HOST.key;
    location / { return 200 \"hello from $SL_ALLOWED_HOST, you came from \$remote_addr\n\"; }
  }
  server {
    listen $SL_DENIED_ADDR:443 ssl;
    server_name $SL_DENIED_HOST;
    ssl_certificate $run/pki/origin-$SL_DENIED_HOST.pem;
    ssl_certificate_key $run/pki/origin-$SL_DENIED_HOST.key;
    location / { return 200 \"hello from $SL_DENIED_HOST\n\"; }
  }"
  sl_spawn nginx inet nginx -c "$run/nginx/nginx.conf" -e "$run/nginx/error.log"
  sl_wait_listen inet 443
}

# sl_write_rules [VARIANT]: writes this topology's rules into $SL_RUN_DIR and lists them
# in SL_RULE_FILES. VARIANT (default $SL_RULES_VARIANT, else native):
#   native  examples/seed-native.yaml, sluice's own format
#   istio   examples/istio/sluice-node.yaml (environment) + examples/istio/seed-egress.yaml,
#           the Istio egress task's resources byte for byte
sl_write_rules() {
  local variant=${1:-${SL_RULES_VARIANT:-native}}
  case $variant in
    native)
      sed "s#sluice-sl/#sluice-$SL_PREFIX/#" "$SL_ROOT/examples/seed-native.yaml" > "$SL_RUN_DIR/rules.yaml"
      SL_RULE_FILES=("$SL_RUN_DIR/rules.yaml")
      ;;
    istio)
      sed "s#sluice-sl/#sluice-$SL_PREFIX/#" "$SL_ROOT/examples/istio/sluice-node.yaml" > "$SL_RUN_DIR/sluice-node.yaml"
      cp "$SL_ROOT/examples/istio/seed-egress.yaml" "$SL_RUN_DIR/seed-egress.yaml"
      SL_RULE_FILES=("$SL_RUN_DIR/sluice-node.yaml" "$SL_RUN_DIR/seed-egress.yaml")
      ;;
    *)
      echo "unknown rules variant '$variant' (native, istio)" >&2
      return 1
      ;;
  esac
}

# sl_config_args: --config FILE for each of SL_RULE_FILES.
sl_config_args() {
  local f
  for f in "${SL_RULE_FILES[@]}"; do printf -- '--config\n%s\n' "$f"; done
}

# sl_start_sluice: starts the gateway and the agent on SL_RULE_FILES (written by
# sl_write_rules) and waits until both listen.
sl_start_sluice() {
  [ "${#SL_RULE_FILES[@]}" -gt 0 ] || sl_write_rules
  sl_start_gateway
  sl_start_agent
}

# sl_start_gateway [EXTRA ARGS...]: (re)starts only gateway A and waits for its listener.
sl_start_gateway() {
  local args
  mapfile -t args < <(sl_config_args)
  sl_spawn gateway egress "$SL_BUILD/userspace/sluice-gateway" "${args[@]}" "$@"
  sl_wait_listen egress $SL_GATEWAY_PORT
}

# sl_start_agent [EXTRA ARGS...]: (re)starts only the agent and waits for its listener.
sl_start_agent() {
  local args
  mapfile -t args < <(sl_config_args)
  sl_spawn agent node "$SL_BUILD/userspace/sluice-agent" "${args[@]}" --pin-dir "$SL_PIN_DIR" "$@"
  sl_wait_listen node $SL_AGENT_PORT
}

# sl_second_gateway B_FOR_AGENT [MARK]: gateway B on the egress node, for tests and benches
# with two gateways. B listens on 198.18.3.3 and [2001:db8:3::2] (IPv6 between node and
# egress is added); the agent's rules ($SL_RUN_DIR/rules.yaml, the native variant) then
# list 198.18.3.2:15443 (gateway A) and B_FOR_AGENT ("198.18.3.3:15443" or
# "[2001:db8:3::2]:15443"); B runs on a copy, rules-b.yaml, with its upstream sockets
# marked MARK if given (so a test can tell its dials from A's), and its own admin port
# (127.0.0.1:15022: A holds the default in the namespace). Start or restart the agent after.
SL_GATEWAY_B_ADDR=198.18.3.3
SL_GATEWAY_B_ADDR6=2001:db8:3::2
sl_second_gateway() {
  local agent_side=$1 mark=${2:-} rules=$SL_RUN_DIR/rules.yaml
  ip -n "$(sl_ns egress)" addr add $SL_GATEWAY_B_ADDR/24 dev eth0
  ip -n "$(sl_ns node)" -6 addr add 2001:db8:3::1/64 dev eg nodad
  ip -n "$(sl_ns egress)" -6 addr add $SL_GATEWAY_B_ADDR6/64 dev eth0 nodad
  sed -i "s/^    address: $SL_EGRESS_ADDR:$SL_GATEWAY_PORT\$/    addresses: [\"$SL_EGRESS_ADDR:$SL_GATEWAY_PORT\", \"$agent_side\"]/" "$rules"
  grep -qF "addresses: [\"$SL_EGRESS_ADDR:$SL_GATEWAY_PORT\", \"$agent_side\"]" "$rules" || {
    echo "sl_second_gateway: $rules names no single gateway address to extend" >&2
    return 1
  }
  sed -e "s/^  listen: $SL_EGRESS_ADDR:$SL_GATEWAY_PORT\$/  listen: $SL_GATEWAY_B_ADDR:$SL_GATEWAY_PORT\n  listen6: $SL_GATEWAY_B_ADDR6/" \
    "$rules" > "$SL_RUN_DIR/rules-b.yaml"
  [ -z "$mark" ] || sed -i "s/^  listen6: $SL_GATEWAY_B_ADDR6\$/&\n  socketMark: $mark/" "$SL_RUN_DIR/rules-b.yaml"
  grep -q "^  listen6: $SL_GATEWAY_B_ADDR6\$" "$SL_RUN_DIR/rules-b.yaml" || {
    echo "sl_second_gateway: $rules has no gateway listen line for B to take over" >&2
    return 1
  }
  sl_spawn gateway-b egress "$SL_BUILD/userspace/sluice-gateway" --config "$SL_RUN_DIR/rules-b.yaml" \
    --admin-address 127.0.0.1:15022
  local i
  for ((i = 0; i < 100; i++)); do # a listener on each address (one per worker loop)
    sl_host_exec egress ss -Hltn "src $SL_GATEWAY_B_ADDR and sport = :$SL_GATEWAY_PORT" | grep -q . &&
      sl_host_exec egress ss -Hltn "src [$SL_GATEWAY_B_ADDR6] and sport = :$SL_GATEWAY_PORT" | grep -q . && return 0
    sleep 0.05
  done
  echo "gateway B does not listen on $SL_GATEWAY_B_ADDR and [$SL_GATEWAY_B_ADDR6]:$SL_GATEWAY_PORT" >&2
  return 1
}

# sl_stop NAME: stops one spawned process (by its recorded PID) and waits for it.
sl_stop() {
  local pid
  pid=$(awk -v n="$1" '$2==n{print $1}' "$SL_RUN_DIR/pids" | tail -1)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sed -i "/^$pid $1\$/d" "$SL_RUN_DIR/pids"
}

sl_topology_down() {
  set +e
  if [ -f "$SL_RUN_DIR/pids" ]; then
    while read -r pid name; do
      [ -n "$pid" ] && sl_stop "$name"
    done < <(tac "$SL_RUN_DIR/pids")
  fi
  if [ -x "$SL_BUILD/userspace/sluicectl" ] && [ -d "$SL_PIN_DIR" ]; then
    "$SL_BUILD/userspace/sluicectl" --pin-dir "$SL_PIN_DIR" uninstall > /dev/null
  fi
  for h in "${SL_HOSTS[@]}" ${SL_EXTRA_HOSTS[@]+"${SL_EXTRA_HOSTS[@]}"}; do
    ip netns del "$(sl_ns "$h")" 2>/dev/null
  done
  local root left=0 h
  root=$(sl_cgroup_root)
  if [ -d "$root" ]; then
    for i in $(seq 40); do
      find "$root" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
      rmdir "$root" 2>/dev/null && break
      # A process the run started but did not list in pids still lives in the run's own
      # cgroups: end it there (cgroup.kill reaches only this run's tree), then retry.
      [ "$i" -eq 10 ] && [ -f "$root/cgroup.kill" ] && {
        echo "warning: processes left in $root: $(find "$root" -name cgroup.procs -exec cat {} + | tr '\n' ' ')" >&2
        echo 1 > "$root/cgroup.kill"
      }
      sleep 0.1
    done
    [ -d "$root" ] && { echo "error: could not remove cgroup $root" >&2; left=1; }
  fi
  for h in "${SL_HOSTS[@]}" ${SL_EXTRA_HOSTS[@]+"${SL_EXTRA_HOSTS[@]}"}; do
    [ -e "/run/netns/$(sl_ns "$h")" ] && { echo "error: could not remove netns $(sl_ns "$h")" >&2; left=1; }
  done
  [ -d "$SL_PIN_DIR" ] && { echo "error: pins left in $SL_PIN_DIR" >&2; left=1; }
  [ "${SL_KEEP_RUN_DIR:-0}" = 1 ] || rm -rf "$SL_RUN_DIR"
  return "$left"
}
