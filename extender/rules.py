"""Filter rules: each says, for the pod and a node, whether the node can take it and if not why.

A rule's `scope` says what it reads, which is what lets the policy stay fast at 5,000 nodes:

- SHAPE rules, (pod, node, context) -> Reject | None, read only the pod, `node.shape` and the
  request-wide context; the policy calls them once per distinct shape per request (a pool of 1,000
  identical nodes costs one call).
- NODE rules read each node's current load (GPUs held by bound pods), so they take all candidate
  nodes at once as a `Batch` of table rows: (pod, batch, context) -> {index in batch: Reject}.
- CANDIDATES rules are SHAPE rules that also read what the request looks like once the others have
  run (`cpu_node_feasible`), so they run last, again once per shape.

A reason is one line, without the node name (the policy prefixes it); `unresolvable` marks what no
eviction on that node can fix, so the scheduler does not preempt pods there for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from extender.batch import Batch
from extender.config import CpuOnGpu
from extender.model import Demand, Node, PodInfo, Reject
from extender.parse import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL

MIB = 2**20


@dataclass(frozen=True)
class Context:
    """What a rule may read besides the pod and the node; built once per request."""

    cpu_pods_on_gpu_nodes: CpuOnGpu = "allow"
    cpu_node_feasible: bool = False  # set for CANDIDATES rules: a CPU node passed every other rule


class Scope(Enum):
    SHAPE = "shape"
    ZONE = "zone"  # scores only: reads node.zone and the request-wide context
    NODE = "node"
    CANDIDATES = "candidates"


@dataclass(frozen=True)
class Rule:
    name: str  # metrics label
    check: Callable[..., Any]  # SHAPE/CANDIDATES: (pod, node, ctx); NODE: (pod, batch, ctx)
    scope: Scope
    applies: Callable[[Demand], bool] = lambda demand: True


def _wants(demand: Demand, amount: object) -> str:
    who = f"instance type {demand.instance_type}" if demand.instance_type else "the pod"
    return f"{who} needs {amount}"


def readable_placement(pod: PodInfo, node: Node, ctx: Context) -> Reject | None:
    """A placement annotation we cannot read refuses every node rather than guessing."""
    problem = pod.demand.problem
    return Reject(problem, unresolvable=True) if problem else None


def gpu_kind(pod: PodInfo, node: Node, ctx: Context) -> Reject | None:
    """The node has the GPU resource asked for, of an acceptable product and memory size."""
    demand, shape = pod.demand, node.shape
    for resource, _ in demand.gpus:
        if not shape.gpu_capacity(resource):
            return Reject(f"no {resource} on this node", unresolvable=True)
    if demand.gpu_products and shape.gpu_product not in demand.gpu_products:
        have = shape.gpu_product or f"no {GPU_PRODUCT_LABEL} label"
        wanted = ", ".join(sorted(demand.gpu_products))
        return Reject(f"GPU product {have}; {_wants(demand, 'one of ' + wanted)}", unresolvable=True)
    if demand.gpu_memory_mib and (shape.gpu_memory_mib or 0) < demand.gpu_memory_mib:
        have = f"{shape.gpu_memory_mib} MiB" if shape.gpu_memory_mib else f"no {GPU_MEMORY_LABEL} label"
        return Reject(
            f"GPU memory {have}; {_wants(demand, f'{demand.gpu_memory_mib} MiB per GPU')}",
            unresolvable=True,
        )
    return None


def fits_when_empty(pod: PodInfo, node: Node, ctx: Context) -> Reject | None:
    """Even with nothing else on it the node is too small: waiting never helps."""
    demand, shape = pod.demand, node.shape
    if demand.cpu_milli > shape.cpu_milli:
        return Reject(
            f"too small even when empty: {shape.cpu_milli}m cpu allocatable; "
            f"{_wants(demand, f'{demand.cpu_milli}m')}",
            unresolvable=True,
        )
    if demand.memory > shape.memory:
        return Reject(
            f"too small even when empty: {shape.memory // MIB}Mi memory allocatable; "
            f"{_wants(demand, f'{-(-demand.memory // MIB)}Mi')}",
            unresolvable=True,
        )
    for resource, need in demand.gpus:
        capacity = shape.gpu_capacity(resource)
        if need > capacity:
            return Reject(
                f"too small even when empty: {capacity} {resource}; {_wants(demand, need)}",
                unresolvable=True,
            )
    return None


def gpus_free(pod: PodInfo, batch: Batch, ctx: Context) -> dict[int, Reject]:
    """Enough GPUs of each kind are not held by pods bound to the node (evicting some may help)."""
    refused: dict[int, Reject] = {}
    for resource, need in pod.demand.gpus:
        capacity = batch.capacity(resource)
        free = capacity - batch.held(resource)
        reasons: dict[tuple[int, int], Reject] = {}  # nodes of one pool mostly share the numbers
        for index in np.flatnonzero(free < need).tolist():
            key = (max(int(free[index]), 0), int(capacity[index]))
            if key not in reasons:
                reasons[key] = Reject(f"{key[0]} of {key[1]} {resource} free; {_wants(pod.demand, need)}")
            refused.setdefault(index, reasons[key])
    return refused


def cpu_pod_off_gpu_nodes(pod: PodInfo, node: Node, ctx: Context) -> Reject | None:
    """A CPU-only pod stays off GPU nodes while a CPU node can take it; otherwise the setting decides."""
    if not node.shape.is_gpu:
        return None
    if ctx.cpu_node_feasible:
        return Reject("GPU node kept for GPU pods; a CPU node fits this CPU-only pod")
    if ctx.cpu_pods_on_gpu_nodes == "refuse":
        return Reject(
            "GPU node refused to a CPU-only pod and no CPU node fits (cpu-pods-on-gpu-nodes=refuse)",
            unresolvable=True,
        )
    return None


def _is_gpu(demand: Demand) -> bool:
    return bool(demand.gpus)


def _is_cpu_only(demand: Demand) -> bool:
    return not demand.gpus


# In the order they are checked; the first rejection is the reason shown.
RULES: tuple[Rule, ...] = (
    Rule("readable-placement", readable_placement, Scope.SHAPE, lambda d: d.problem is not None),
    Rule("gpu-kind", gpu_kind, Scope.SHAPE, _is_gpu),
    Rule("fits-when-empty", fits_when_empty, Scope.SHAPE),
    Rule("gpus-free", gpus_free, Scope.NODE, _is_gpu),
    Rule("cpu-pod-off-gpu-nodes", cpu_pod_off_gpu_nodes, Scope.CANDIDATES, _is_cpu_only),
)
