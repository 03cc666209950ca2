"""Pods the scheduler is placing but has not bound yet, and waiting for them where it matters.

kube-scheduler starts the next pod's scheduling cycle as soon as it has assumed the previous pod,
and binds that one in the background. Binding through us (`bindVerb`) tells us where each pod went,
but the next pod's /prioritize can arrive before the previous pod's /bind: measured on the e2e
control plane, 4 GPU replicas created at once were split over two nodes in 3 runs of 3. So
/prioritize first waits, up to `max_wait`, for pods in flight whose placement changes its answer:
GPU pods asking for the same GPU resource (bin-packing) and replicas of the same workload
(spreading). Pods that touch neither never wait.

A scheduler configured without `bindVerb` never sends /bind: start the extender with
`--no-bind-wait` there, or related pods wait `max_wait` each (visible as
inferplane_extender_bind_wait_seconds).
"""

from __future__ import annotations

import threading
import time

from extender.model import PodInfo


class InFlight:
    def __init__(self, max_wait: float = 0.25, ttl: float = 5.0) -> None:
        """`max_wait` 0 turns waiting off."""
        self.max_wait = max_wait  # per request: never hold a scheduler call longer than this
        self.ttl = ttl  # a pod never bound (failed later in its cycle) stops counting after this
        self._pods: dict[str, tuple[PodInfo, float]] = {}
        self._changed = threading.Condition()

    def started(self, pod: PodInfo) -> None:
        """The pod passed our filter on some node: it may be bound soon."""
        if self.max_wait and pod.uid and (pod.demand.gpus or pod.group is not None):
            with self._changed:
                self._pods[pod.uid] = (pod, time.monotonic() + self.ttl)

    def finished(self, uid: str) -> None:
        """The pod was bound (or its binding failed): it no longer needs waiting for."""
        with self._changed:
            if self._pods.pop(uid, None) is not None:
                self._changed.notify_all()

    def wait_for_related(self, pod: PodInfo) -> float:
        """Block until no other pod in flight could change where `pod` should go, or `max_wait`
        passes; returns the seconds waited."""
        started = time.monotonic()
        deadline = started + self.max_wait
        with self._changed:
            if not self._related(pod):
                return 0.0
            while (left := deadline - time.monotonic()) > 0 and self._related(pod):
                self._changed.wait(left)
        return time.monotonic() - started

    def _related(self, pod: PodInfo) -> bool:
        now = time.monotonic()
        resources = {resource for resource, _ in pod.demand.gpus}
        for uid, (other, expires) in list(self._pods.items()):
            if expires < now:
                del self._pods[uid]
            elif uid != pod.uid and (
                (pod.group is not None and other.group == pod.group)
                or any(resource in resources for resource, _ in other.demand.gpus)
            ):
                return True
        return False
