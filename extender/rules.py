"""Filter rules: each is a function (pod, node, context) -> Reject | None.

A rule's `scope` says what it reads, which is what lets the policy stay fast at 5,000 nodes:

- SHAPE rules read only `pod.demand` and `node.shape`; the policy evaluates them once per distinct
  shape per request (a pool of 1,000 identical nodes costs one call).
- NODE rules read the node's current load from the context (GPUs held by bound pods).
- CANDIDATES rules read what the whole request looks like after the other rules (`cpu_node_feasible`).

A reason is one line, without the node name (the policy prefixes it); `unresolvable` marks what no
eviction on that node can fix, so the scheduler does not preempt pods there for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from extender.config import CpuOnGpu
from extender.model import Demand, Node, PodInfo, Reject
from extender.parse import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL

MIB = 2**20


@dataclass(frozen=True)
class Context:
    """What a rule may read besides the pod and the node; built once per request."""

    gpus_used: Mapping[str, Mapping[str, int]]
    cpu_pods_on_gpu_nodes: CpuOnGpu = "allow"
    cpu_node_feasible: bool = False  # set for CANDIDATES rules: a CPU node passed every other rule


class Scope(Enum):
    SHAPE = "shape"
    NODE = "node"
    CANDIDATES = "candidates"


@dataclass(frozen=True)
class Rule:
    name: str  # metrics label
    check: Callable[[PodInfo, Node, Context], Reject | None]
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


def gpus_free(pod: PodInfo, node: Node, ctx: Context) -> Reject | None:
    """Enough GPUs of each kind are not held by pods bound to the node (evicting some may help)."""
    held = ctx.gpus_used.get(node.name)
    for resource, need in pod.demand.gpus:
        capacity = node.shape.gpu_capacity(resource)
        free = capacity - (held.get(resource, 0) if held else 0)
        if free < need:
            return Reject(f"{max(free, 0)} of {capacity} {resource} free; {_wants(pod.demand, need)}")
    return None


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
