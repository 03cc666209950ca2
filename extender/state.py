"""The extender's picture of the cluster, kept current by list+watch and read by every request.

It holds only aggregates placement reads on the hot path: each node's shape and zone, GPUs held per
node and resource, and replicas per workload per node. Each pod event adjusts them by the difference
between the pod's old and new record, so a request never scans pods. A relist rebuilds everything
aside and swaps it in, so requests see either the old or the new picture.

Pods count once bound (`spec.nodeName`) until finished; the scheduler binds after our filter, and its
own NodeResourcesFit counts pods it has assumed but not yet bound, so the two checks together never
over-commit a node (see README, "Races").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extender.model import BoundPod, GpuCounts, Node, NodeShape
from extender.parse import bound_pod_from, node_from

log = logging.getLogger(__name__)


@dataclass
class _Tables:
    """Everything a relist replaces at once."""

    nodes: dict[str, Node] = field(default_factory=dict)
    pods: dict[str, BoundPod] = field(default_factory=dict)  # by uid
    gpus_used: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> resource -> held
    group_nodes: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> node -> replicas


class ClusterState:
    """Thread-safe: watch threads write under `lock`, request handlers read under it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.nodes_synced = threading.Event()
        self.pods_synced = threading.Event()
        self._t = _Tables()
        # Interning tables: thousands of nodes share a few shapes, 150,000 pods a few GPU tuples.
        self._shapes: dict[NodeShape, NodeShape] = {}
        self._gpu_tuples: dict[GpuCounts, GpuCounts] = {}

    # -- reads (callers hold `lock` for a consistent picture across several reads) --

    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._t.nodes

    @property
    def gpus_used(self) -> Mapping[str, Mapping[str, int]]:
        return self._t.gpus_used

    @property
    def group_nodes(self) -> Mapping[str, Mapping[str, int]]:
        return self._t.group_nodes

    def bound_pod(self, uid: str) -> BoundPod | None:
        return self._t.pods.get(uid)

    @property
    def synced(self) -> bool:
        return self.nodes_synced.is_set() and self.pods_synced.is_set()

    def sizes(self) -> dict[str, int]:
        with self.lock:
            return {"nodes": len(self._t.nodes), "pods": len(self._t.pods), "shapes": len(self._shapes)}

    # -- writes: the Reflector callbacks --

    def replace_nodes(self, objs: Iterable[Mapping[str, Any]]) -> None:
        nodes = {}
        for obj in objs:
            node = self._node(obj)
            if node is not None:
                nodes[node.name] = node
        with self.lock:
            self._t = _Tables(nodes, self._t.pods, self._t.gpus_used, self._t.group_nodes)
        self.nodes_synced.set()

    def node_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            name = (obj.get("metadata") or {}).get("name")
            with self.lock:
                self._t.nodes.pop(name, None)
            return
        node = self._node(obj)
        if node is not None:
            with self.lock:
                self._t.nodes[node.name] = node

    def replace_pods(self, objs: Iterable[Mapping[str, Any]]) -> None:
        tables = _Tables(nodes=self._t.nodes)
        for obj in objs:
            uid, record = self._pod(obj)
            if record is not None:
                tables.pods[uid] = record
                _count(tables, record, +1)
        with self.lock:
            tables.nodes = self._t.nodes
            self._t = tables
        self.pods_synced.set()

    def pod_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        uid, record = self._pod(obj)
        if kind == "DELETED":
            record = None
        with self.lock:
            old = self._t.pods.pop(uid, None) if record is None else self._t.pods.get(uid)
            if old == record:
                return
            if old is not None:
                _count(self._t, old, -1)
            if record is not None:
                self._t.pods[uid] = record
                _count(self._t, record, +1)

    # -- helpers --

    def _node(self, obj: Mapping[str, Any]) -> Node | None:
        try:
            node = node_from(obj)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("node skipped: %s", exc, extra={"node": (obj.get("metadata") or {}).get("name")})
            return None
        shape = self._shapes.setdefault(node.shape, node.shape)
        return node if shape is node.shape else Node(node.name, shape, node.zone)

    def _pod(self, obj: Mapping[str, Any]) -> tuple[str, BoundPod | None]:
        metadata = obj.get("metadata") or {}
        uid = metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}"
        try:
            record = bound_pod_from(obj)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("pod skipped: %s", exc, extra={"pod": uid})
            return uid, None
        if record is None or (not record.gpus and record.group is None):
            return uid, None  # holds nothing placement reads: not kept, saves memory
        gpus = self._gpu_tuples.setdefault(record.gpus, record.gpus)
        return uid, BoundPod(record.node, gpus, record.group)


def _count(tables: _Tables, pod: BoundPod, sign: int) -> None:
    if pod.gpus:
        held = tables.gpus_used.setdefault(pod.node, {})
        for resource, count in pod.gpus:
            held[resource] = held.get(resource, 0) + sign * count
            if held[resource] == 0:
                del held[resource]
        if not held:
            del tables.gpus_used[pod.node]
    if pod.group is not None:
        replicas = tables.group_nodes.setdefault(pod.group, {})
        replicas[pod.node] = replicas.get(pod.node, 0) + sign
        if replicas[pod.node] == 0:
            del replicas[pod.node]
        if not replicas:
            del tables.group_nodes[pod.group]
