"""The extender's picture of the cluster, kept current by list+watch and read by every request.

It holds only what placement reads on the hot path: each node's shape and zone (as rows of a
`NodeTable`), GPUs held per node and resource, and replicas per workload per node. Each pod event
adjusts them by the difference between the pod's old and new record, so a request never scans pods.
A relist parses everything aside and swaps it in under the lock, so requests see either the old or
the new picture.

The watch hands each object to `node_record`/`pod_record` as it arrives (the reflector's
`transform`), so no Kubernetes JSON outlives its LIST page: a pod becomes a uid and a `BoundPod`
(~0.2 KB) instead of a dict tree (~3 KB for a minimal pod, ~25 KB as a real cluster serves it), which
kept the peak of a 150,000-pod LIST beyond the container's memory limit (bench/extender.py).

Pods count once bound (`spec.nodeName`) until finished. The scheduler binds after our filter, and
its own NodeResourcesFit counts pods it has assumed but not yet bound, so the two checks together
never over-commit a node (README, "Races").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from extender.model import BoundPod, GpuCounts, Node
from extender.parse import bound_pod_from, node_from
from extender.resources import DEFAULT, Accelerators
from extender.table import NodeTable
from instance_types.quantity import QuantityError

log = logging.getLogger(__name__)

Held = dict[str, dict[str, int]]  # node -> GPU resource -> held by bound pods
Replicas = dict[str, dict[str, int]]  # workload -> node -> replicas bound there
NodeRecord = tuple[str, Node | None]  # name; the node, None when its object cannot be read
PodRecord = tuple[str, BoundPod | None]  # uid; what the pod holds, None when nothing placement reads


class ClusterState:
    """Thread-safe: watch threads write under `lock`; request handlers read under it."""

    def __init__(self, accelerators: Accelerators = DEFAULT) -> None:
        self.accelerators = accelerators  # which extended resources are GPUs
        self.lock = threading.RLock()
        self.nodes_synced = threading.Event()
        self.pods_synced = threading.Event()
        self.table = NodeTable()
        self._pods: dict[str, BoundPod] = {}  # by uid; only pods that hold GPUs or belong to a workload
        self._held: Held = {}
        self._replicas: Replicas = {}
        self._gpu_tuples: dict[GpuCounts, GpuCounts] = {}  # 150,000 pods share a few GPU tuples
        # Pods seen deleted lately, so a binding recorded after its pod's deletion arrived is dropped.
        self._gone: deque[str] = deque(maxlen=10_000)
        self._gone_set: set[str] = set()
        # Pods counted where we expect the scheduler to bind them, until a watch event (or a /bind)
        # says where they went: uid -> monotonic expiry.
        self._reserved: dict[str, float] = {}

    # -- reads (hold `lock` for a consistent picture across several reads) --

    def node(self, name: str) -> Node | None:
        row = self.table.row_of.get(name)
        return None if row is None else self.table.nodes[row]

    def held(self, name: str) -> Mapping[str, int]:
        return self._held.get(name, {})

    def replicas(self, group: str | None) -> Mapping[str, int]:
        return self._replicas.get(group, {}) if group is not None else {}

    def bound_pod(self, uid: str) -> BoundPod | None:
        return self._pods.get(uid)

    @property
    def synced(self) -> bool:
        return self.nodes_synced.is_set() and self.pods_synced.is_set()

    def sizes(self) -> dict[str, int]:
        with self.lock:
            return {"nodes": len(self.table), "pods": len(self._pods), "shapes": len(self.table.shapes)}

    # -- writes: the Reflector's transform (object -> record) and callbacks (records) --

    def node_record(self, obj: Mapping[str, Any]) -> NodeRecord:
        """What the cache keeps of a Node object; an unreadable one is logged and kept as None."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        try:
            return name, node_from(obj, self.accelerators)
        except (KeyError, QuantityError, ValueError, TypeError) as exc:
            log.warning("node skipped: %s", exc, extra={"node": name})
            return name, None

    def pod_record(self, obj: Mapping[str, Any]) -> PodRecord:
        """What the cache keeps of a Pod object: its uid, and what it holds on its node (None when
        it holds nothing placement reads: not bound, finished, no GPUs and no workload)."""
        metadata = obj.get("metadata") or {}
        uid = metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}"
        try:
            record = bound_pod_from(obj, self.accelerators)
        except (QuantityError, ValueError, TypeError, AttributeError) as exc:
            log.warning("pod skipped: %s", exc, extra={"pod": uid})
            return uid, None
        if record is None or (not record.gpus and record.group is None):
            return uid, None
        return uid, self._interned(record)

    def replace_node_records(self, records: Iterable[NodeRecord]) -> None:
        with self.lock:
            table = NodeTable()
            for _, node in records:
                if node is not None:
                    table.put(node, self._held.get(node.name, {}))
            self.table = table
        self.nodes_synced.set()

    def node_record_event(self, kind: str, record: NodeRecord) -> None:
        name, node = record
        if kind == "DELETED":
            with self.lock:
                self.table.remove(name)
        elif node is not None:  # an unreadable new version: the last readable one stands
            with self.lock:
                self.table.put(node, self._held.get(node.name, {}))

    def replace_pod_records(self, records: Iterable[PodRecord]) -> None:
        pods: dict[str, BoundPod] = {}
        held: Held = {}
        replicas: Replicas = {}
        for uid, record in records:
            if record is not None:
                pods[uid] = record
                _count(held, replicas, record, +1)
        with self.lock:
            self._pods, self._held, self._replicas = pods, held, replicas
            self._reserved = {}
            self.table.reset_held(held)
        self.pods_synced.set()

    def pod_record_event(self, kind: str, record: PodRecord) -> None:
        uid, bound = record
        if kind == "DELETED":
            bound = None
            self._forget(uid)
        with self.lock:
            self._reserved.pop(uid, None)  # the API has spoken: no longer a guess
            self._set(uid, bound)

    # The same from whole objects (tests, the benchmark).

    def replace_nodes(self, objs: Iterable[Mapping[str, Any]]) -> None:
        self.replace_node_records(map(self.node_record, objs))

    def node_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.node_record_event(kind, self.node_record(obj))

    def replace_pods(self, objs: Iterable[Mapping[str, Any]]) -> None:
        self.replace_pod_records(map(self.pod_record, objs))

    def pod_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.pod_record_event(kind, self.pod_record(obj))

    def assume(self, uid: str, record: BoundPod) -> None:
        """Count a pod we just bound before its watch event arrives (see `extender.binder`)."""
        if record.gpus or record.group is not None:
            with self.lock:
                if uid not in self._gone_set:
                    self._reserved.pop(uid, None)
                    self._set(uid, self._interned(record))

    def reserve(self, uid: str, record: BoundPod, ttl: float = 30.0) -> None:
        """Count a pod on the node we expect the scheduler to bind it to, so the next pod of a
        burst is placed knowing it (README, "Races"). Replaced by the pod's watch event or /bind;
        dropped after `ttl` if neither comes (the scheduler gave up on the pod)."""
        with self.lock:
            if uid in self._pods and uid not in self._reserved:
                return  # already bound: the API's word stands
            self._reserved[uid] = time.monotonic() + ttl
            self._set(uid, self._interned(record))

    def unreserve(self, uid: str) -> None:
        """The scheduler is placing the pod again: forget where we guessed it would go."""
        with self.lock:
            if self._reserved.pop(uid, None) is not None:
                self._set(uid, None)

    def expire_reservations(self) -> None:
        if not self._reserved:
            return
        now = time.monotonic()
        with self.lock:
            for uid in [uid for uid, expiry in self._reserved.items() if expiry < now]:
                del self._reserved[uid]
                self._set(uid, None)

    # -- helpers --

    def _interned(self, record: BoundPod) -> BoundPod:
        return BoundPod(record.node, self._gpu_tuples.setdefault(record.gpus, record.gpus), record.group)

    def _forget(self, uid: str) -> None:
        with self.lock:
            if len(self._gone) == self._gone.maxlen:
                self._gone_set.discard(self._gone[0])
            self._gone.append(uid)
            self._gone_set.add(uid)

    def _set(self, uid: str, record: BoundPod | None) -> None:
        with self.lock:
            old = self._pods.pop(uid, None) if record is None else self._pods.get(uid)
            if old == record:
                return
            if old is not None:
                self._apply(old, -1)
            if record is not None:
                self._pods[uid] = record
                self._apply(record, +1)

    def _apply(self, pod: BoundPod, sign: int) -> None:
        _count(self._held, self._replicas, pod, sign)
        for resource, count in pod.gpus:
            self.table.add_held(pod.node, resource, sign * count)


def _count(held: Held, replicas: Replicas, pod: BoundPod, sign: int) -> None:
    if pod.gpus:
        counts = held.setdefault(pod.node, {})
        for resource, count in pod.gpus:
            counts[resource] = counts.get(resource, 0) + sign * count
            if counts[resource] == 0:
                del counts[resource]
        if not counts:
            del held[pod.node]
    if pod.group is not None:
        per_node = replicas.setdefault(pod.group, {})
        per_node[pod.node] = per_node.get(pod.node, 0) + sign
        if per_node[pod.node] == 0:
            del per_node[pod.node]
        if not per_node:
            del replicas[pod.group]
