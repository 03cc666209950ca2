"""Scoring rules: each gives every feasible node a number, higher is better.

The policy orders feasible nodes by the tuple of these numbers, in the order of `SCORES` (so a later
rule only separates nodes the earlier ones found equal), and turns that order into 0-10; see README.
Like filter rules, each declares what it reads: SHAPE and ZONE scores, (pod, node, context) ->
number, are called once per distinct shape or zone; NODE scores take the whole `Batch` and return
one number per node, (pod, batch, context) -> array.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from extender.batch import Batch
from extender.model import Node, PodInfo
from extender.rules import Scope


@dataclass(frozen=True)
class ScoreContext:
    replicas: Mapping[str, int]  # node -> replicas of the pod's workload there
    zone_replicas: Mapping[str | None, int]  # zone -> replicas of the pod's workload there


@dataclass(frozen=True)
class Score:
    name: str
    value: Callable[..., Any]  # SHAPE/ZONE: (pod, node, ctx) -> number; NODE: (pod, batch, ctx) -> array
    scope: Scope  # SHAPE, ZONE or NODE
    applies: Callable[[PodInfo, ScoreContext], bool] = lambda pod, ctx: True


def gpu_fill(pod: PodInfo, batch: Batch, ctx: ScoreContext) -> np.ndarray:
    """Bin-packing for GPU pods: the share of the node's GPUs of the kind asked for that are held
    once the pod is there (averaged over kinds), so the pod goes where it fills a node best and
    whole nodes stay free for big pods."""
    total = np.zeros(len(batch))
    for resource, need in pod.demand.gpus:
        capacity = batch.capacity(resource)
        total += np.where(capacity > 0, (batch.held(resource) + need) / np.maximum(capacity, 1), 0.0)
    return total / len(pod.demand.gpus)


def cpu_node_first(pod: PodInfo, node: Node, ctx: ScoreContext) -> int:
    """CPU-only pods: a CPU node before a GPU node (when the filter let GPU nodes through)."""
    return 0 if node.shape.is_gpu else 1


def zone_spread(pod: PodInfo, node: Node, ctx: ScoreContext) -> int:
    """Fewest replicas of the pod's workload in the node's zone (nodes without a zone label form
    one zone of their own)."""
    return -ctx.zone_replicas.get(node.zone, 0)


def node_spread(pod: PodInfo, batch: Batch, ctx: ScoreContext) -> np.ndarray:
    """Fewest replicas of the pod's workload on the node itself."""
    return -batch.per_node(ctx.replicas)


def _has_replicas(pod: PodInfo, ctx: ScoreContext) -> bool:
    return bool(ctx.replicas)


SCORES: tuple[Score, ...] = (
    Score("gpu-fill", gpu_fill, Scope.NODE, lambda pod, ctx: bool(pod.demand.gpus)),
    Score("cpu-node-first", cpu_node_first, Scope.SHAPE, lambda pod, ctx: not pod.demand.gpus),
    Score("zone-spread", zone_spread, Scope.ZONE, _has_replicas),
    Score("node-spread", node_spread, Scope.NODE, _has_replicas),
)
