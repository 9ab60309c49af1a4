#!/usr/bin/python3
"""Runs a Kubernetes workload's pod template with podman, as a kubelet would on one node.

The container tests read the DaemonSet and the Deployment from deploy/kubernetes, not a
copy: this turns the pod template into `podman run` arguments (command, env, security
context, capabilities, mounts, limits) and materializes its ConfigMap and Secret volumes as
the kubelet does (files, defaultMode, fsGroup). A field it does not know is an error, so a
manifest change that would alter how the pod runs cannot pass unnoticed.

  pod_to_podman.py run MANIFEST KIND NAME [options]    podman run arguments, one a line
  pod_to_podman.py probes MANIFEST KIND NAME           the probes as JSON
  pod_to_podman.py configmap MANIFEST NAME DIR         the ConfigMap's data as files in DIR

run options (each names what the node would provide):
  --network PATH              the node's network namespace (stands for hostNetwork: true)
  --host-path HOST=LOCAL      where a hostPath of the manifest is on this test node
  --config-map NAME=DIR       a ConfigMap's files (written by `configmap`, maybe patched)
  --secret NAME=DIR           a Secret's files
  --field PATH=VALUE          a downward-API field (status.hostIP)
  --image IMAGE               the image the node has (the manifest's repository, test tag)
  --volumes DIR               where the pod's ConfigMap and Secret volumes are made
"""
import argparse
import json
import os
import shutil
import sys

import yaml

# Pod fields that only place the pod (one node here) or describe it to the API.
SCHEDULING = {"serviceAccountName", "automountServiceAccountToken", "dnsPolicy", "priorityClassName",
              "tolerations", "nodeSelector", "affinity"}
POD_FIELDS = SCHEDULING | {"hostNetwork", "containers", "volumes", "securityContext",
                           "terminationGracePeriodSeconds"}
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "securityContext", "ports",
                    "readinessProbe", "livenessProbe", "resources", "volumeMounts", "lifecycle"}
PROPAGATION = {"None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}


def fail(message):
    sys.exit(f"pod_to_podman: {message}")


def load(manifest, kind, name):
    with open(manifest) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    fail(f"no {kind} {name} in {manifest}")


def only(mapping, allowed, where):
    unknown = set(mapping) - allowed
    if unknown:
        fail(f"{where}: fields this runner does not know: {sorted(unknown)}")


def pairs(values):
    out = {}
    for v in values or []:
        key, _, value = v.partition("=")
        out[key] = value
    return out


def pod_spec(manifest, kind, name):
    spec = load(manifest, kind, name)["spec"]["template"]["spec"]
    only(spec, POD_FIELDS, f"{kind} {name} pod spec")
    if len(spec["containers"]) != 1:
        fail(f"{kind} {name}: one container expected")
    container = spec["containers"][0]
    only(container, CONTAINER_FIELDS, f"{kind} {name} container")
    return spec, container


def security_args(pod_sc, sc, where):
    only(pod_sc, {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}, where + " pod securityContext")
    only(sc, {"privileged", "runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation",
              "readOnlyRootFilesystem", "seccompProfile", "capabilities"}, where + " securityContext")
    merged = {**pod_sc, **sc}
    args = []
    if merged.get("privileged"):
        args.append("--privileged")
    if "runAsUser" in merged:
        if merged.get("runAsNonRoot") and merged["runAsUser"] == 0:
            fail(f"{where}: runAsNonRoot with runAsUser 0")
        args.append(f"--user={merged['runAsUser']}:{merged.get('runAsGroup', merged['runAsUser'])}")
    elif merged.get("runAsNonRoot"):
        fail(f"{where}: runAsNonRoot without runAsUser: the kubelet would check the image's user")
    if "fsGroup" in merged:
        args.append(f"--group-add={merged['fsGroup']}")
    if merged.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    if merged.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    seccomp = merged.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args.append("--security-opt=seccomp=unconfined")
    elif seccomp != "RuntimeDefault":
        fail(f"{where}: seccompProfile {seccomp} not supported here")
    caps = sc.get("capabilities", {})
    only(caps, {"add", "drop"}, where + " capabilities")
    args += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    args += [f"--cap-add={c}" for c in caps.get("add", [])]
    return args


def materialize(source, target, mode, group):
    """Copies a ConfigMap's or Secret's files as the kubelet projects them."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    for entry in os.listdir(target):
        path = os.path.join(target, entry)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, 0, group)
    os.chmod(target, 0o755)


def volume_args(spec, container, options, pod_sc):
    host_paths, config_maps, secrets = pairs(options.host_path), pairs(options.config_map), pairs(options.secret)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    group = pod_sc.get("fsGroup")
    args = []
    for mount in container.get("volumeMounts", []):
        only(mount, {"name", "mountPath", "readOnly", "mountPropagation"}, f"volumeMount {mount['name']}")
        volume = volumes[mount["name"]]
        flags = ["ro" if mount.get("readOnly") else "rw"]
        if "hostPath" in volume:
            only(volume["hostPath"], {"path", "type"}, f"volume {volume['name']}")
            path = volume["hostPath"]["path"]
            if path not in host_paths:
                fail(f"hostPath {path}: the test did not say where it is on this node (--host-path)")
            local = host_paths[path]
            if volume["hostPath"].get("type") == "Directory" and not os.path.isdir(local):
                fail(f"hostPath {path} (type Directory): {local} is not a directory")
            flags.append(PROPAGATION[mount.get("mountPropagation", "None")])
        elif "configMap" in volume:
            only(volume["configMap"], {"name", "defaultMode"}, f"volume {volume['name']}")
            source = config_maps.get(volume["configMap"]["name"]) or fail(f"ConfigMap {volume['configMap']['name']} not given")
            local = os.path.join(options.volumes, volume["name"])
            materialize(source, local, volume["configMap"].get("defaultMode", 0o644), None)
        elif "secret" in volume:
            only(volume["secret"], {"secretName", "defaultMode"}, f"volume {volume['name']}")
            source = secrets.get(volume["secret"]["secretName"]) or fail(f"Secret {volume['secret']['secretName']} not given")
            local = os.path.join(options.volumes, volume["name"])
            materialize(source, local, volume["secret"].get("defaultMode", 0o644), group)
        else:
            fail(f"volume {volume['name']}: kind not supported here")
        args.append(f"--volume={local}:{mount['mountPath']}:{','.join(flags)}")
    return args


def env_args(container, fields):
    args = []
    for env in container.get("env", []):
        if "value" in env:
            value = env["value"]
        else:
            path = env["valueFrom"]["fieldRef"]["fieldPath"]
            if path not in fields:
                fail(f"env {env['name']}: the test did not give field {path} (--field)")
            value = fields[path]
        args.append(f"--env={env['name']}={value}")
    return args


def run_args(options):
    spec, container = pod_spec(options.manifest, options.kind, options.name)
    where = f"{options.kind} {options.name}"
    if not spec.get("hostNetwork"):
        fail(f"{where}: expected hostNetwork (the test gives the node's namespace)")
    repository = container["image"].rpartition(":")[0]
    if options.image.rpartition(":")[0] != repository:
        fail(f"{where}: image {options.image} is not of the manifest's repository {repository}")
    pod_sc = spec.get("securityContext", {})
    args = [f"--network=ns:{options.network}", "--pull=never",
            f"--stop-timeout={spec.get('terminationGracePeriodSeconds', 30)}"]
    args += security_args(pod_sc, container.get("securityContext", {}), where)
    args += env_args(container, pairs(options.field))
    args += volume_args(spec, container, options, pod_sc)
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args.append(f"--memory={limits['memory'].replace('Mi', 'm').replace('Gi', 'g')}")
    command = container["command"] + container.get("args", [])
    args += [f"--entrypoint={command[0]}", options.image] + command[1:]
    print("\n".join(args))


def probes(options):
    _, container = pod_spec(options.manifest, options.kind, options.name)
    print(json.dumps({k: container[k] for k in ("readinessProbe", "livenessProbe") if k in container}))


def configmap(options):
    data = load(options.manifest, "ConfigMap", options.name)["data"]
    os.makedirs(options.dir, exist_ok=True)
    for key, text in data.items():
        with open(os.path.join(options.dir, key), "w") as f:
            f.write(text)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "probes"):
        p = sub.add_parser(name)
        p.add_argument("manifest")
        p.add_argument("kind")
        p.add_argument("name")
    run = sub.choices["run"]
    run.add_argument("--network", required=True)
    run.add_argument("--image", required=True)
    run.add_argument("--volumes", required=True)
    for flag in ("--host-path", "--config-map", "--secret", "--field"):
        run.add_argument(flag, action="append")
    cm = sub.add_parser("configmap")
    cm.add_argument("manifest")
    cm.add_argument("name")
    cm.add_argument("dir")
    options = parser.parse_args()
    {"run": run_args, "probes": probes, "configmap": configmap}[options.command](options)


if __name__ == "__main__":
    main()
