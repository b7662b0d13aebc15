#!/usr/bin/env python3
"""Turns the container of deploy/daemonset.yaml into a `podman run` command.

The node is the same, only the runtime differs: what the kubelet would ask of
containerd (host PID namespace, privileges, capabilities, read-only root,
hostPath mounts, args, env, limits) becomes podman flags. What has no podman
equivalent (probes, the pod network's Service) is printed for the caller to
act on, so that a test can run the DaemonSet's container exactly as written.

    deploy/daemonset-podman.py [--image REF] [--name NAME]
                               [--netns PATH | --publish IP:PORT] [--json] [FILE]

Prints the `podman run` arguments one per line; with --json, an object with
"run" (the arguments), "image" (the YAML's), "probes", "ports", "scrape" (the Service's prometheus.io
annotations), the grace period and the host paths. A field this script does
not know how to translate is an error, never silently dropped: the DaemonSet
must not say something the test does not exercise. A hostPath of type
DirectoryOrCreate is not created here (the kubelet would): podman refuses a
missing source, so create it first.
"""
import argparse
import json
import os
import sys

import yaml

# Fields that only concern scheduling or the API server: nothing to translate.
POD_IGNORED = {"priorityClassName", "tolerations", "nodeSelector", "affinity", "automountServiceAccountToken",
               "serviceAccountName", "dnsPolicy", "terminationGracePeriodSeconds", "hostPID", "hostNetwork",
               "hostIPC", "containers", "volumes"}
CONTAINER_KNOWN = {"name", "image", "imagePullPolicy", "command", "args", "env", "ports", "securityContext",
                   "resources", "livenessProbe", "readinessProbe", "startupProbe", "volumeMounts"}
SECURITY_KNOWN = {"privileged", "readOnlyRootFilesystem", "capabilities", "runAsUser", "runAsGroup",
                  "runAsNonRoot", "allowPrivilegeEscalation"}


class Untranslatable(Exception):
    pass


def check_known(what, mapping, known):
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise Untranslatable(f"{what}: no podman translation for {', '.join(unknown)}")


def cpu_millis(value):
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def memory_bytes(value):
    text = str(value)
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def documents_of(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    sets = [d for d in docs if d.get("kind") == "DaemonSet"]
    if len(sets) != 1:
        raise Untranslatable(f"{path}: wants exactly one DaemonSet, found {len(sets)}")
    return sets[0], [d for d in docs if d.get("kind") == "Service"]


def scrape_of(services, ports):
    """How Prometheus's kubernetes_sd relabelling would scrape the pods: the
    Service's prometheus.io annotations, the port resolved through targetPort."""
    for svc in services:
        notes = svc.get("metadata", {}).get("annotations", {})
        if notes.get("prometheus.io/scrape") != "true":
            continue
        port = int(notes.get("prometheus.io/port", 0))
        for p in svc["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            if not port and isinstance(target, str):
                port = ports[target]
        return {"port": port, "path": notes.get("prometheus.io/path", "/metrics")}
    raise Untranslatable("no Service with prometheus.io/scrape: \"true\"")


def translate(ds, services, image, name, publish=None, netns=None):
    pod = ds["spec"]["template"]["spec"]
    check_known("pod spec", pod, POD_IGNORED)
    containers = pod["containers"]
    if len(containers) != 1:
        raise Untranslatable(f"wants one container, found {len(containers)}")
    c = containers[0]
    check_known(f"container {c['name']}", c, CONTAINER_KNOWN)

    run = ["run", "--detach", "--name", name]
    run.append("--pid=host" if pod.get("hostPID") else "--pid=private")
    if pod.get("hostIPC"):
        run.append("--ipc=host")
    if "terminationGracePeriodSeconds" in pod:
        run.append(f"--stop-timeout={pod['terminationGracePeriodSeconds']}")

    # The pod network: a network namespace of its own, whose address Prometheus
    # scrapes (--netns: one the caller made, as a CNI plugin would), or podman's
    # bridge with the container port published on the host (--publish).
    ports = {}
    for p in c.get("ports", []):
        if p.get("protocol", "TCP") != "TCP":
            raise Untranslatable(f"port {p}: only TCP is translated")
        ports[p.get("name", str(p["containerPort"]))] = p["containerPort"]
    if pod.get("hostNetwork"):
        run.append("--network=host")
    elif netns:
        run.append(f"--network=ns:{netns}")
    else:
        if publish and len(ports) != 1:
            raise Untranslatable("--publish wants exactly one container port")
        for port in ports.values():
            if publish:
                run.append(f"--publish={publish}:{port}/tcp")

    sc = c.get("securityContext", {})
    check_known("securityContext", sc, SECURITY_KNOWN)
    if sc.get("privileged"):
        run.append("--privileged")
    caps = sc.get("capabilities", {})
    check_known("capabilities", caps, {"add", "drop"})
    run += [f"--cap-drop={cap}" for cap in caps.get("drop", [])]
    run += [f"--cap-add={cap}" for cap in caps.get("add", [])]
    if sc.get("readOnlyRootFilesystem"):
        # The kubelet adds no tmpfs of its own: neither may podman.
        run += ["--read-only", "--read-only-tmpfs=false"]
    if "runAsUser" in sc or "runAsGroup" in sc:
        run.append(f"--user={sc.get('runAsUser', 0)}:{sc.get('runAsGroup', 0)}")
    if sc.get("allowPrivilegeEscalation") is False:
        run.append("--security-opt=no-new-privileges")

    resources = c.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if "memory" in limits:
        run.append(f"--memory={memory_bytes(limits['memory'])}")
    if "cpu" in limits:
        run.append(f"--cpus={cpu_millis(limits['cpu']) / 1000:g}")
    if "cpu" in requests:  # what the kubelet makes of a request: cpu.shares
        run.append(f"--cpu-shares={max(2, cpu_millis(requests['cpu']) * 1024 // 1000)}")

    for e in c.get("env", []):
        if "value" not in e:
            raise Untranslatable(f"env {e['name']}: only literal values are translated")
        run.append(f"--env={e['name']}={e['value']}")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        check_known(f"volumeMount {m['name']}", m, {"name", "mountPath", "readOnly", "mountPropagation"})
        v = volumes.get(m["name"])
        if v is None or "hostPath" not in v:
            raise Untranslatable(f"volumeMount {m['name']}: only hostPath volumes are translated")
        host_path = v["hostPath"]
        if host_path.get("type") == "Directory" and not os.path.isdir(host_path["path"]):
            raise Untranslatable(f"volume {v['name']}: {host_path['path']} is not a directory on this host")
        options = ["type=bind", f"source={v['hostPath']['path']}", f"destination={m['mountPath']}"]
        if m.get("readOnly"):
            options.append("readonly=true")
        # The kubelet's default (None) is a private recursive bind.
        propagation = {"None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}
        options.append(f"bind-propagation={propagation[m.get('mountPropagation', 'None')]}")
        run.append("--mount=" + ",".join(options))

    if "command" in c:
        run.append("--entrypoint=" + json.dumps(c["command"]))
    run.append(image or c["image"])
    run += [str(a) for a in c.get("args", [])]

    probes = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind not in c:
            continue
        p = dict(c[kind])
        get = p.get("httpGet")
        if get is None:
            raise Untranslatable(f"{kind}: only httpGet probes are translated")
        port = get["port"]
        p["httpGet"] = dict(get, port=ports[port] if isinstance(port, str) else port)
        # The defaults Kubernetes applies to what the YAML leaves out.
        for field, default in (("initialDelaySeconds", 0), ("periodSeconds", 10), ("timeoutSeconds", 1),
                               ("failureThreshold", 3), ("successThreshold", 1)):
            p.setdefault(field, default)
        probes[kind] = p
    return {"run": run, "image": c["image"], "probes": probes, "ports": ports, "scrape": scrape_of(services, ports),
            "terminationGracePeriodSeconds": pod.get("terminationGracePeriodSeconds", 30),
            "hostPaths": [v["hostPath"] for v in volumes.values() if "hostPath" in v]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="deploy/daemonset.yaml")
    ap.add_argument("--image", help="image to run instead of the one the YAML names")
    ap.add_argument("--name", default="slabtrace", help="container name")
    ap.add_argument("--netns", metavar="PATH", help="network namespace to run in (the pod network)")
    ap.add_argument("--publish", metavar="IP:PORT", help="without --netns: host address to publish the container port on")
    ap.add_argument("--json", action="store_true", help="print run arguments, probes and ports as JSON")
    a = ap.parse_args()
    try:
        out = translate(*documents_of(a.file), a.image, a.name, a.publish, a.netns)
    except (Untranslatable, KeyError, OSError, yaml.YAMLError) as e:
        print(f"daemonset-podman: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(out))
    else:
        print("\n".join(out["run"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
