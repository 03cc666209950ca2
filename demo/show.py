"""What the demo prints about pods and the outcome, and the shares it expects: pure functions over
the objects the apiserver returns."""

from __future__ import annotations

import json
from typing import Any

from demo.report import Outcome

INJECTED = "ml.example/injected"


def describe_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """What the webhook put in a pod, where it runs, and how the router reaches it."""
    meta, spec = pod["metadata"], pod["spec"]
    annotations = meta.get("annotations") or {}
    injected = json.loads(annotations.get(INJECTED, "{}"))
    container = next(
        (c for c in spec["containers"] if c["name"] == injected.get("container")), spec["containers"][0]
    )
    owner = next(
        (o["name"] for o in meta.get("ownerReferences") or [] if o["kind"] == "ReplicaSet"), meta["name"]
    )
    template_hash = (meta.get("labels") or {}).get("pod-template-hash", "")
    ports = [p["containerPort"] for p in container.get("ports") or []]
    injected_env = injected.get("env", [])
    defaulted = "node.kubernetes.io/"  # tolerations the apiserver adds to every pod
    return {
        "name": meta["name"],
        "deployment": owner.removesuffix(f"-{template_hash}") if template_hash else owner,
        "node": spec.get("nodeName"),
        "ip": (pod.get("status") or {}).get("podIP"),
        "port": ports[0] if ports else 5001,
        "models": injected.get("models"),
        "instance_type": injected.get("instanceType"),
        "scheduler": spec.get("schedulerName"),
        "init_containers": [" ".join(c.get("command") or []) for c in spec.get("initContainers") or []],
        "volumes": injected.get("volumes"),
        "env": {e["name"]: e.get("value") for e in container.get("env") or [] if e["name"] in injected_env},
        "resources": container.get("resources"),
        "node_selector": spec.get("nodeSelector"),
        "tolerations": [
            t for t in spec.get("tolerations") or [] if not t.get("key", "").startswith(defaulted)
        ],
        "annotations": {
            k: v for k, v in annotations.items() if k.startswith("ml.example/") and k != INJECTED
        },
    }


def format_pod(pod: dict[str, Any]) -> str:
    lines = [f"{pod['name']}  ({pod['deployment']}, {pod['models']}, instance type {pod['instance_type']})"]
    lines.append(f"  injected: init container `{'; '.join(pod['init_containers'])}`")
    lines.append(f"            volumes {', '.join(pod['volumes'] or [])}")
    lines.append("            env " + ", ".join(f"{k}={v}" for k, v in pod["env"].items()))
    resources = pod["resources"] or {}
    lines.append(f"            requests {resources.get('requests')}, limits {resources.get('limits')}")
    if pod["node_selector"]:
        lines.append(f"            nodeSelector {pod['node_selector']}, tolerations {pod['tolerations']}")
    lines.append(f"            schedulerName {pod['scheduler']}")
    lines.append(f"  placed on {pod['node']} at {pod['ip']}:{pod['port']}")
    decision = pod.get("extender")
    if decision:
        asked = sorted({*decision["passed"], *decision["refused"]})
        lines.append(f"  why: kube-scheduler's own filters left {', '.join(asked)}; the extender then")
        for node, reason in sorted(decision["refused"].items()):
            lines.append(f"       refused {node}: {reason.removeprefix(node + ': ')}")
        if decision["scores"]:
            scores = ", ".join(f"{n} {s}" for n, s in sorted(decision["scores"].items()))
            lines.append(f"       scored {scores} (its 0-10 rank: GPU bin-packing, then replicas spread)")
        else:
            lines.append(f"       kept {', '.join(decision['passed'])}: one node left, nothing to score")
    return "\n".join(lines)


def shares(deployments: dict[str, dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Live shares and mirror percents from the pods' annotations, Azure's rule for the remainder:
    it goes to the default deployment, the first one created (blue here)."""
    traffic = {name: int(p["annotations"].get("ml.example/traffic", 0)) for name, p in deployments.items()}
    mirrors = {
        name: int(p["annotations"]["ml.example/mirror"])
        for name, p in deployments.items()
        if p["annotations"].get("ml.example/mirror")
    }
    default = "iris-blue" if "iris-blue" in traffic else next(iter(traffic))
    traffic[default] += 100 - sum(traffic.values())
    return {name: share for name, share in traffic.items() if share > 0}, mirrors


def format_outcome(outcome: Outcome) -> str:
    lines = [
        f"{outcome.requests} requests: HTTP {outcome.statuses}; {outcome.answers_correct} answers right; "
        f"latency p50 {outcome.latency_ms_p50} ms, p99 {outcome.latency_ms_p99} ms"
    ]
    for name, count in sorted(outcome.split.items()):
        bounds = outcome.expected.get(name)
        want = f"expected {bounds.expected} ({bounds.low}..{bounds.high})" if bounds else "expected none"
        lines.append(f"  live  {name}: {count}  {want}")
    for name, count in sorted(outcome.mirrored.items()):
        bounds = outcome.expected_mirror[name]
        lines.append(
            f"  mirror {name}: {count} copies  expected {bounds.expected} ({bounds.low}..{bounds.high})"
        )
    lines.append(
        "OK: split, mirror and answers as annotated"
        if outcome.ok
        else "PROBLEMS: " + "; ".join(outcome.problems)
    )
    return "\n".join(lines)
