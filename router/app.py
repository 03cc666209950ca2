"""Runs the router: one event loop (uvloop), the listening socket, the table source, housekeeping.

One process serves on one core; more throughput comes from more router replicas behind the Service,
not from forked workers, because the per-pod concurrency limit and the autoscaler's signals must be
counted in one place per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router.defaults import LEASE_PREFIX, MIRROR_MAX_BODY
from router.proxy import Router
from router.server import ClientConnection

if TYPE_CHECKING:
    from router.tls import RotatingCertificate

log = logging.getLogger("inferplane.router")

HOUSEKEEPING_SECONDS = 1.0
UPSTREAM_IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class Options:
    host: str = "0.0.0.0"
    port: int = 8080
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    routes: str | None = None
    namespaces: tuple[str, ...] = ()  # watched namespaces; none: every namespace
    kubeconfig: str | None = None
    autoscale: bool = True
    lease_namespace: str = "default"
    lease_prefix: str = LEASE_PREFIX  # <prefix>-autoscaler, <prefix>-load-<identity>
    identity: str = ""
    drain_seconds: float = 30.0
    tls_poll_seconds: float = 2.0  # how often the certificate files are checked for a rotation
    mirror_max_body_bytes: int = MIRROR_MAX_BODY  # larger bodies get no mirror copy


class RouterApp:
    """The router plus whatever feeds its table; `start`/`stop` are what tests call in-process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.router = Router(mirror_max_body=options.mirror_max_body_bytes)
        self.connections: set[ClientConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list[Callable[[], Awaitable[None]]] = []  # run once requests have drained
        self.certificate: RotatingCertificate | None = None

    async def start(self) -> None:
        options = self.options
        if options.routes is not None:
            self.reload()
        else:
            from router.discovery import start_discovery

            self._stoppers.append(await start_discovery(self.router, options))
        loop = asyncio.get_running_loop()
        if options.tls_cert_file and options.tls_key_file:
            from router.tls import RotatingCertificate

            self.certificate = RotatingCertificate(
                options.tls_cert_file, options.tls_key_file, options.tls_poll_seconds
            )
            self.certificate.watch(loop)
            self._stoppers.append(_awaitable(self.certificate.stop))
        self._server = await loop.create_server(
            self._connection,
            options.host,
            options.port,
            ssl=self.certificate.listening if self.certificate else None,
            backlog=2048,
            reuse_address=True,
        )
        self._tasks.append(loop.create_task(self._housekeeping()))
        log.info(
            "router listening",
            extra={
                "host": options.host,
                "port": self.port,
                "tls": self.certificate is not None,
                "source": options.routes or "kubernetes",
            },
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def reload(self) -> None:
        """Re-read `--routes` (on SIGHUP); a broken file is logged and the old table kept."""
        from router.static import load_routes

        assert self.options.routes is not None
        try:
            table = load_routes(self.options.routes)
        except Exception as exc:
            if not self.router.ready:
                raise
            log.error("routes file not reloaded; keeping the previous routes", extra={"error": str(exc)})
            return
        self.router.apply(table)
        self.router.ready = True
        log.info("routes loaded", extra={"endpoints": sorted(table.endpoints)})

    def _connection(self) -> ClientConnection:
        conn = ClientConnection(self.router.handle, self.connections.discard)
        self.connections.add(conn)
        return conn

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            self.router.upstreams.prune(UPSTREAM_IDLE_SECONDS)

    async def stop(self) -> None:
        """Stop taking connections, let requests in flight finish (up to the drain time), close.

        The watches and the load Lease stay up while draining: the table keeps following the pods,
        and peers keep counting this replica until its requests are done (then its Lease goes).
        """
        if self._server is not None:
            self._server.close()
        deadline = asyncio.get_running_loop().time() + self.options.drain_seconds
        while (
            any(self.router.pools[k].in_flight for k in self.router.pools)
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        for stop in self._stoppers:
            await stop()
        for task in self._tasks:
            task.cancel()
        await self.router.close()


def _awaitable(stop: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        stop()

    return call


async def serve(options: Options) -> None:
    app = RouterApp(options)
    await app.start()
    # What start-up made (modules, the table, the kubernetes client in cluster mode: 24,000 to 48,000
    # objects) lives as long as the process: leave it out of the collector's passes. A full collection
    # then costs ~0 ms instead of 3.5-8 ms, a pause every request in flight would wait through. The
    # collector's thresholds stay: requests' objects die young, and under load gen-0 passes run a few
    # times a second, 0.07-0.09 ms median (measured with gc.callbacks under wrk).
    gc.freeze()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    if options.routes is not None:
        loop.add_signal_handler(signal.SIGHUP, app.reload)
    await stopping.wait()
    log.info("router stopping; letting requests in flight finish")
    await app.stop()


def run(options: Options) -> int:
    try:
        import uvloop
    except ImportError:  # the pure-asyncio loop works, at roughly half the throughput
        uvloop = None
    with contextlib.suppress(KeyboardInterrupt):
        if uvloop is not None:
            uvloop.run(serve(options))
        else:
            asyncio.run(serve(options))
    return 0
