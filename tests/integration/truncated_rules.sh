#!/usr/bin/env bash
# A rules file cut short is not a policy. The seed's rules file (SL_RULES_VARIANT: native,
# or istio where the Istio resources file is cut and the node file stays whole) is
# rewritten IN PLACE cut at every 20-byte boundary, as a crashed writer or a full disk
# leaves it; and a writer holds it open half written. After each write both daemons
# decide (the log says rejected, or reloaded with the same policy), the allowed host
# still works through the real path and the denied host is still denied.
source "$(dirname "$0")/../lib/harness.sh"
sl_topology_up || { not_ok "topology up"; exit 1; }
sl_write_rules || { not_ok "rules written"; exit 1; }
target=${SL_RULE_FILES[-1]}
full=$SL_RUN_DIR/full-rules.yaml.keep
cp "$target" "$full"
sl_start_sluice || { not_ok "sluice daemons start"; exit 1; }

allowed_works() { pod_curl pod-a $SL_ALLOWED_HOST $SL_ALLOWED_ADDR 2>&1 | grep -q "^hello from $SL_ALLOWED_HOST"; }
denied_denied() { ! pod_curl pod-a $SL_DENIED_HOST $SL_DENIED_ADDR 2>&1 | grep -q "hello from"; }
check "before any cut: the allowed host works" allowed_works
check "before any cut: the denied host is denied" denied_denied

# decisions NAME [rejected|reloaded]: reload decisions on a file change so far.
decisions() { grep -cE "rules ${2:-(rejected|reloaded)} \(file changed\)" "$SL_RUN_DIR/$1.log"; }
# wait_decisions AGENT-COUNT GATEWAY-COUNT: until both daemons made that many (5 s).
wait_decisions() {
  for _ in $(seq 100); do
    [ "$(decisions agent)" -ge "$1" ] && [ "$(decisions gateway)" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

size=$(stat -c %s "$full")
cuts=0 undecided=() unrejected=() broken=() opened=()
for ((n = 0; n < size; n += 20)); do
  cuts=$((cuts + 1))
  a=$(decisions agent) g=$(decisions gateway) ra=$(decisions agent rejected) rg=$(decisions gateway rejected)
  head -c "$n" "$full" > "$target"
  wait_decisions $((a + 1)) $((g + 1)) || undecided+=("$n")
  [ "$(decisions agent rejected)" -gt "$ra" ] || [ "$(decisions gateway rejected)" -gt "$rg" ] || unrejected+=("$n")
  allowed_works || broken+=("$n")
  denied_denied || opened+=("$n")
done
echo "# $cuts cuts of $(basename "$target") ($size bytes) written in place"
check "every cut made both daemons decide: [${undecided[*]}]" test "${#undecided[@]}" -eq 0
check "every cut was rejected by a daemon: [${unrejected[*]}]" test "${#unrejected[@]}" -eq 0
check "after every cut the allowed host still works: [${broken[*]}]" test "${#broken[@]}" -eq 0
check "after every cut the denied host is still denied: [${opened[*]}]" test "${#opened[@]}" -eq 0
check_contains "the agent says why it refused a cut" "$(log_of agent)" \
  "rules rejected \(file changed\).*(ends inside a line|allow no host|dangling|is empty|needs field)"
check_contains "so does the gateway" "$(log_of gateway)" \
  "rules rejected \(file changed\).*(ends inside a line|allow no host|dangling|is empty|needs field|no 'gateway' section)"

# A writer that holds the file open half written: nothing is read until it closes.
a=$(decisions agent) g=$(decisions gateway)
exec 4> "$target"
head -c $((size / 2)) "$full" >&4
sleep 1
check "while the writer holds the file open, neither daemon reads it" \
  test "$(decisions agent)" -eq "$a" -a "$(decisions gateway)" -eq "$g"
check "and the allowed host works meanwhile" allowed_works
tail -c +$((size / 2 + 1)) "$full" | head -c $((size / 4)) >&4
exec 4>&-
check "when the writer closes a file still cut short, both daemons decide" wait_decisions $((a + 1)) $((g + 1))
check "and refuse it" test "$(decisions gateway rejected)" -gt 0
check "the allowed host still works" allowed_works
check "the denied host is still denied" denied_denied

# The same writer finishing its job: the whole file, read once, after the close.
ra=$(decisions agent rejected) rg=$(decisions gateway rejected)
exec 4> "$target"
head -c $((size / 2)) "$full" >&4
sleep 1
tail -c +$((size / 2 + 1)) "$full" >&4
exec 4>&-
sleep 1
check "the whole file written slowly is not rejected" \
  test "$(decisions agent rejected)" -eq "$ra" -a "$(decisions gateway rejected)" -eq "$rg"
check "the allowed host works" allowed_works
check "the denied host is denied" denied_denied

# sluicectl validate names each narrowing field's place (here sourceLabels in the seed).
sed 's/^      port: 443$/      port: 443\n      sourceLabels: {app: payments}/' "$SL_ROOT/examples/istio/seed-egress.yaml" \
  > "$SL_RUN_DIR/narrowed.yaml"
sed "s#pki/#$SL_RUN_DIR/pki/#" "$SL_ROOT/examples/istio/sluice-node.yaml" > "$SL_RUN_DIR/sluice-node-for-validate.yaml"
out=$("$SL_BUILD/userspace/sluicectl" validate "$SL_RUN_DIR/sluice-node-for-validate.yaml" "$SL_RUN_DIR/narrowed.yaml" 2>&1)
code=$?
check "sluicectl validate fails on sourceLabels" test "$code" -eq 1
check_contains "naming file:line:column and the widening it refuses" "$out" \
  "narrowed.yaml:63:7: 'VirtualService.spec.tls\[\].match\[\].sourceLabels' narrows the route to some workloads; sluice cannot enforce it and will not widen it to every enrolled pod"
