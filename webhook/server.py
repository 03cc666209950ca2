"""The admission webhook's HTTP shell: `inferplane webhook`.

Thin on purpose (style.md, Istio's webhook.go): it checks the transport (method, content type, size),
hands the raw body to the pure handlers in `webhook.handlers`, and turns their answer or BadRequest
into a response, a metric and an access-log line carrying the review uid. The apiserver calls
`/mutate-pod?timeout=10s`: routing is on the path alone.

Flask is the product's declared choice; measured here it costs ~70 µs per request over a bare WSGI
callable (a Flask route vs a hand-written one, same body, no server), well inside the budget
(1,000 reviews/s on one worker is 1 ms each), so the clarity is kept. Flask and the Kubernetes client
are imported inside the functions that need them, so `inferplane --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from inferplane.errors import BadRequest
from webhook.config import DEFAULT_APP_ROOT, DEFAULT_INIT_IMAGE, InjectionConfig

if TYPE_CHECKING:
    from flask import Flask

    from inferplane.metrics import Registry
    from webhook.catalog import Catalog
    from webhook.handlers import Answer

log = logging.getLogger(__name__)

Handler = Callable[[bytes, "Catalog", InjectionConfig], "Answer"]

# controller-runtime's limit: two objects of up to 3 MiB (the apiserver's own request limit) plus the
# envelope (wire.md A.9).
MAX_BODY = 7 * 1024 * 1024
# Longest a review waits for a worker's catalog to finish its first sync before a 503.
SYNC_WAIT_CAP = 5.0
_TIMEOUT_PARAM = re.compile(r"^(\d+)s$")


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


def create_app(
    catalog: Catalog,
    config: InjectionConfig,
    ready: threading.Event,
    *,
    metrics: Registry | None = None,
    handlers: Mapping[str, Handler] | None = None,
    status: Callable[[], Mapping[str, Any]] = dict,
) -> Flask:
    """The WSGI app. `ready` is set once the catalog has synced; `status` adds detail to /readyz."""
    from flask import Flask, Response, request
    from werkzeug.exceptions import HTTPException

    from inferplane import logs
    from inferplane.metrics import Registry

    registry = metrics or Registry()
    requests_total = registry.counter(
        "inferplane_webhook_requests_total",
        "Admission requests answered, by webhook path, HTTP code and outcome.",
        ("webhook", "code", "outcome"),
    )
    latency = registry.histogram(
        "inferplane_webhook_latency_seconds",
        "Time from reading a review's first byte to its answer, by webhook path.",
        ("webhook",),
    )
    in_flight = registry.gauge(
        "inferplane_webhook_requests_in_flight", "Admission requests being handled.", ("webhook",)
    )
    routes = dict(handlers if handlers is not None else default_handlers())

    app = Flask("inferplane.webhook")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    def problem(code: int, message: str, outcome: str, webhook: str | None = None) -> Response:
        if webhook is not None:
            requests_total.labels(webhook, str(code), outcome).inc()
        request.environ[logs.ACCESS_FIELDS_KEY] = {"outcome": outcome, "reason": message}
        return Response(_json({"code": code, "message": message}), code, mimetype="application/json")

    def review(webhook: str, handler: Handler) -> Response:
        if request.mimetype != "application/json":
            return problem(
                415, f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}",
                "unsupported_media_type", webhook,
            )  # fmt: skip
        body = request.get_data(cache=False)  # 413 (via the error handler) past MAX_BODY
        if not ready.is_set() and not ready.wait(sync_wait(request.args.get("timeout"))):
            return problem(503, "catalog not synced yet; see /readyz", "not_synced", webhook)
        try:
            answer = handler(body, catalog, config)
        except BadRequest as exc:
            return problem(400, str(exc), "bad_request", webhook)
        requests_total.labels(webhook, "200", answer.outcome).inc()
        request.environ[logs.ACCESS_FIELDS_KEY] = {"uid": answer.uid, "outcome": answer.outcome}
        return Response(answer.body, 200, mimetype="application/json")

    def endpoint(webhook: str, handler: Handler) -> Callable[[], Response]:
        timer, gauge = latency.labels(webhook), in_flight.labels(webhook)

        def view() -> Response:
            gauge.inc()
            started = time.perf_counter()
            try:
                return review(webhook, handler)
            except HTTPException:
                raise  # 413 and friends: answered by the error handler below
            except Exception:
                log.exception("review handler failed", extra={"webhook": webhook})
                return problem(500, "internal error; see the webhook's log", "error", webhook)
            finally:
                timer.observe(time.perf_counter() - started)
                gauge.dec()

        return view

    for webhook, handler in routes.items():
        app.add_url_rule(f"/{webhook}", webhook, endpoint(webhook, handler), methods=["POST"])

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        body = {"ready": ready.is_set(), "caches": status()}
        return Response(_json(body), 200 if ready.is_set() else 503, mimetype="application/json")

    @app.get("/metrics")
    def metrics_view() -> Response:
        data, content_type = registry.exposition(request.headers.get("Accept", ""))
        return Response(data, content_type=content_type)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        webhook = (request.url_rule.endpoint if request.url_rule else None) if code == 413 else None
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        messages = {
            404: f"no such endpoint {request.path}; POST reviews to /mutate-pod or /validate-workload",
            405: f"{request.method} not allowed on {request.path}; use {allowed}",
            413: f"request body over {MAX_BODY} bytes (the limit for an AdmissionReview)",
        }
        return problem(code, messages.get(code, exc.description or exc.name), f"http_{code}", webhook)

    return app


def _json(value: Any) -> bytes:
    import orjson

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
    parser.add_argument("--threads", type=_positive, default=8, help="threads per worker (default 8)")
    parser.add_argument("--app-root", default=DEFAULT_APP_ROOT)
    parser.add_argument("--init-image", default=DEFAULT_INIT_IMAGE)
    parser.add_argument("--scheduler-name", default=None)
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

    config = InjectionConfig(
        app_root=args.app_root,
        init_image=args.init_image,
        scheduler_name=args.scheduler_name,
        unknown_reference=args.unknown_reference,
    )
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
    from webhook.catalog import Catalog

    if args.catalog:
        catalog = Catalog.from_dir(args.catalog)  # UserError naming the bad file: exit 2
        ready = threading.Event()
        ready.set()
        return lambda: serving.Service(create_app(catalog, config, ready))

    from inferplane import kube
    from webhook.cluster import ClusterFeed

    client = kube.connect(args.kubeconfig)  # UserError when there is no cluster to reach

    def build() -> serving.Service:
        feed = ClusterFeed(client, Catalog())
        return serving.Service(
            create_app(feed.catalog, config, feed.ready, status=feed.status), start=feed.start, stop=feed.stop
        )

    return build
