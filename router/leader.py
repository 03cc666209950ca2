"""Router replicas working as one: each publishes its load in its own Lease; they share each pod's
concurrency limit; one leader scales.

Why Leases and not scraping each other's /metrics: the replicas already need the apiserver; a Lease
per replica needs no pod-to-pod discovery, port or network policy, a dead replica's numbers age out
by `renewTime` on their own, and every replica reads all of them from one watch (the shared
reflector) instead of N HTTP calls a second. The cost is at most one small write per replica per
second, and only when its numbers changed (a heartbeat every few seconds otherwise).

Every second each replica counts the live replicas (a Lease renewed within `FRESH_SECONDS`, itself
always included) and takes its share of every pod's `max-concurrent-requests-per-pod`
(`pool.share`): with N replicas behind the Service each enforcing the whole limit, a pod would see
up to N times it. A replica that stops deletes its Lease once its requests have drained, so the
others take its share back at once; one that dies is dropped when its Lease goes stale.

When autoscaling is on, the leader also sums busy pods (capped at the pods there are) and queued
requests per autoscaled Deployment over the fresh Leases, runs `autoscale.step`, and patches the
Deployment's scale subresource when the count should change. Leadership is the usual Lease protocol
(holder, renewTime, leaseDurationSeconds, optimistic concurrency through resourceVersion).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from router.autoscale import Load, ScaleState, step
from router.defaults import LEASE_PREFIX
from router.settings import PREFIX

log = logging.getLogger("inferplane.router")

# Load Leases carry this label with the lease prefix as its value: the peers of a replica are the
# replicas of the same release, even when two releases share a namespace.
LOAD_LABEL = PREFIX + "router-load"
LOAD_ANNOTATION = PREFIX + "router-load"
LEASE_SECONDS = 15
FRESH_SECONDS = 10.0
HEARTBEAT_SECONDS = 4.0


@dataclass(frozen=True)
class PeerLoad:
    identity: str
    renewed: dt.datetime
    loads: dict[str, tuple[int, int, int]]  # "ns/name" -> (busy pods, queued, pods)


def parse_load_lease(lease: dict[str, Any]) -> PeerLoad | None:
    meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    try:
        renewed = dt.datetime.fromisoformat(str(spec["renewTime"]).replace("Z", "+00:00"))
        raw = orjson.loads((meta.get("annotations") or {}).get(LOAD_ANNOTATION, "{}"))
        loads = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in raw.items()}
    except (KeyError, ValueError, TypeError, IndexError, orjson.JSONDecodeError):
        return None
    return PeerLoad(str(spec.get("holderIdentity", meta.get("name", ""))), renewed, loads)


def total_load(peers: list[PeerLoad], key: str, now: dt.datetime) -> Load:
    """Sum over fresh replicas; busy is capped at the pod count (two routers may share a busy pod)."""
    busy = queued = pods = 0
    for peer in peers:
        if (now - peer.renewed).total_seconds() > FRESH_SECONDS or key not in peer.loads:
            continue
        b, q, p = peer.loads[key]
        busy, queued, pods = busy + b, queued + q, max(pods, p)
    return Load(min(busy, pods) if pods else busy, queued)


@dataclass(frozen=True)
class LeaseNames:
    """The Leases of one router release: `<prefix>-autoscaler`, and `<prefix>-load-<replica>` each."""

    prefix: str = LEASE_PREFIX

    @property
    def leader(self) -> str:
        return f"{self.prefix}-autoscaler"

    def load(self, identity: str) -> str:
        return f"{self.prefix}-load-{identity}"[:253]

    @property
    def selector(self) -> str:
        """The label selector of this release's load Leases."""
        return f"{LOAD_LABEL}={self.prefix}"


def live_replicas(peers: Iterable[PeerLoad], identity: str, now: dt.datetime) -> tuple[int, int]:
    """How many router replicas are alive (this one always), and this one's rank among them.

    The rank orders identities, so every replica computes the same ranks from the same Leases and
    the remainders of the concurrency split land on different replicas (`pool.share`).
    """
    alive = {identity} | {p.identity for p in peers if (now - p.renewed).total_seconds() <= FRESH_SECONDS}
    ordered = sorted(alive)
    return len(ordered), ordered.index(identity)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Coordinator:
    """Runs in every replica: publish our load, share the pods' limits with the live peers; when
    `autoscale` and leading, scale."""

    def __init__(
        self,
        router: Any,
        kube_client: Any,
        namespace: str,
        identity: str,
        names: LeaseNames | None = None,
        autoscale: bool = True,
    ) -> None:
        from kubernetes import client as k8s

        self.router = router
        self.namespace = namespace
        self.identity = identity
        self.names = names or LeaseNames()
        self.autoscale = autoscale
        api = k8s.ApiClient(kube_client.configuration)
        self.leases = k8s.CoordinationV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.api = api
        self.peers: dict[str, PeerLoad] = {}
        self.leading = False
        self._states: dict[str, ScaleState] = {}
        self._published: tuple[str, float] = ("", 0.0)
        self._reflector: Any = None
        self._kube_client = kube_client
        self._complaint: tuple[str, float] = ("", 0.0)
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    # -- what this replica sees ------------------------------------------------------------------------
    def own_loads(self) -> dict[str, tuple[int, int, int]]:
        loads: dict[str, list[int]] = {}
        for deployment in self.router.table.deployments():
            if deployment.settings.autoscale is None:
                continue
            pool = self.router.pools.get(deployment.key)
            if pool is None:
                continue
            key = f"{deployment.namespace}/{deployment.name}"
            b, q, p = loads.get(key, [0, 0, 0])
            loads[key] = [b + pool.busy_pods, q + pool.queued, max(p, pool.pods)]
        return {k: (v[0], v[1], v[2]) for k, v in loads.items()}

    # -- the loop ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        from inferplane.reflector import Reflector

        loop = asyncio.get_running_loop()

        def replace(items: list[dict[str, Any]]) -> None:
            loop.call_soon_threadsafe(self._replace_peers, items)

        def event(kind: str, obj: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._peer_event, kind, obj)

        self._reflector = Reflector(
            self._kube_client,
            f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
            label_selector=self.names.selector,
            on_replace=replace,
            on_event=event,
        )
        self._reflector.start()
        tick = 0
        while not self._closing:
            started = loop.time()
            self.router.set_replicas(*live_replicas(self.peers.values(), self.identity, _now()))
            try:
                await asyncio.to_thread(self._publish)
                if self.autoscale and tick % 2 == 0:
                    self.leading = await asyncio.to_thread(self._hold_leadership)
                if self.leading:
                    await self._scale()
            except Exception as exc:  # the apiserver away for a moment must not stop the router
                self._complain(exc)
            tick += 1
            await asyncio.sleep(max(0.0, 1.0 - (loop.time() - started)))

    def _complain(self, exc: Exception) -> None:
        """Log a failing tick, but the same failure (say a missing RBAC rule) once a minute at most.

        "The same" is the exception's kind and HTTP status: the apiserver's answers differ in their
        headers (date, audit id) every time.
        """
        kind = f"{type(exc).__name__} {getattr(exc, 'status', '') or ''}".strip()
        now = asyncio.get_running_loop().time()
        if kind != self._complaint[0] or now - self._complaint[1] >= 60.0:
            self._complaint = (kind, now)
            reason = getattr(exc, "reason", None) or str(exc)
            log.warning(
                "replica coordination tick failed (load Lease, leadership or scaling); peers "
                "may not count this replica in the concurrency share",
                extra={"error": f"{kind}: {reason}"[:500]},
            )

    async def leave(self, timeout: float = 2.0) -> None:
        """Stop, then delete our load Lease, so the peers take our share back now rather than when
        it goes stale. Called once requests have drained. The loop ends its tick first (no call to
        the apiserver is cut off, so none can write the Lease again after the delete); best effort:
        the staleness rule covers a failure."""
        from kubernetes.client.rest import ApiException

        self._closing = True
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)
            self._task.cancel()
        if self._reflector is not None:
            self._reflector.stop(timeout=1.0)

        def delete() -> None:
            self.leases.delete_namespaced_lease(
                self.names.load(self.identity), self.namespace, _request_timeout=timeout
            )

        try:
            await asyncio.wait_for(asyncio.to_thread(delete), timeout)
        except (ApiException, OSError, TimeoutError) as exc:
            log.info("load Lease not deleted; peers drop it when it goes stale", extra={"error": str(exc)})

    def _replace_peers(self, items: list[dict[str, Any]]) -> None:
        self.peers = {p.identity: p for p in map(parse_load_lease, items) if p is not None}

    def _peer_event(self, kind: str, obj: dict[str, Any]) -> None:
        peer = parse_load_lease(obj)
        if peer is None:
            return
        if kind == "DELETED":
            self.peers.pop(peer.identity, None)
        else:
            self.peers[peer.identity] = peer

    # -- apiserver calls (worker thread) -----------------------------------------------------------------
    def _publish(self) -> None:
        from kubernetes.client.rest import ApiException

        payload = orjson.dumps(self.own_loads(), option=orjson.OPT_SORT_KEYS).decode()
        now = _now()
        if payload == self._published[0] and now.timestamp() - self._published[1] < HEARTBEAT_SECONDS:
            return
        name = self.names.load(self.identity)
        body = {
            "metadata": {
                "name": name,
                "labels": {LOAD_LABEL: self.names.prefix},
                "annotations": {LOAD_ANNOTATION: payload},
            },
            "spec": {
                "holderIdentity": self.identity,
                "renewTime": _stamp(now),
                "leaseDurationSeconds": int(FRESH_SECONDS),
            },
        }
        try:
            self.leases.patch_namespaced_lease(name, self.namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.leases.create_namespaced_lease(self.namespace, body)
        self._published = (payload, now.timestamp())

    def _hold_leadership(self) -> bool:
        from kubernetes.client.rest import ApiException

        now = _now()
        name = self.names.leader
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _stamp(now),
            "acquireTime": _stamp(now),
        }
        try:
            lease = self.leases.read_namespaced_lease(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self.leases.create_namespaced_lease(
                    self.namespace, {"metadata": {"name": name}, "spec": spec}
                )
                return True
            except ApiException as conflict:
                if conflict.status == 409:
                    return False
                raise
        holder = lease.spec.holder_identity
        renewed = lease.spec.renew_time
        duration = lease.spec.lease_duration_seconds or LEASE_SECONDS
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder != self.identity and not expired:
            return False
        if holder == self.identity and lease.spec.acquire_time is not None:
            spec["acquireTime"] = _stamp(lease.spec.acquire_time)
        body = {"metadata": {"name": name, "resourceVersion": lease.metadata.resource_version}, "spec": spec}
        try:
            self.leases.replace_namespaced_lease(name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False  # another replica renewed or took it first
            raise
        if holder != self.identity:
            log.info(
                "router autoscaler leadership acquired", extra={"identity": self.identity, "lease": name}
            )
        return True

    async def _scale(self) -> None:
        now = _now()
        peers = [p for i, p in self.peers.items() if i != self.identity]
        peers.append(PeerLoad(self.identity, now, self.own_loads()))
        seen: set[str] = set()
        for deployment in self.router.table.deployments():
            policy = deployment.settings.autoscale
            key = f"{deployment.namespace}/{deployment.name}"
            if policy is None or key in seen:
                continue
            seen.add(key)
            load = total_load(peers, key, now)
            scale = await asyncio.to_thread(
                self.apps.read_namespaced_deployment_scale, deployment.name, deployment.namespace
            )
            replicas = int(scale.spec.replicas or 0)
            state, wanted = step(self._states.get(key, ScaleState()), now.timestamp(), load, replicas, policy)
            self._states[key] = state
            if wanted is not None and wanted != replicas:
                await asyncio.to_thread(
                    self.apps.patch_namespaced_deployment_scale,
                    deployment.name,
                    deployment.namespace,
                    {"spec": {"replicas": wanted}},
                )
                log.info(
                    "scaled",
                    extra={
                        "deployment": key,
                        "from": replicas,
                        "to": wanted,
                        "busy_pods": load.busy_pods,
                        "queued": load.queued,
                    },
                )
            self.router.desired[key] = wanted if wanted is not None else replicas
