"""The request path: find the endpoint, check the key, pick a deployment and a pod, relay the exchange.

Decisions (split, mirror draws, auth) are pure functions in `table` and `auth`; this module only
orders them and turns each failure into a status code and a sentence: 404 for an unknown endpoint or
deployment (naming what exists), 409 for an endpoint name that several namespaces define when the
request names none (naming them and how to choose), 401 for a key problem (naming the header), 503
when no pod frees up within the queue wait, 504 when the pod does not answer in time, 502 when it
cannot be reached or breaks off.

Which namespace: `/api/v1/namespaces/<ns>/endpoint/<e>/...` or the header `x-ml-namespace: <ns>`;
neither, and the endpoint name must be defined in one namespace only. The plain Azure-style URL thus
keeps working for everyone whose endpoint names are unique, and a second namespace that reuses a name
makes the plain URL refuse rather than silently pick one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator

import orjson

from router import auth
from router.defaults import MIRROR_MAX_BODY
from router.metrics import LoadSample, RouterMetrics
from router.pool import PodPool, PodSlot, QueueTimeout, share
from router.server import RETAIN_LIMIT, Body, ClientConnection, Request
from router.table import Deployment, Endpoint, RouteTable, choose, mirror_targets
from router.upstream import Sink, UpstreamConnection, UpstreamError, UpstreamPool, UpstreamTimeout
from router.wire import CRLF, HOP_BY_HOP, status_line

log = logging.getLogger("inferplane.router")

PIN_HEADERS = (b"azureml-model-deployment", b"x-ml-deployment")
NAMESPACE_HEADER = b"x-ml-namespace"
# Never passed to the model: the endpoint key is the router's business, the pin headers are ours.
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"authorization", NAMESPACE_HEADER, *PIN_HEADERS}
NOT_RETURNED = HOP_BY_HOP
SCORE_PREFIX = b"/api/v1/endpoint/"
NAMESPACED_PREFIX = b"/api/v1/namespaces/"
ROUTES_HELP = (
    "routes: POST /api/v1/endpoint/<endpoint>/score, "
    "POST /api/v1/endpoint/<endpoint>/deployment/<deployment>/score (either under "
    "/api/v1/namespaces/<namespace>/ too), GET /healthz, /readyz, /metrics"
)


# Parsed score routes by raw path, so a busy endpoint's URL is taken apart once; bounded, as paths are
# the client's choice: past this many, paths are parsed each time.
ROUTE_CACHE_SIZE = 4096
# Request ids for requests that come without one: 128 random bits as 32 hex digits, like uuid4().hex,
# from a generator seeded once from the OS rather than a getrandom call and a UUID object per request
# (they name a request in logs, they guard nothing).
_request_bits = random.Random().getrandbits


def new_request_id() -> bytes:
    return b"%032x" % _request_bits(128)


def _error(status: int, message: str) -> bytes:
    return orjson.dumps({"error": {"status": status, "message": message}})


def _names(names: Iterator[str] | list[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


class Router:
    """Holds the current table and the live state that outlives it (pod slots, connections)."""

    def __init__(
        self, random_draw: random.Random | None = None, mirror_max_body: int = MIRROR_MAX_BODY
    ) -> None:
        self.mirror_max_body = mirror_max_body  # larger bodies get no mirror copy
        self.table = RouteTable()
        self.pools: dict[str, PodPool] = {}
        self.owner: dict[str, Deployment] = {}  # pool key -> the deployment it serves
        self.upstreams = UpstreamPool()
        self.metrics = RouterMetrics(self.load, lambda: self.replicas)
        self.ready = False
        # Live router replicas sending to the same pods (this one included) and this one's rank:
        # each pod's limit is divided among them (`pool.share`); set by `router.leader`.
        self.replicas = 1
        self.rank = 0
        self.desired: dict[str, int] = {}  # "namespace/name" -> replicas the autoscaler last set
        self._random = (random_draw or random.Random()).random
        self._mirrors: set[asyncio.Task[None]] = set()
        # raw path -> (endpoint, pinned deployment, namespace named in the path)
        self._routes: dict[bytes, tuple[str, str | None, bytes | None] | None] = {}

    # -- the table -----------------------------------------------------------------------------------
    def apply(self, table: RouteTable) -> None:
        """Swap in a new table; pools keep their in-flight counts, departed pods finish their work."""
        known = {(e.key, p) for e in self.table.endpoints.values() for p in e.problems}
        self.table = table
        owner: dict[str, Deployment] = {}
        for endpoint in table.endpoints.values():
            for problem in endpoint.problems:
                if (endpoint.key, problem) not in known:  # said once, not on every watch event
                    log.warning("endpoint problem", extra={"endpoint": endpoint.key, "problem": problem})
            for deployment in endpoint.deployments:
                owner[deployment.key] = deployment
                limit = self.limit(deployment)
                pool = self.pools.get(deployment.key)
                if pool is None:
                    pool = self.pools[deployment.key] = PodPool(limit)
                pool.update(deployment.backends, limit)
        for key, pool in list(self.pools.items()):
            if key not in owner:
                pool.update((), pool.max_concurrent)  # waiters time out; running requests finish
                if not pool.in_flight and not pool.queued:
                    del self.pools[key]
        self.owner = owner
        self.upstreams.prune(60.0, {b.address for d in table.deployments() for b in d.backends})

    def limit(self, deployment: Deployment) -> int:
        """Requests this replica may have on one pod of `deployment` at once: its share of the limit."""
        return share(deployment.settings.max_concurrent, self.replicas, self.rank, deployment.key)

    def set_replicas(self, replicas: int, rank: int) -> None:
        """Another replica came or went: divide every pod's limit again."""
        if (replicas, rank) == (self.replicas, self.rank):
            return
        log.info(
            "router replicas changed; each pod's concurrency limit divided again",
            extra={"replicas": replicas, "rank": rank, "was": self.replicas},
        )
        self.replicas, self.rank = replicas, rank
        for key, deployment in self.owner.items():
            pool = self.pools.get(key)
            if pool is not None:
                pool.resize(self.limit(deployment))

    def load(self) -> list[LoadSample]:
        samples = []
        for key, pool in self.pools.items():
            endpoint, namespace, name = key.split("/", 2)
            samples.append(
                LoadSample(
                    endpoint,
                    name,
                    namespace,
                    pool.pods,
                    pool.busy_pods,
                    pool.in_flight,
                    pool.queued,
                    self.desired.get(f"{namespace}/{name}"),
                    pool.max_concurrent,
                )
            )
        return samples

    # -- HTTP entry ------------------------------------------------------------------------------------
    async def handle(self, request: Request, client: ClientConnection) -> None:
        path, _, query = request.url.partition(b"?")
        routes = self._routes
        if path in routes:
            route = routes[path]
        else:
            route = _score_route(path)
            if len(routes) < ROUTE_CACHE_SIZE:
                routes[path] = route
        if route is not None:
            await self.score(request, client, route[0], route[1], query, route[2])
            return
        if path == b"/healthz":
            client.respond(200, b'{"status":"ok"}')
            return
        elif path == b"/readyz":
            if self.ready:
                client.respond(200, b'{"status":"ready"}')
            else:
                client.respond(503, _error(503, "not ready: the first sync of routes has not finished"))
            return
        elif path == b"/metrics":
            client.respond(200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8")
            return
        client.respond(404, _error(404, f"no route for {path.decode(errors='replace')}; {ROUTES_HELP}"))

    async def score(
        self,
        request: Request,
        client: ClientConnection,
        endpoint_name: str,
        pinned: str | None,
        query: bytes,
        in_path: bytes | None = None,
    ) -> None:
        started = time.monotonic()
        named = request.index.get(NAMESPACE_HEADER)
        if in_path is not None and named is not None and named.strip() != in_path:
            client.respond(
                400,
                _error(
                    400,
                    f"the path names namespace '{in_path.decode(errors='replace')}' "
                    f"but the header '{NAMESPACE_HEADER.decode()}' names "
                    f"'{named.strip().decode(errors='replace')}'; give one",
                ),
            )
            return
        raw = in_path if in_path is not None else named
        namespace = raw.strip().decode(errors="replace") if raw is not None else None
        endpoint, namespaces = self.table.find(endpoint_name, namespace)
        if endpoint is None:
            self._not_found(client, endpoint_name, namespace, namespaces)
            return
        if request.method not in (b"POST", b"GET"):
            client.respond(
                405, _error(405, "scoring takes POST (or GET)"), headers=[(b"allow", b"POST, GET")]
            )
            return
        failure = auth.check(endpoint, request.index.get(b"authorization"))
        if failure is not None:
            client.respond(
                failure.status,
                _error(failure.status, failure.message),
                headers=[(b"www-authenticate", b"Bearer")] if failure.status == 401 else None,
            )
            self.metrics.observe(
                endpoint.name, endpoint.namespace, "", failure.status, time.monotonic() - started
            )
            return
        if pinned is None:
            for name in PIN_HEADERS:
                value = request.index.get(name)
                if value:
                    pinned = value.decode(errors="replace").strip()
                    break
        mirrors: list[Deployment] = []
        if pinned is not None:
            deployment = endpoint.by_name.get(pinned)
            if deployment is None:
                message = (
                    f"deployment '{pinned}' not found in endpoint '{endpoint.name}'; "
                    f"deployments: {_names(list(endpoint.by_name))}"
                )
                client.respond(404, _error(404, message))
                return
        else:
            deployment = choose(endpoint, self._random() * 100.0)
            if endpoint.mirrors:
                mirrors = mirror_targets(
                    endpoint, deployment.name, [self._random() * 100.0 for _ in endpoint.mirrors]
                )
        client.send_continue(request)
        request.body.retain(
            request.content_length, max(RETAIN_LIMIT, self.mirror_max_body) if mirrors else RETAIN_LIMIT
        )
        for target in mirrors:
            self._spawn_mirror(endpoint, target, request, query)
        status = await self.forward(endpoint, deployment, request, client, query)
        self.metrics.observe(
            endpoint.name, endpoint.namespace, deployment.name, status, time.monotonic() - started
        )

    def _not_found(
        self, client: ClientConnection, name: str, namespace: str | None, namespaces: tuple[str, ...]
    ) -> None:
        if namespace is None and namespaces:
            listed = ", ".join(namespaces)
            client.respond(
                409,
                _error(
                    409,
                    (
                        f"endpoint '{name}' is defined in several namespaces ({listed}); name one with "
                        f"POST /api/v1/namespaces/<namespace>/endpoint/{name}/score or the header "
                        f"'{NAMESPACE_HEADER.decode()}: <namespace>'"
                    ),
                ),
            )
        elif namespaces:
            client.respond(
                404,
                _error(
                    404,
                    f"endpoint '{name}' not found in namespace '{namespace}'; "
                    f"it is defined in: {', '.join(namespaces)}",
                ),
            )
        else:
            client.respond(
                404,
                _error(
                    404,
                    f"endpoint '{name}' not found; endpoints (namespace/name): "
                    f"{_names(list(self.table.endpoints))}",
                ),
            )

    # -- one live exchange -------------------------------------------------------------------------------
    async def forward(
        self,
        endpoint: Endpoint,
        deployment: Deployment,
        request: Request,
        client: ClientConnection,
        query: bytes,
    ) -> int:
        """Relay the request to a pod of `deployment`; returns the status the caller saw."""
        pool = self.pools[deployment.key]
        settings = deployment.settings
        slot = pool.try_acquire()  # a free pod is the usual case: no coroutine for it
        try:
            if slot is None:
                slot = await pool.acquire(settings.max_queue_wait_ms / 1000.0)
        except QueueTimeout:
            if not pool.pods:
                message = f"deployment '{deployment.name}' of endpoint '{endpoint.name}' has no ready pods"
            else:
                per_pod = f"{pool.max_concurrent} concurrent requests"
                if self.replicas > 1:
                    per_pod += (
                        f", this router's share of {settings.max_concurrent} per pod among "
                        f"{self.replicas} router replicas"
                    )
                message = (
                    f"deployment '{deployment.name}' is at capacity ({pool.pods} pods x {per_pod}); "
                    f"no pod freed up within {settings.max_queue_wait_ms} ms"
                )
            client.respond(503, _error(503, message), headers=[(b"retry-after", b"1")])
            return 503
        conn: UpstreamConnection | None = None
        request_id = request.index.get(b"x-request-id") or new_request_id()
        chunked = request.content_length is None and b"transfer-encoding" in request.index
        try:
            for attempt in (1, 2):
                conn = self.upstreams.take_idle(slot.backend.address) if attempt == 1 else None
                reused = conn is not None
                if conn is None:
                    conn, reused = await self._connect(slot, deployment, client)
                    if conn is None:
                        return 502
                replay = request.body.replay()
                conn.begin(
                    self._upstream_head(request, deployment, slot, query, request_id),
                    chunked,
                    client.pause_reading_for_upstream,
                    replay,
                )
                if replay is None:
                    request.body.attach(conn)
                timer = _Deadline(conn, request.body, settings.request_timeout_ms / 1000.0)
                try:
                    await conn.head  # type: ignore[misc]
                except UpstreamError as exc:
                    timer.cancel()
                    request.body.detach()
                    if attempt == 1 and reused and conn.received == 0 and request.body.replay() is not None:
                        conn.close()
                        continue  # a kept-alive connection the pod had already closed: retry fresh once
                    conn.close()
                    client.respond(
                        502,
                        _error(502, f"deployment '{deployment.name}' pod '{slot.backend.pod}' failed: {exc}"),
                    )
                    return 502
                except UpstreamTimeout:
                    timer.cancel()
                    request.body.detach()
                    conn.close()
                    client.respond(
                        504,
                        _error(
                            504,
                            f"deployment '{deployment.name}' did not answer within "
                            f"{settings.request_timeout_ms} ms",
                        ),
                    )
                    return 504
                break
            assert conn is not None
            return await self._relay(conn, client, deployment, request_id, timer)
        finally:
            request.body.detach()
            client.pause_reading_for_upstream(False)
            pool.release(slot)
            if conn is not None:
                self.upstreams.put(conn)

    async def _relay(
        self,
        conn: UpstreamConnection,
        client: ClientConnection,
        deployment: Deployment,
        request_id: bytes,
        timer: _Deadline,
    ) -> int:
        parts = [status_line(conn.status)]
        has_id = False
        for name, value in conn.headers:
            if name not in NOT_RETURNED:
                parts += (name, b": ", value, CRLF)
                has_id = has_id or name == b"x-request-id"
        parts += (b"azureml-model-deployment: ", deployment.name_header, CRLF)
        if not has_id:
            parts += (b"x-request-id: ", request_id, CRLF)
        if conn.complete:  # the whole answer is already here: one write, nothing to relay
            timer.cancel()
            body = conn.take_early()
            client.start(parts, len(body), body)
            client.finish()
            return conn.status
        client.start(parts, conn.length)
        conn.relay(client)
        try:
            await conn.done  # type: ignore[misc]
        except (UpstreamError, UpstreamTimeout):
            client.abort()  # the head is out; a cut connection is the only way left to say "broken"
            conn.close()
            return conn.status
        finally:
            timer.cancel()
            client.source = None
        client.finish()
        return conn.status

    async def _connect(
        self, slot: PodSlot, deployment: Deployment, client: ClientConnection | None
    ) -> tuple[UpstreamConnection | None, bool]:
        try:
            return await self.upstreams.connect(slot.backend.address)
        except UpstreamError as exc:
            if client is not None:
                client.respond(
                    502,
                    _error(
                        502, f"deployment '{deployment.name}' pod '{slot.backend.pod}' is unreachable: {exc}"
                    ),
                )
            return None, False

    @staticmethod
    def _upstream_head(
        request: Request, deployment: Deployment, slot: PodSlot, query: bytes, request_id: bytes
    ) -> bytes:
        parts = [request.method, b" ", deployment.scoring_target]
        if query:
            parts += (b"?", query)
        parts += (b" HTTP/1.1\r\nhost: ", slot.backend.host_header, CRLF)
        for name, value in request.headers:
            if name not in NOT_FORWARDED:
                parts += (name, b": ", value, CRLF)
        if b"x-request-id" not in request.index:
            parts += (b"x-request-id: ", request_id, CRLF)
        if request.content_length is not None:
            parts += (b"content-length: %d\r\n\r\n" % request.content_length,)
        elif b"transfer-encoding" in request.index:
            parts.append(b"transfer-encoding: chunked\r\n\r\n")
        else:
            parts.append(b"content-length: 0\r\n\r\n")
        return b"".join(parts)

    # -- mirror copies ------------------------------------------------------------------------------------
    def _spawn_mirror(self, endpoint: Endpoint, target: Deployment, request: Request, query: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._mirror(endpoint, target, request, query))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _mirror(self, endpoint: Endpoint, target: Deployment, request: Request, query: bytes) -> None:
        """Send a copy once the body is in; its answer is read and dropped. Never touches the caller."""
        outcome = "failed"
        try:
            await request.body.wait_complete()
        except asyncio.CancelledError:
            self.metrics.mirrored.labels(endpoint.name, endpoint.namespace, target.name, "skipped").inc()
            return
        body = request.body.replay()
        pool = self.pools.get(target.key)
        if body is None or len(body) > self.mirror_max_body or pool is None:
            self.metrics.mirrored.labels(endpoint.name, endpoint.namespace, target.name, "skipped").inc()
            return
        slot: PodSlot | None = None
        conn: UpstreamConnection | None = None
        try:
            slot = await pool.acquire(target.settings.max_queue_wait_ms / 1000.0)
            conn, _ = await self.upstreams.connect(slot.backend.address)
            request_id = request.index.get(b"x-request-id") or new_request_id()
            mirrored = Request(request.method, request.url, request.headers, True, request.body)
            mirrored.content_length = len(body)
            conn.begin(self._upstream_head(mirrored, target, slot, query, request_id), False, None, body)
            timer = _Deadline(conn, None, target.settings.request_timeout_ms / 1000.0)
            try:
                await conn.head  # type: ignore[misc]
                conn.relay(Sink())
                await conn.done  # type: ignore[misc]
            finally:
                timer.cancel()
            outcome = "answered"
        except (QueueTimeout, UpstreamError, UpstreamTimeout):
            if conn is not None:
                conn.close()
        finally:
            if slot is not None:
                pool.release(slot)
            if conn is not None:
                self.upstreams.put(conn)
            self.metrics.mirrored.labels(endpoint.name, endpoint.namespace, target.name, outcome).inc()

    async def close(self) -> None:
        for task in list(self._mirrors):
            task.cancel()
        self.upstreams.close()


def _score_route(path: bytes) -> tuple[str, str | None, bytes | None] | None:
    """(endpoint, pinned deployment, namespace) for a score URL, else None."""
    namespace: bytes | None = None
    if path.startswith(NAMESPACED_PREFIX):
        namespace, _, rest = path[len(NAMESPACED_PREFIX) :].partition(b"/")
        if not (namespace and rest.startswith(b"endpoint/")):
            return None
        path = b"/api/v1/" + rest
    if not path.startswith(SCORE_PREFIX):
        return None
    parts = path[len(SCORE_PREFIX) :].split(b"/")
    if len(parts) == 2 and parts[1] == b"score":
        return parts[0].decode(errors="replace"), None, namespace
    if len(parts) == 4 and parts[1] == b"deployment" and parts[3] == b"score":
        return parts[0].decode(errors="replace"), parts[2].decode(errors="replace"), namespace
    return None


class _Deadline:
    """The request timeout, counted from the moment the whole body has reached the pod.

    While the client is still uploading, or while answer bytes keep arriving, the timer re-arms
    itself rather than firing: the timeout bounds the model's scoring time and an answer that stalls,
    not a large upload or a long answer that is flowing.
    """

    __slots__ = ("_body", "_conn", "_handle", "_seconds")

    def __init__(self, conn: UpstreamConnection, body: Body | None, seconds: float) -> None:
        self._conn = conn
        self._body = body
        self._seconds = seconds
        assert conn.loop is not None
        self._handle = conn.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        conn, now = self._conn, time.monotonic()
        body = self._body
        if body is not None and not body.complete:
            since = now
        elif conn.head is not None and not conn.head.done():
            since = max(body.completed_at if body is not None else 0.0, conn.last_activity)
        else:
            since = conn.last_activity
        left = since + self._seconds - now
        if left > 0.001:
            assert conn.loop is not None
            self._handle = conn.loop.call_later(left, self._check)
        else:
            conn.time_out()

    def cancel(self) -> None:
        self._handle.cancel()
