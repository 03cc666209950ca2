"""Scoring rules: each is a function (pod, node, context) -> a comparable value, higher is better.

The policy orders feasible nodes by the tuple of these values, in the order of `SCORES` (so a later
rule only separates nodes the earlier ones found equal) and turns that order into 0-10; see README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from extender.model import Node, PodInfo


@dataclass(frozen=True)
class ScoreContext:
    gpus_used: Mapping[str, Mapping[str, int]]
    replicas: Mapping[str, int]  # node -> replicas of the pod's workload there
    zone_replicas: Mapping[str | None, int]  # zone -> replicas of the pod's workload there


def gpu_fill(pod: PodInfo, node: Node, ctx: ScoreContext) -> float:
    """Bin-packing. GPU pods: the share of the node's GPUs of the kind asked for that are held once
    the pod is there (averaged over kinds), so the pod goes where it fills a node best and whole
    nodes stay free for big pods. CPU-only pods: 1 on a CPU node, 0 on a GPU node."""
    gpus = pod.demand.gpus
    shape = node.shape
    if not gpus:
        return 0.0 if shape.is_gpu else 1.0
    held = ctx.gpus_used.get(node.name)
    total = 0.0
    for resource, need in gpus:
        capacity = shape.gpu_capacity(resource)
        if capacity:
            total += ((held.get(resource, 0) if held else 0) + need) / capacity
    return total / len(gpus)


def spread(pod: PodInfo, node: Node, ctx: ScoreContext) -> tuple[int, int]:
    """Replicas of one workload spread: fewest in the node's zone first, then fewest on the node."""
    return (-ctx.zone_replicas.get(node.zone, 0), -ctx.replicas.get(node.name, 0))


SCORES: tuple[Callable[[PodInfo, Node, ScoreContext], Any], ...] = (gpu_fill, spread)
