"""Kubernetes JSON for nodes and pods as the API serves them, for tests, the benchmark and the e2e.

One place builds these shapes so the unit tables, the benchmark's 5,000 nodes and the objects the e2e
suite creates on a real apiserver agree on what a GPU node or a scoring pod looks like.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from extender.parse import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, INSTANCE_TYPE_LABEL, ZONE_LABEL

GPU = "nvidia.com/gpu"


def node(
    name: str,
    *,
    cpu: str = "8",
    memory: str = "32Gi",
    gpus: int = 0,
    gpu_resource: str = GPU,
    product: str | None = None,
    gpu_memory_mib: int | None = None,
    zone: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if zone:
        all_labels[ZONE_LABEL] = zone
    if product:
        all_labels[GPU_PRODUCT_LABEL] = product
    if gpu_memory_mib:
        all_labels[GPU_MEMORY_LABEL] = str(gpu_memory_mib)
    offered = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        offered[gpu_resource] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "status": {"capacity": dict(offered), "allocatable": dict(offered)},
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str = "100m",
    memory: str = "128Mi",
    gpus: int = 0,
    gpu_resource: str = GPU,
    node_name: str | None = None,
    deployment: str | None = None,
    instance_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    scheduler_name: str | None = None,
    phase: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A pod as a ReplicaSet of `deployment` would make it, with the webhook's injected resources."""
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits[gpu_resource] = str(gpus)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())}
    labels: dict[str, str] = {}
    if instance_type:
        labels[INSTANCE_TYPE_LABEL] = instance_type
    if deployment:
        labels["app"] = deployment
        labels["pod-template-hash"] = "5d8f7c9b6d"
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{deployment}-5d8f7c9b6d",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{deployment}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "containers": [
            {"name": "score", "image": "scoring:1", "resources": {"requests": dict(limits), "limits": limits}}
        ]
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase or ("Running" if node_name else "Pending")},
    }


def deployment(name: str, template: Mapping[str, Any], replicas: int = 1) -> dict[str, Any]:
    """A Deployment whose pods are `template` (a pod from `pod()`), selected by `app: <name>`."""
    labels = {"app": name}
    metadata = template["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": metadata["namespace"]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**metadata.get("labels", {}), **labels}},
                "spec": template["spec"],
            },
        },
    }
