"""Kubernetes JSON (plain dicts) to the compact values in `model`.

Used for the pod in every request and for every node and pod event of the cache, so it reads only
the handful of fields placement needs and keeps nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from extender import resources
from extender.model import BoundPod, Demand, Node, NodeShape, PodInfo
from inferplane.errors import BadRequest
from instance_types.quantity import QuantityError

ZONE_LABEL = "topology.kubernetes.io/zone"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # GPU feature discovery, e.g. NVIDIA-A100-SXM4-80GB
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # GPU feature discovery: MiB per GPU, e.g. 81920
INSTANCE_TYPE_LABEL = "ml.example/instance-type"
# Pod annotations (copied from the InstanceType by the webhook) that narrow the GPU kind:
GPU_PRODUCT_ANNOTATION = "ml.example/gpu-product"  # comma-separated acceptable products
GPU_MEMORY_ANNOTATION = "ml.example/gpu-memory"  # least memory per GPU, a quantity such as 40Gi
TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})
MIB = 2**20


def node_from(obj: Mapping[str, Any], accelerators: resources.Accelerators = resources.DEFAULT) -> Node:
    """A Node object to its name, shape and zone; allocatable wins over capacity. Its GPUs are the
    `accelerators` it offers: a node with other extended resources only is no GPU node."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    offered = dict(status.get("capacity") or {})
    offered.update(status.get("allocatable") or {})
    amounts = resources.quantities(offered)
    gpus = resources.gpu_counts(amounts, accelerators)
    shape = NodeShape(
        gpus=tuple((name, count) for name, count in gpus if count > 0),
        cpu_milli=int(amounts.get("cpu", 0) * 1000),
        memory=int(amounts.get("memory", 0)),
        gpu_product=labels.get(GPU_PRODUCT_LABEL),
        gpu_memory_mib=_int_or_none(labels.get(GPU_MEMORY_LABEL)),
    )
    return Node(name=sys.intern(metadata["name"]), shape=shape, zone=_interned(labels.get(ZONE_LABEL)))


def bound_pod_from(
    obj: Mapping[str, Any], accelerators: resources.Accelerators = resources.DEFAULT
) -> BoundPod | None:
    """What a pod holds on its node, or None when it holds nothing (not bound, or finished)."""
    spec = obj.get("spec") or {}
    node = spec.get("nodeName")
    if not node or (obj.get("status") or {}).get("phase") in TERMINATED_PHASES:
        return None
    gpus = resources.gpu_counts(resources.effective_requests(spec), accelerators) if _extended(spec) else ()
    return BoundPod(node=sys.intern(node), gpus=gpus, group=group_of(obj))


def _extended(spec: Mapping[str, Any]) -> bool:
    """Whether any container asks for an extended resource: most pods do not, and skipping the
    exact arithmetic for them halves the time to load 150,000 pods."""
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            resources_ = container.get("resources") or {}
            for amounts in (resources_.get("limits"), resources_.get("requests")):
                if amounts and any("/" in name for name in amounts):
                    return True
    return False


def pod_from(obj: Any, accelerators: resources.Accelerators = resources.DEFAULT) -> PodInfo:
    """The pod a scheduler request is about; BadRequest says what is malformed. Its GPUs are the
    `accelerators` it asks for."""
    if not isinstance(obj, Mapping):
        raise BadRequest(f"Pod must be a JSON object, got {type(obj).__name__}")
    metadata = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
        raise BadRequest("Pod needs the objects metadata and spec")
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list) or not all(isinstance(c, Mapping) for c in containers):
            raise BadRequest(f"Pod {namespace}/{name}: spec.{key} must be a list of objects")
    try:
        requests = resources.effective_requests(spec)
    except (QuantityError, ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"Pod {namespace}/{name}: resources: {exc}") from exc
    return PodInfo(
        namespace=namespace,
        name=name,
        uid=str(metadata.get("uid") or ""),
        demand=_demand(requests, metadata, accelerators),
        group=group_of(obj),
    )


def _demand(
    requests: Mapping[str, Any], metadata: Mapping[str, Any], accelerators: resources.Accelerators
) -> Demand:
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    problem = None
    products = frozenset(
        p.strip() for p in str(annotations.get(GPU_PRODUCT_ANNOTATION, "")).split(",") if p.strip()
    )
    memory_mib = 0
    if GPU_MEMORY_ANNOTATION in annotations:
        memory_mib, problem = _gpu_memory(str(annotations[GPU_MEMORY_ANNOTATION]))
    return Demand(
        gpus=resources.gpu_counts(requests, accelerators),
        cpu_milli=resources.cpu_milli(requests),
        memory=resources.memory_bytes(requests),
        gpu_products=products,
        gpu_memory_mib=memory_mib,
        instance_type=str(labels.get(INSTANCE_TYPE_LABEL, "")),
        problem=problem,
    )


def _gpu_memory(text: str) -> tuple[int, str | None]:
    """MiB from an annotation such as `40Gi`; a bare number is refused, its unit would be a guess."""
    bad = f"annotation {GPU_MEMORY_ANNOTATION}={text!r} is not a size such as 40Gi or 24000Mi"
    if text.strip().isdigit():
        return 0, bad
    try:
        value = resources.parse_quantity(text)
    except QuantityError:
        return 0, bad
    return -(-int(value) // MIB), None  # round up: 1 byte over a MiB still needs the next MiB


def group_of(obj: Mapping[str, Any]) -> str | None:
    """Replicas of one workload share this key: namespace and controller, ReplicaSets folded into
    their Deployment (via pod-template-hash) so a rollout's old and new pods spread together."""
    metadata = obj.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or ():
        if not owner.get("controller"):
            continue
        kind, name = owner.get("kind", ""), owner.get("name", "")
        template_hash = (metadata.get("labels") or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
            kind, name = "Deployment", name[: -len(template_hash) - 1]
        return sys.intern(f"{metadata.get('namespace', '')}/{kind}/{name}")
    return None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _interned(text: str | None) -> str | None:
    return sys.intern(text) if text else None
