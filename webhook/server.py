"""The admission webhook's HTTP shell: `inferplane webhook`.

Thin on purpose (style.md, Istio's webhook.go): it checks the transport (method, content type, size),
hands the raw body to the pure handlers in `webhook.handlers`, and turns their answer or BadRequest
into a response, a metric and an access-log line carrying the review uid. The apiserver calls
`/mutate-pod?timeout=10s`: routing is on the path alone.

A hand-written WSGI callable, not Flask (the product's default choice for HTTP), because Flask was
measured to dominate the hot path: under gunicorn with TLS on the 2-core dev box a Flask no-op
handler peaked at 615 reviews/s and 0.72 ms CPU per review against 1,968/s and 0.23 ms for a bare
WSGI callable giving the same answer (bench/webhook.py; in process, 418 µs against 33 µs per
request). Request-context setup, URL adapters and response wrapping cost more than the mutation
itself, and a webhook sits in series on every pod creation. The whole HTTP surface is five routes,
so the dispatcher below is short; Flask stays where a richer surface earns it.
"""

from __future__ import annotations

import argparse
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from inferplane.errors import BadRequest
from inferplane.logs import ACCESS_FIELDS_KEY
from webhook.config import InjectionConfig, add_injection_arguments, injection_config

if TYPE_CHECKING:
    from inferplane.metrics import Registry
    from webhook.catalog import Catalog
    from webhook.handlers import Answer

log = logging.getLogger(__name__)

Handler = Callable[[bytes, "Catalog", InjectionConfig], "Answer"]
StartResponse = Callable[..., Any]

# controller-runtime's limit: two objects of up to 3 MiB (the apiserver's own request limit) plus the
# envelope (wire.md A.9).
MAX_BODY = 7 * 1024 * 1024
# Longest a review waits for a worker's catalog to finish its first sync before a 503.
SYNC_WAIT_CAP = 5.0
_TIMEOUT_PARAM = re.compile(r"^(\d+)s$")
_JSON = "application/json"


def sync_wait(timeout_param: str | None, cap: float = SYNC_WAIT_CAP) -> float:
    """How long to wait for the catalog: a second less than the apiserver's `?timeout=Ns` leaves
    time to answer 503 ourselves, so the apiserver logs our reason rather than its own timeout."""
    match = _TIMEOUT_PARAM.match(timeout_param or "")
    if not match:
        return cap
    return max(0.0, min(cap, int(match.group(1)) - 1.0))


def default_handlers() -> dict[str, Handler]:
    from webhook import handlers

    return {"mutate-pod": handlers.mutate_pod, "validate-workload": handlers.validate_workload}


class _Problem(Exception):
    """A request refused before it reached a handler: its HTTP code, the sentence, the metric outcome."""

    def __init__(
        self, code: int, message: str, outcome: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.outcome = outcome
        self.headers = tuple(headers)


def _not_allowed(method: str, path: str, allowed: str) -> _Problem:
    return _Problem(
        405, f"{method} not allowed on {path}; use {allowed}", "method_not_allowed", [("Allow", allowed)]
    )


def _respond(
    start_response: StartResponse,
    code: int,
    body: bytes,
    content_type: str = _JSON,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    status = f"{code} {HTTPStatus(code).phrase}"
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]


def _read_body(environ: Mapping[str, Any]) -> bytes:
    """The request body, refusing a wrong content type or a size over MAX_BODY before reading it."""
    content_type = environ.get("CONTENT_TYPE") or ""
    if content_type.split(";", 1)[0].strip().lower() != _JSON:
        raise _Problem(
            415, f"Content-Type must be {_JSON}, not {content_type or 'missing'!r}", "unsupported_media_type"
        )
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if not declared:  # chunked: read one byte past the limit to know it was passed
        body = stream.read(MAX_BODY + 1)
    else:
        try:
            length = int(declared)
        except ValueError:
            raise _Problem(400, f"Content-Length {declared!r} is not a number", "bad_request") from None
        if length > MAX_BODY:
            body = b"x" * (MAX_BODY + 1)  # refused below without reading a byte of it
        else:
            body = stream.read(length)
            if len(body) < length:
                raise _Problem(400, f"body ended after {len(body)} of {length} bytes", "bad_request")
    if len(body) > MAX_BODY:
        raise _Problem(
            413, f"request body over {MAX_BODY} bytes (the limit for an AdmissionReview)", "too_large"
        )
    return body


class WebhookApp:
    """The WSGI app: POST /<webhook> for each handler, GET /healthz, /readyz and /metrics."""

    def __init__(
        self,
        catalog: Catalog,
        config: InjectionConfig,
        ready: threading.Event,
        *,
        metrics: Registry | None = None,
        handlers: Mapping[str, Handler] | None = None,
        status: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        """`ready` is set once the catalog has synced; `status` adds per-cache detail to /readyz."""
        from inferplane.metrics import Registry

        self.catalog = catalog
        self.config = config
        self.ready = ready
        self.status = status
        self.registry = metrics or Registry()
        self._requests = self.registry.counter(
            "inferplane_webhook_requests_total",
            "Admission requests answered, by webhook path, HTTP code and outcome.",
            ("webhook", "code", "outcome"),
        )
        latency = self.registry.histogram(
            "inferplane_webhook_latency_seconds",
            "Time from the request reaching the app to its answer, by webhook path.",
            ("webhook",),
        )
        in_flight = self.registry.gauge(
            "inferplane_webhook_requests_in_flight", "Admission requests being handled.", ("webhook",)
        )
        chosen = handlers if handlers is not None else default_handlers()
        # Per route: its name, handler and pre-bound metric children (label lookups cost ~2 µs each).
        self._reviews = {
            f"/{name}": (name, handler, latency.labels(name), in_flight.labels(name))
            for name, handler in chosen.items()
        }
        self._pages: dict[str, Callable[[dict[str, Any], StartResponse], list[bytes]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path, method = environ.get("PATH_INFO") or "/", environ["REQUEST_METHOD"]
        route = self._reviews.get(path)
        if route is not None:
            if method != "POST":
                return self._refuse(environ, start_response, _not_allowed(method, path, "POST"))
            return self._review(environ, start_response, *route)
        page = self._pages.get(path)
        if page is None:
            known = ", ".join(sorted(self._reviews))
            return self._refuse(environ, start_response, _Problem(
                404, f"no such endpoint {path}; POST reviews to {known}", "not_found"
            ))  # fmt: skip
        if method not in ("GET", "HEAD"):
            return self._refuse(environ, start_response, _not_allowed(method, path, "GET, HEAD"))
        return page(environ, start_response)

    def _review(self, environ: dict[str, Any], start_response: StartResponse, webhook: str,
                handler: Handler, latency: Any, in_flight: Any) -> list[bytes]:  # fmt: skip
        in_flight.inc()
        started = time.perf_counter()
        try:
            body = _read_body(environ)
            if not self.ready.is_set() and not self.ready.wait(sync_wait(_timeout_param(environ))):
                raise _Problem(503, "catalog not synced yet; see /readyz", "not_synced")
            try:
                answer = handler(body, self.catalog, self.config)
            except BadRequest as exc:
                raise _Problem(400, str(exc), "bad_request") from exc
        except _Problem as problem:
            self._requests.labels(webhook, str(problem.code), problem.outcome).inc()
            return self._refuse(environ, start_response, problem)
        except Exception:
            log.exception("review handler failed", extra={"webhook": webhook})
            self._requests.labels(webhook, "500", "error").inc()
            problem = _Problem(500, "internal error; see the webhook's log", "error")
            return self._refuse(environ, start_response, problem)
        finally:
            latency.observe(time.perf_counter() - started)
            in_flight.dec()
        self._requests.labels(webhook, "200", answer.outcome).inc()
        environ[ACCESS_FIELDS_KEY] = {"uid": answer.uid, "outcome": answer.outcome}
        return _respond(start_response, 200, answer.body)

    @staticmethod
    def _refuse(environ: dict[str, Any], start_response: StartResponse, problem: _Problem) -> list[bytes]:
        environ[ACCESS_FIELDS_KEY] = {"outcome": problem.outcome, "reason": problem.message}
        body = _json({"code": problem.code, "message": problem.message})
        return _respond(start_response, problem.code, body, headers=problem.headers)

    def _healthz(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        return _respond(start_response, 200, b"ok\n", "text/plain; charset=utf-8")

    def _readyz(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        ready = self.ready.is_set()
        body = _json({"ready": ready, "caches": self.status()})
        return _respond(start_response, 200 if ready else 503, body)

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        data, content_type = self.registry.exposition(environ.get("HTTP_ACCEPT", ""))
        return _respond(start_response, 200, data, content_type)


def _timeout_param(environ: Mapping[str, Any]) -> str | None:
    values = parse_qs(environ.get("QUERY_STRING") or "").get("timeout")
    return values[0] if values else None


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


# ---- the `inferplane webhook` command ----------------------------------------------------------------


def add_server_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "webhook",
        help="run the admission webhook server (HTTPS)",
        description="Serve /mutate-pod and /validate-workload over HTTPS for the apiserver, with "
        "/healthz, /readyz and /metrics. Without --catalog the InstanceTypes and model registrations "
        "come from the cluster (in-cluster service account, or --kubeconfig).",
    )
    parser.add_argument("--port", type=_port, default=8443)
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--tls-cert-file", required=True, metavar="FILE", help="PEM serving certificate")
    parser.add_argument("--tls-key-file", required=True, metavar="FILE", help="PEM private key")
    parser.add_argument("--catalog", metavar="DIR", help="read InstanceTypes and registrations from files")
    parser.add_argument("--kubeconfig", metavar="FILE", help="cluster to watch when not in a pod")
    parser.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    # A review is pure CPU under the GIL: more threads only queue for it. bench/webhook.py at 8 threads
    # against 4 on 2 cores: peak 955 against 1,215 reviews/s, p99 at 500/s 4.9 against 1.5 ms.
    parser.add_argument("--threads", type=_positive, default=4, help="threads per worker (default 4)")
    add_injection_arguments(parser)
    parser.add_argument("--unknown-reference", choices=("deny", "warn"), default="deny")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def run(args: argparse.Namespace) -> int:
    from inferplane import serving

    config = injection_config(args, unknown_reference=args.unknown_reference)  # UserError: exit 2
    # Refuse bad TLS files before touching the catalog or the cluster.
    serving.check_tls_files(args.tls_cert_file, args.tls_key_file)
    settings = serving.ServerSettings(
        name="webhook", port=args.port, host=args.host, certfile=args.tls_cert_file,
        keyfile=args.tls_key_file, workers=args.workers, threads=args.threads, log_level=args.log_level,
    )  # fmt: skip
    serving.serve(_service_builder(args, config), settings)
    return 0


def _service_builder(args: argparse.Namespace, config: InjectionConfig) -> Callable[[], Any]:
    """What the master builds once metrics are set up; the cluster watch starts in each worker."""
    from inferplane import serving
    from instance_types.default import builtin_default
    from webhook.catalog import Catalog

    # The operator's defaultinstancetype; a CR of that name still overrides it.
    default = builtin_default(config.default_cpu, config.default_memory)
    if args.catalog:
        catalog = Catalog.from_dir(args.catalog, default=default)  # UserError naming the bad file: exit 2
        ready = threading.Event()
        ready.set()
        return lambda: serving.Service(WebhookApp(catalog, config, ready))

    from inferplane import kube
    from webhook.cluster import ClusterFeed

    client = kube.connect(  # UserError when there is no cluster to reach
        args.kubeconfig,
        hint="run it in a pod, pass --kubeconfig FILE, or serve a directory of manifests with --catalog DIR",
    )

    def build() -> serving.Service:
        feed = ClusterFeed(client, Catalog(default))
        return serving.Service(
            WebhookApp(feed.catalog, config, feed.ready, status=feed.status), start=feed.start, stop=feed.stop
        )

    return build
