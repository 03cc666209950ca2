"""The values placement works on: small, frozen, hashable.

Nodes with the same capacity and GPU labels share one `NodeShape`, so a rule that reads only the shape
is evaluated once per shape per request instead of once per node (see `policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (resource name, count) pairs, sorted by name: hashable and cheap to scan.
GpuCounts = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Demand:
    """What one pod needs of a node; everything a shape-only rule may read."""

    gpus: GpuCounts = ()
    cpu_milli: int = 0
    memory: int = 0
    # Acceptable values of the node's GPU product label (empty: any product).
    gpu_products: frozenset[str] = frozenset()
    # Least memory per GPU in MiB, compared with the node's GPU memory label (0: any).
    gpu_memory_mib: int = 0
    instance_type: str = ""
    # A placement annotation we cannot read: every node is refused with this sentence.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class PodInfo:
    """The pod being placed."""

    namespace: str
    name: str
    uid: str
    demand: Demand
    group: str | None = None  # replicas of one workload share it; None: no spreading


@dataclass(frozen=True, slots=True)
class NodeShape:
    """What a node offers when empty; equal for every node of a pool."""

    gpus: GpuCounts = ()
    cpu_milli: int = 0
    memory: int = 0
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    is_gpu: bool = field(init=False, compare=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_gpu", bool(self.gpus))

    def gpu_capacity(self, resource: str) -> int:
        for name, count in self.gpus:
            if name == resource:
                return count
        return 0


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    shape: NodeShape
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class BoundPod:
    """A pod counted against its node: what it holds there and which workload it belongs to."""

    node: str
    gpus: GpuCounts = ()
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a node cannot take the pod; `unresolvable` when evicting pods there would not help."""

    reason: str
    unresolvable: bool = False
