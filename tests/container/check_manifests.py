#!/usr/bin/python3
"""Checks deploy/kubernetes offline: every object parses, validates against the vendored
Kubernetes OpenAPI schema fragments (k8s-schema.json, strict: an unknown field is an
error), and the agent DaemonSet and the gateway Deployment carry what the README promises
(capabilities one by one, mounts, probes, no pin removal on stop, rollout, placement).
Prints one 'ok - ' or 'not ok - ' line per check.

  check_manifests.py DEPLOY_DIR SEED_FILE
"""
import os
import sys

import jsonschema
import yaml

results = []


def check(label, condition, detail=""):
    results.append(bool(condition))
    print(("ok - " if condition else "not ok - ") + label + ("" if condition or not detail else f": {detail}"))


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory):
    """What `kubectl apply -k DIR` sends, for the fields this kustomization uses."""
    kustomization = yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))
    unknown = set(kustomization) - {"apiVersion", "kind", "namespace", "resources", "images"}
    check(f"{directory}/kustomization.yaml uses only resources, namespace and images", not unknown, sorted(unknown))
    objects = []
    for resource in kustomization["resources"]:
        for doc in load_docs(os.path.join(directory, resource)):
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
            objects.append((resource, doc))
    for image in kustomization.get("images", []):
        for _, doc in objects:
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c["image"].rpartition(":")[0] == image["name"]:
                    c["image"] = f"{image['name']}:{image['newTag']}"
    return objects


SCALARS = {"string": {"type": "string"}, "integer": {"type": "integer"}, "boolean": {"type": "boolean"},
           "int-or-string": {"type": ["integer", "string"]},
           "quantity": {"type": ["string", "integer", "number"]}, "object": {"type": "object"},
           "unvendored": {"not": {}, "description": "a real field whose schema is not vendored: add it"}}


def expand(shorthand):
    if shorthand in SCALARS:
        return SCALARS[shorthand]
    if shorthand.startswith("map:"):
        return {"type": "object", "additionalProperties": expand(shorthand[4:])}
    if shorthand.startswith("["):
        return {"type": "array", "items": expand(shorthand[1:-1])}
    return {"$ref": f"#/definitions/{shorthand}"}


def json_schema(definitions):
    """The vendored shorthand as strict JSON Schema: no field beyond those listed."""
    return {name: {"type": "object", "additionalProperties": False, "required": d.get("required", []),
                   "properties": {k: expand(v) for k, v in d["properties"].items()}}
            for name, d in definitions.items()}


def schema_check(objects, schema):
    definitions = json_schema(schema["definitions"])
    for source, doc in objects:
        name = f"{source}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        key = f"{doc.get('apiVersion')}/{doc.get('kind')}"
        if key not in schema["kinds"]:
            check(f"{name} is a kind the schema knows", False, key)
            continue
        validator = jsonschema.Draft4Validator(
            {"$ref": f"#/definitions/{schema['kinds'][key]}", "definitions": definitions})
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        check(f"{name} matches the {key} schema", not errors,
              "; ".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in errors[:5]))


def workload(objects, kind, name):
    for _, doc in objects:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    sys.exit(f"no {kind} {name}")


def volume_of(pod, mount_path):
    container = pod["containers"][0]
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == mount_path), None)
    if mount is None:
        return None, None
    return mount, next(v for v in pod["volumes"] if v["name"] == mount["name"])


def agent_checks(ds):
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    check("agent: host network", pod.get("hostNetwork") is True)
    check("agent: not privileged", sc.get("privileged") is False)
    check("agent: drops every capability", sc.get("capabilities", {}).get("drop") == ["ALL"])
    check("agent: adds exactly BPF, NET_ADMIN, PERFMON, DAC_READ_SEARCH",
          sorted(sc.get("capabilities", {}).get("add", [])) == ["BPF", "DAC_READ_SEARCH", "NET_ADMIN", "PERFMON"],
          sc.get("capabilities"))
    check("agent: no privilege escalation, read-only root", sc.get("allowPrivilegeEscalation") is False and
          sc.get("readOnlyRootFilesystem") is True)
    mount, volume = volume_of(pod, "/sys/fs/bpf")
    check("agent: the host's /sys/fs/bpf mounted at /sys/fs/bpf", volume and volume.get("hostPath", {}).get("path") ==
          "/sys/fs/bpf")
    check("agent: bpffs mount propagation HostToContainer (Bidirectional needs privileged)",
          mount and mount.get("mountPropagation") == "HostToContainer")
    pin_dir = c["command"][c["command"].index("--pin-dir") + 1] if "--pin-dir" in c["command"] else ""
    check("agent: pins under the host's bpffs", pin_dir.startswith("/sys/fs/bpf/"), pin_dir)
    mount, volume = volume_of(pod, "/sys/fs/cgroup")
    check("agent: the host's cgroup root at /sys/fs/cgroup, read-only",
          volume and volume.get("hostPath", {}).get("path") == "/sys/fs/cgroup" and mount.get("readOnly") is True)
    env = {e["name"]: e for e in c.get("env", [])}
    check("agent: NODE_IP from the downward API (status.hostIP)",
          env.get("NODE_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.hostIP")
    admin = c["command"][c["command"].index("--admin-address") + 1] if "--admin-address" in c["command"] else ""
    check("agent: admin endpoint on the node's loopback (the node IP is reachable from pods)",
          admin.startswith("127.0.0.1:"), admin)
    for probe in ("readinessProbe", "livenessProbe"):
        command = c.get(probe, {}).get("exec", {}).get("command", [])
        check(f"agent: {probe} runs sluicectl status on the pin directory and the admin endpoint",
              command[:1] == ["/usr/local/bin/sluicectl"] and "status" in command and pin_dir in command and
              admin in command, command)
    check("agent: liveness asks only whether the agent is alive (a gateway outage must not restart it)",
          "--live" in c.get("livenessProbe", {}).get("exec", {}).get("command", []))
    hooks = yaml.safe_dump(c.get("lifecycle", {}))
    check("agent: no lifecycle hook removes the pins (fail closed across restarts)",
          "uninstall" not in hooks and "rm " not in hooks and "disable" not in hooks, hooks)
    strategy = ds["spec"].get("updateStrategy", {})
    check("agent: rolling update, one node at a time, no surge", strategy.get("type") == "RollingUpdate" and
          strategy.get("rollingUpdate", {}).get("maxUnavailable") == 1 and
          strategy.get("rollingUpdate", {}).get("maxSurge") == 0)
    check("agent: tolerates every taint", {"operator": "Exists"} in pod.get("tolerations", []))
    check("agent: resource requests and a memory limit", "requests" in c.get("resources", {}) and
          "memory" in c.get("resources", {}).get("limits", {}))


def gateway_checks(deploy, objects):
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    labels = spec["template"]["metadata"]["labels"]
    check("gateway: 2 replicas", spec.get("replicas") == 2)
    check("gateway: host network (the egress node's address; marked sockets exempt only there)",
          pod.get("hostNetwork") is True)
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    check("gateway: required anti-affinity per node on its own pods", any(
        t.get("topologyKey") == "kubernetes.io/hostname" and
        t.get("labelSelector", {}).get("matchLabels", {}).items() <= labels.items() for t in anti), anti)
    check("gateway: runs on egress nodes", pod.get("nodeSelector", {}).get("sluice.dev/egress") == "true" and
          any(t.get("key") == "sluice.dev/egress" for t in pod.get("tolerations", [])))
    check("gateway: non-root user 65532", sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532)
    check("gateway: only NET_RAW, everything else dropped", sc.get("capabilities") ==
          {"drop": ["ALL"], "add": ["NET_RAW"]}, sc.get("capabilities"))
    check("gateway: no privilege escalation, read-only root, not privileged",
          sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True and
          sc.get("privileged") is False)
    admin = c["command"][c["command"].index("--admin-address") + 1] if "--admin-address" in c["command"] else ""
    check("gateway: admin endpoint on the node's loopback, not the agent's port (same host network)",
          admin.startswith("127.0.0.1:") and admin != "127.0.0.1:15020", admin)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(f"gateway: {probe} asks {path} on the admin endpoint",
              get.get("host") == "127.0.0.1" and str(get.get("port")) == admin.split(":")[-1] and
              get.get("path") == path, get)
    check("gateway: resource requests", "requests" in c.get("resources", {}))
    services = [d for _, d in objects if d["kind"] == "Service"]
    check("gateway: a headless Service selects its pods", any(
        s["spec"].get("clusterIP") == "None" and s["spec"]["selector"].items() <= labels.items() for s in services))
    pdbs = [d for _, d in objects if d["kind"] == "PodDisruptionBudget"]
    check("gateway: a PodDisruptionBudget keeps one up", any(
        p["spec"].get("minAvailable") == 1 and p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for p in pdbs))


def reference_checks(objects, extra):
    names = {(d["kind"], d["metadata"]["name"]) for _, d in objects + extra}
    for _, doc in objects:
        if doc["kind"] not in ("DaemonSet", "Deployment"):
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        who = f"{doc['kind']} {doc['metadata']['name']}"
        check(f"{who}: selector matches its pod labels",
              spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items())
        check(f"{who}: its ServiceAccount exists and mounts no token",
              ("ServiceAccount", pod["serviceAccountName"]) in names and pod.get("automountServiceAccountToken") is False)
        for v in pod["volumes"]:
            if "configMap" in v:
                check(f"{who}: ConfigMap {v['configMap']['name']} exists", ("ConfigMap", v["configMap"]["name"]) in names)
            if "secret" in v:
                check(f"{who}: Secret {v['secret']['secretName']} is in the examples and issued by a Certificate",
                      ("Secret", v["secret"]["secretName"]) in names and any(
                          d["kind"] == "Certificate" and d["spec"]["secretName"] == v["secret"]["secretName"]
                          for _, d in extra))
    rbac = [d["kind"] for _, d in objects if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    check("no RBAC grants: neither daemon calls the API", not rbac, rbac)


def main():
    directory, seed = sys.argv[1], sys.argv[2]
    schema = yaml.safe_load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s-schema.json")))
    objects = render(directory)
    extra = [("secrets-example.yaml", d) for d in load_docs(os.path.join(directory, "secrets-example.yaml"))]
    extra += [("cert-manager/certificates.yaml", d) for d in
              load_docs(os.path.join(directory, "cert-manager", "certificates.yaml"))]
    schema_check(objects + extra, schema)
    agent_checks(workload(objects, "DaemonSet", "sluice-agent"))
    gateway_checks(workload(objects, "Deployment", "sluice-gateway"), objects)
    reference_checks(objects, extra)
    cm = workload(objects, "ConfigMap", "sluice-rules")["data"]
    check("the ConfigMap holds the seed's Istio resources byte for byte", cm.get("seed-egress.yaml") == open(seed).read())
    agent = yaml.safe_load(cm["agent.yaml"])["agent"]
    check("the agent listens on ${NODE_IP}", agent["listen"] == "${NODE_IP}:15001")
    check("the agent enrolls the kubelet's pod parent, found for either cgroup driver",
          agent.get("kubepodsCgroup") == "auto")
    gateway = yaml.safe_load(cm["gateway.yaml"])["gateway"]
    check("the gateway listens on ${NODE_IP}", gateway["listen"] == "${NODE_IP}:15443")
    check("the agent expects the gateway's ServiceAccount identity",
          agent["gateway"]["identity"] == "spiffe://cluster.local/ns/sluice-system/sa/sluice-gateway")
    check("the gateway allows the agent's ServiceAccount identity",
          gateway["allowedClients"] == ["spiffe://cluster.local/ns/sluice-system/sa/sluice-agent"])
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
