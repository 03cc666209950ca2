"""The route table from the cluster: pods labelled `ml.example/endpoint`, and the endpoints' key Secrets.

`build_table` is pure: (pods, secrets, deployment creation times) → RouteTable, tested without a
cluster. `Discovery` keeps the two collections current with the shared `inferplane.reflector`
(list+watch with bookmarks, relist on 410, backoff) and hands every change to the event loop with
`call_soon_threadsafe`; the table is then rebuilt once per burst of events. Reusing the thread-based
reflector rather than writing an asyncio watch keeps one tested implementation of the watch protocol
in the project; its threads sit blocked on sockets, so they take nothing from the loop.

Rules:
- A pod counts for its deployment as soon as it exists, but only a Ready pod with an IP takes
  requests: a deployment whose pods are all starting keeps its traffic share (and its callers wait,
  then get 503 "no ready pods") instead of silently handing the share to the default.
- The scoring port is `ml.example/scoring-port`, else the containerPort of the scoring container
  (`ml.example/container`, else the first container), else 5001.
- Settings come from the newest pod of the deployment, so a rollout's new annotations apply as soon
  as its first pod exists. A bad annotation is logged and that deployment runs on the defaults.
- "First deployment" (the default when none is marked) is the Deployment created first; its
  creation time is read once per Deployment; until known, the oldest pod stands in.
- An endpoint is per namespace: pods labelled `iris` in namespaces `a` and `b` make two endpoints,
  each with its own split and keys (how a request tells them apart: `router.table`).
- Keys: Secret `<endpoint>-keys`, or any Secret labelled `ml.example/endpoint-keys: <endpoint>`, in
  the endpoint's namespace; data keys `primary` and `secondary`.
- Watched: every namespace, or those given; one pair of watches (pods, Secrets) per namespace given,
  so the router needs rights in those namespaces only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from inferplane.errors import UserError
from router.settings import (
    AUTH,
    AUTH_KEY,
    CONTAINER,
    DEFAULT_SCORING_PORT,
    DEPLOYMENT,
    ENDPOINT,
    ENDPOINT_KEYS,
    SCORING_PORT,
    DeploymentSettings,
    parse_auth,
    parse_settings,
)
from router.table import Backend, Deployment, Endpoint, RouteTable, make_endpoint

log = logging.getLogger("inferplane.router")

Obj = dict[str, Any]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def pod_ready(pod: Obj) -> bool:
    if _meta(pod).get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def deployment_of(pod: Obj) -> str | None:
    """The webhook's `ml.example/deployment` label, else the owning ReplicaSet's name less its hash."""
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    if labels.get(DEPLOYMENT):
        return str(labels[DEPLOYMENT])
    template_hash = labels.get("pod-template-hash")
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "ReplicaSet" and template_hash:
            return str(owner.get("name", "")).removesuffix(f"-{template_hash}")
    return None


def scoring_port(pod: Obj) -> int:
    annotations = _meta(pod).get("annotations") or {}
    if annotations.get(SCORING_PORT):
        try:
            return int(annotations[SCORING_PORT])
        except ValueError:
            log.warning(
                "bad scoring port",
                extra={"pod": _meta(pod).get("name"), SCORING_PORT: annotations[SCORING_PORT]},
            )
    containers = (pod.get("spec") or {}).get("containers") or []
    wanted = annotations.get(CONTAINER)
    chosen = next((c for c in containers if c.get("name") == wanted), containers[0] if containers else {})
    ports = [p.get("containerPort") for p in chosen.get("ports") or [] if p.get("containerPort")]
    return int(ports[0]) if ports else DEFAULT_SCORING_PORT


def secret_keys(secret: Obj) -> tuple[str, ...]:
    data = secret.get("data") or {}
    keys = []
    for name in ("primary", "secondary"):
        if data.get(name):
            keys.append(base64.b64decode(data[name]).decode().strip())
    return tuple(k for k in keys if k)


def keys_for(endpoint: str, namespace: str, secrets: Iterable[Obj]) -> tuple[str, ...]:
    found = {}
    for secret in secrets:
        meta = _meta(secret)
        labelled = (meta.get("labels") or {}).get(ENDPOINT_KEYS) == endpoint
        if meta.get("namespace", "") == namespace and (labelled or meta.get("name") == f"{endpoint}-keys"):
            found[not labelled] = secret_keys(secret)  # a labelled one wins over the name
    return found[min(found)] if found else ()


def build_table(
    pods: Iterable[Obj], secrets: Iterable[Obj], created: Mapping[tuple[str, str], str] | None = None
) -> RouteTable:
    created = created or {}
    groups: dict[tuple[str, str], dict[str, list[Obj]]] = {}
    for pod in pods:
        meta = _meta(pod)
        endpoint = (meta.get("labels") or {}).get(ENDPOINT) or (meta.get("annotations") or {}).get(ENDPOINT)
        name = deployment_of(pod)
        if endpoint and name:
            key = (str(meta.get("namespace", "")), str(endpoint))
            groups.setdefault(key, {}).setdefault(name, []).append(pod)
    endpoints: list[Endpoint] = []
    for (namespace, endpoint), by_deployment in groups.items():
        deployments: list[tuple[str, str, Deployment]] = []
        auths: set[str] = set()
        for name, members in by_deployment.items():
            members.sort(key=lambda p: _meta(p).get("creationTimestamp", ""))
            newest = _meta(members[-1]).get("annotations") or {}
            try:
                settings = parse_settings(newest)
                auths.add(parse_auth(newest.get(AUTH)))
            except UserError as exc:
                where = {"endpoint": endpoint, "deployment": f"{namespace}/{name}", "error": str(exc)}
                log.warning("bad annotation; serving this deployment with default settings", extra=where)
                settings = DeploymentSettings()
                auths.add(AUTH_KEY)
            backends = tuple(
                Backend(_meta(p).get("name", ""), p["status"]["podIP"], scoring_port(p))
                for p in members
                if pod_ready(p)
            )
            order = created.get((namespace, name)) or _meta(members[0]).get("creationTimestamp", "")
            deployments.append((order, name, Deployment(name, namespace, settings, backends)))
        deployments.sort(key=lambda entry: entry[:2])
        # Key auth unless every deployment says none: a half-open endpoint is a closed one.
        auth = "none" if auths == {"none"} else AUTH_KEY
        endpoints.append(
            make_endpoint(
                endpoint,
                [d for _, _, d in deployments],
                auth,
                keys_for(endpoint, namespace, secrets),
                namespace,
            )
        )
    return RouteTable.of(endpoints)


class _Store:
    """One collection's objects by namespace/name, changed only on the loop thread."""

    def __init__(self, keep: Callable[[Obj], bool] = lambda _: True) -> None:
        self.objects: dict[str, Obj] = {}
        self.synced = False
        self._keep = keep

    @staticmethod
    def _key(obj: Obj) -> str:
        meta = _meta(obj)
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def replace(self, items: list[Obj]) -> None:
        self.objects = {self._key(o): o for o in items if self._keep(o)}
        self.synced = True

    def event(self, kind: str, obj: Obj) -> None:
        if kind == "DELETED" or not self._keep(obj):
            self.objects.pop(self._key(obj), None)
        elif kind in ("ADDED", "MODIFIED"):
            self.objects[self._key(obj)] = obj


def _is_keys_secret(secret: Obj) -> bool:
    """Only key Secrets are kept in memory; every other Secret's data is dropped on arrival."""
    meta = _meta(secret)
    return str(meta.get("name", "")).endswith("-keys") or ENDPOINT_KEYS in (meta.get("labels") or {})


class Discovery:
    """Feeds a router's table from the cluster; `stop()` ends the watches."""

    def __init__(
        self,
        client: Any,
        apply: Callable[[RouteTable], None],
        on_synced: Callable[[], None],
        namespaces: Sequence[str] = (),
    ) -> None:
        """Watch `namespaces`, or every namespace when there are none."""
        from inferplane.reflector import Reflector

        self._client = client
        self._apply = apply
        self._on_synced = on_synced
        self._loop = asyncio.get_running_loop()
        self.created: dict[tuple[str, str], str] = {}
        self._asked: set[tuple[str, str]] = set()
        self._pending = False
        self._was_synced = False
        scopes = [f"/api/v1/namespaces/{namespace}" for namespace in namespaces] or ["/api/v1"]
        # One store per watch: a relist of one namespace replaces that namespace's objects only.
        self._pods = [_Store() for _ in scopes]
        self._secrets = [_Store(_is_keys_secret) for _ in scopes]
        self._reflectors = []
        for scope, pods, secrets in zip(scopes, self._pods, self._secrets, strict=True):
            self._reflectors += [
                Reflector(
                    client,
                    f"{scope}/pods",
                    label_selector=ENDPOINT,
                    on_replace=self._bridge(pods.replace),
                    on_event=self._bridge(pods.event),
                ),
                Reflector(
                    client,
                    f"{scope}/secrets",
                    on_replace=self._bridge(secrets.replace),
                    on_event=self._bridge(secrets.event),
                ),
            ]

    def _bridge(self, change: Callable[..., None]) -> Callable[..., None]:
        def from_reflector_thread(*args: Any) -> None:
            self._loop.call_soon_threadsafe(self._changed, change, args)

        return from_reflector_thread

    def _changed(self, change: Callable[..., None], args: tuple[Any, ...]) -> None:
        change(*args)
        if not self._pending:
            self._pending = True
            self._loop.call_soon(self._rebuild)  # one rebuild for all events already queued

    def _rebuild(self) -> None:
        self._pending = False
        if not all(store.synced for store in (*self._pods, *self._secrets)):
            return  # the first table is whole: every namespace listed
        table = build_table(
            [o for store in self._pods for o in store.objects.values()],
            [o for store in self._secrets for o in store.objects.values()],
            self.created,
        )
        self._apply(table)
        self._ask_creation_times(table)
        if not self._was_synced:
            self._was_synced = True
            self._on_synced()

    def _ask_creation_times(self, table: RouteTable) -> None:
        for deployment in table.deployments():
            key = (deployment.namespace, deployment.name)
            if key not in self._asked:
                self._asked.add(key)
                threading.Thread(target=self._read_created, args=(key,), daemon=True).start()

    def _read_created(self, key: tuple[str, str]) -> None:
        namespace, name = key
        try:
            import orjson

            answer = self._client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", timeout=10)
            stamp = _meta(orjson.loads(answer.data)).get("creationTimestamp")
        except Exception as exc:  # no RBAC, or not a Deployment: the oldest pod keeps standing in
            log.info(
                "deployment creation time unknown",
                extra={"deployment": f"{namespace}/{name}", "error": str(exc)},
            )
            return
        if stamp:
            self._loop.call_soon_threadsafe(self._changed, self.created.__setitem__, (key, stamp))

    def start(self) -> None:
        for reflector in self._reflectors:
            reflector.start()

    def stop(self) -> None:
        for reflector in self._reflectors:
            reflector.stop(timeout=1.0)


async def start_discovery(router: Any, options: Any) -> Callable[[], Awaitable[None]]:
    """Start watching, publishing this replica's load Lease and (with options.autoscale) scaling;
    returns what stops it all. The router turns ready after the first full sync of pods and Secrets."""
    from inferplane import kube

    client = await asyncio.to_thread(kube.connect, options.kubeconfig)

    def synced() -> None:
        router.ready = True
        log.info("routes synced from the cluster", extra={"endpoints": sorted(router.table.endpoints)})

    from router.leader import Coordinator, LeaseNames

    discovery = Discovery(client, router.apply, synced, options.namespaces)
    discovery.start()
    coordinator = Coordinator(
        router,
        client,
        options.lease_namespace,
        options.identity,
        LeaseNames(options.lease_prefix),
        autoscale=options.autoscale,
    )
    coordinator.start()

    async def stop() -> None:
        await coordinator.leave()
        await asyncio.to_thread(discovery.stop)

    return stop
