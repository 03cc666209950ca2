"""Node objects that stand in for machines: what a kubelet would register and report.

The scheduler, the controllers and our extender only ever see a machine
through its Node object, so a Node with the right labels, capacity and Ready
condition is, to them, the machine. Pure functions: no cluster needed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any


def node_manifest(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Node a kubelet would create, with the well-known labels it sets."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **(labels or {}),
            },
        },
    }


def node_resources(
    cpu: str, memory: str, pods: str, gpus: int = 0, gpu_resource: str = "nvidia.com/gpu"
) -> dict[str, str]:
    """Capacity (and allocatable): a device plugin would add ``gpu_resource``."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    if gpus:
        resources[gpu_resource] = str(gpus)
    return resources


_HEALTHY = (
    ("Ready", "True", "KubeletReady"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID"),
)


def ready_status(name: str, resources: Mapping[str, str], kubelet_version: str) -> dict[str, Any]:
    """A NodeStatus as a healthy kubelet reports it, stamped now."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": [
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": "fake node: status written by the e2e suite",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for kind, value, reason in _HEALTHY
        ],
        "addresses": [{"type": "Hostname", "address": name}],
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": kubelet_version,
            "containerRuntimeVersion": "fake://0",
            "kernelVersion": "",
            "osImage": "",
            "bootID": "",
            "machineID": "",
            "systemUUID": "",
        },
    }


def status_patch(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch writing ``status``. Patches, not read-modify-write: controllers
    annotate new Nodes concurrently and a replace would lose the race with a 409."""
    return [{"op": "add", "path": f"/status/{key}", "value": value} for key, value in status.items()]


def taints_patch(taints: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """A JSON patch setting exactly ``taints`` (dropping the admission-added not-ready one)."""
    return [{"op": "add", "path": "/spec/taints", "value": [dict(t) for t in taints]}]
