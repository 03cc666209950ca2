"""Run one of our WSGI servers (webhook, extender, router, scoring) under gunicorn, the same way each time.

What every server gets from here: TLS with a certificate that is picked up again when it is rotated,
gthread workers, a graceful stop on SIGTERM (requests in flight finish, within `graceful_timeout`;
a worker still starting simply ends), the boot-error exit code (3) when a worker cannot start,
per-worker background threads started after the fork (watch caches: threads do not survive `fork`,
so starting them in the master would leave workers without a live watcher), Prometheus metrics that
stay right with several workers (see `inferplane.metrics`), and JSON logs, gunicorn's included.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import signal
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.errors import HaltServer

from inferplane import logs, metrics
from inferplane.errors import UserError

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Service:
    """A WSGI app and what each worker must start and stop around it."""

    app: WSGIApp
    # Runs in every worker right after the fork, before it accepts connections.
    start: Callable[[], None] = _nothing
    # Runs in every worker as it exits (after in-flight requests finished or the grace ran out).
    stop: Callable[[], None] = _nothing


@dataclass(frozen=True)
class ServerSettings:
    name: str  # process title and log field: "webhook", "extender", …
    port: int
    host: str = "0.0.0.0"
    certfile: str | None = None
    keyfile: str | None = None
    workers: int = 1
    threads: int = 8
    # Longer than the idle timeout of Go's HTTP clients (90 s in the apiserver's transport), so the
    # client, not us, closes an idle connection: a POST on a connection we just closed is not retried.
    keepalive: int = 120
    # Below Kubernetes' default terminationGracePeriodSeconds (30 s), so workers end on their own.
    graceful_timeout: int = 25
    # A worker silent for this long is killed and replaced by the master.
    timeout: int = 30
    cert_poll_seconds: float = 2.0
    log_level: str = "info"
    access_log: bool = True
    # More "host:port" addresses, served by the same app (which may tell them apart by the WSGI
    # SERVER_PORT: gunicorn sets it from the listening socket): the extender's metrics listener.
    also_bind: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # any other gunicorn setting

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def check_tls_files(certfile: str | None, keyfile: str | None) -> None:
    """Refuse a missing, unreadable or mismatched certificate and key before anything starts."""
    if (certfile is None) != (keyfile is None):
        raise UserError("give both --tls-cert-file and --tls-key-file, or neither")
    if certfile is None or keyfile is None:
        return
    for flag, path in (("--tls-cert-file", certfile), ("--tls-key-file", keyfile)):
        if not os.path.isfile(path):
            raise UserError(f"{flag} {path}: no such file; mount the TLS Secret and point the flag at it")
        if not os.access(path, os.R_OK):
            raise UserError(f"{flag} {path}: not readable by uid {os.getuid()}; fix the file's mode")
    try:
        _server_context(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise UserError(
            f"--tls-cert-file {certfile} and --tls-key-file {keyfile} do not load as a pair ({exc}); "
            "give a PEM certificate and the PEM private key that matches it"
        ) from exc


def _server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side context without the system CA store: we do not verify client certificates,
    and loading that store is what made gunicorn's per-connection default cost ~1.9 ms."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return context


def _fingerprint(paths: Iterable[str]) -> bytes:
    """The contents' digest, not the mtime: kubelet swaps a Secret volume by a symlink rename, and
    mtimes can be equal within the filesystem's resolution."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(Path(path).read_bytes())
        except OSError as exc:
            digest.update(f"unreadable {exc.errno}".encode())
        digest.update(b"\0")
    return digest.digest()


class CertWatcher(threading.Thread):
    """Calls `on_change` when the certificate or key changes and the new pair loads.

    Under gunicorn it runs in the master (`when_ready`), where `on_change` sends SIGHUP: gunicorn then
    starts new workers, which load the new pair, and stops the old ones gracefully (ecosystem.md 3.7);
    the router has no workers and swaps its context instead. `action` says in the log line what
    `on_change` is about to do, since only the caller knows. A pair that does not load (the key
    written before the certificate) is logged and skipped; the next change is tried again, and the
    previous pair goes on being served meanwhile.
    """

    def __init__(
        self,
        certfile: str,
        keyfile: str,
        interval: float,
        on_change: Callable[[], None],
        *,
        action: str = "",
    ) -> None:
        super().__init__(name="cert-watcher", daemon=True)
        self._paths = (certfile, keyfile)
        self._interval = interval
        self._on_change = on_change
        self._message = f"TLS certificate changed; {action}" if action else "TLS certificate changed"
        self._seen = _fingerprint(self._paths)
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.check()

    def check(self) -> bool:
        """True when a change was found and handed on."""
        now = _fingerprint(self._paths)
        if now == self._seen:
            return False
        self._seen = now
        try:
            _server_context(*self._paths)
        except (ssl.SSLError, OSError) as exc:
            log.error(
                "TLS files changed but do not load as a pair; still serving the previous certificate",
                extra={"certfile": self._paths[0], "keyfile": self._paths[1], "error": str(exc)},
            )
            return False
        log.info(self._message, extra={"certfile": self._paths[0]})
        self._on_change()
        return True

    def stop(self) -> None:
        self._stopped.set()


class JsonGunicornLogger(glogging.Logger):
    """gunicorn's error and access logs as JSON lines; the access line carries the fields an app put
    in `environ[logs.ACCESS_FIELDS_KEY]` (the review uid, the outcome)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(logs.JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        fields: dict[str, Any] = {
            "method": req.method,
            "path": req.path,
            "status": resp.status_code,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "bytes": resp.sent,
            "remote": environ.get("REMOTE_ADDR"),
            "pid": os.getpid(),  # which worker served it
        }
        fields.update(environ.get(logs.ACCESS_FIELDS_KEY) or {})
        self.access_log.info("request", extra=fields)


class _Gunicorn(BaseApplication):
    """gunicorn's programmatic entry: our settings in, our hooks wired, no config file read."""

    def __init__(self, service: Service, settings: ServerSettings) -> None:
        self._service = service
        self._settings = settings
        self._watcher: CertWatcher | None = None
        self._contexts: dict[int, ssl.SSLContext] = {}
        super().__init__()

    def load_config(self) -> None:
        s = self._settings
        options: dict[str, Any] = {
            "bind": [s.bind, *s.also_bind],
            "workers": s.workers,
            "worker_class": "gthread",
            "threads": s.threads,
            "keepalive": s.keepalive,
            "graceful_timeout": s.graceful_timeout,
            "timeout": s.timeout,
            "proc_name": f"inferplane-{s.name}",
            "loglevel": s.log_level,
            "errorlog": "-",
            "accesslog": "-" if s.access_log else None,
            "logger_class": JsonGunicornLogger,
            # Several servers may run side by side (tests, one pod's sidecars): a shared default
            # control socket in $HOME would make them collide.
            "control_socket_disable": True,
            # Heartbeat files on tmpfs: the root filesystem is read-only under Pod Security.
            "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
            "when_ready": self._when_ready,
            "post_fork": self._post_fork,
            "worker_exit": self._worker_exit,
            "child_exit": self._child_exit,
            "on_exit": self._on_exit,
        }
        if s.certfile and s.keyfile:
            options.update(certfile=s.certfile, keyfile=s.keyfile, ssl_context=self._ssl_context)
        options.update(s.extra)
        for key, value in options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        return self._service.app

    # gunicorn hooks (each runs where its name says: master or worker)

    def _when_ready(self, server: Any) -> None:  # master, once the sockets listen
        s = self._settings
        if s.certfile and s.keyfile and self._watcher is None:
            pid = os.getpid()
            self._watcher = CertWatcher(
                s.certfile,
                s.keyfile,
                s.cert_poll_seconds,
                lambda: os.kill(pid, signal.SIGHUP),
                action="reloading workers",
            )
            self._watcher.start()
        binds = [s.bind, *s.also_bind]
        log.info("listening", extra={"server": s.name, "bind": ", ".join(binds), "tls": bool(s.certfile)})

    def _post_fork(self, server: Any, worker: Any) -> None:  # worker
        # The forked worker still has the master's handlers, which only queue a signal for the
        # master's loop, and a worker never runs that loop: a SIGTERM arriving during a long
        # `start` (a cache listing 150,000 pods, a model's init()) would be lost, and the master
        # would wait out its graceful timeout before killing it. gunicorn resets these same
        # signals when the worker's own loop begins, after `start`; resetting them now as well
        # means a stop request simply ends a worker that is not serving yet.
        for stop_signal in getattr(worker, "SIGNALS", ()):
            signal.signal(stop_signal, signal.SIG_DFL)
        self._service.start()

    def _worker_exit(self, server: Any, worker: Any) -> None:  # worker
        self._service.stop()

    def _child_exit(self, server: Any, worker: Any) -> None:  # master
        metrics.mark_process_dead(worker.pid)

    def _on_exit(self, server: Any) -> None:  # master
        if self._watcher is not None:
            self._watcher.stop()

    def _ssl_context(self, config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """One context per worker process, built on its first connection.

        gunicorn's default builds a new context (and reads the system CA store) for every accepted
        connection: ~1.9 ms each here. Caching is safe because a rotation reaches us as SIGHUP,
        which replaces the workers; the key is the pid so a forked child never reuses its parent's.
        """
        pid = os.getpid()
        context = self._contexts.get(pid)
        if context is None:
            context = self._contexts[pid] = _server_context(config.certfile, config.keyfile)
        return context


def serve(build: Callable[[], Service], settings: ServerSettings) -> None:
    """Start the gunicorn master and block until it stops (SIGTERM, SIGINT).

    `build` runs in the master once the metrics mode is set (so it may create metric objects);
    its `Service.start` then runs in each worker. Bad TLS files raise UserError before anything runs.
    """
    check_tls_files(settings.certfile, settings.keyfile)
    if settings.workers < 1 or settings.threads < 1:
        raise UserError("--workers and --threads must be at least 1")
    logs.configure(settings.log_level)
    if settings.workers > 1 and not metrics.is_multiprocess():
        metrics.enable_multiprocess(tempfile.mkdtemp(prefix=f"inferplane-{settings.name}-metrics-"))
    elif metrics.is_multiprocess():
        metrics.enable_multiprocess(os.environ[metrics.ENV_DIR])
    service = build()
    # Objects that exist now live as long as the process: keep the cyclic GC from scanning them
    # again and again (a full collection over them paused a review for 25-100 ms here) and from
    # touching their pages in the forked workers (copy-on-write).
    gc.freeze()
    try:
        _Gunicorn(service, settings).run()
    except HaltServer as exc:
        # gunicorn halts on the first worker that fails to boot (exit 3), but when a second one
        # fails while it is stopping, reaping that one raises HaltServer again, out of the arbiter:
        # exit 1 and gunicorn's own traceback instead of the code that says "could not start".
        # The workers have been told to stop by then; keep the code.
        log.error("stopped: %s", exc.reason, extra={"server": settings.name, "exit_code": exc.exit_status})
        sys.exit(exc.exit_status)
