"""The HTTP shell around the policy: routes, status codes, metrics and log lines, nothing else.

Failure is closed: until both caches have synced, and on any error of ours, `/filter` answers with
an `Error` (or HTTP 500), which with `ignorable: false` makes the scheduler keep the pod pending and
retry it, never place it on a node we did not check. A malformed request is a 400 with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask, Response, request

from extender import wire
from extender.binder import Binder, BindError
from extender.config import Settings
from extender.model import BoundPod, PodInfo
from extender.policy import filter_nodes, interacts, preempt_nodes, prioritize_nodes
from extender.state import ClusterState
from inferplane import logs
from inferplane.errors import BadRequest
from inferplane.metrics import Registry

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    outcome: str  # metrics label: ok | no_fit | not_synced | refused | bad_request | error
    fields: dict[str, Any]  # for the access log line


class ExtenderMetrics:
    def __init__(self, registry: Registry) -> None:
        self.requests = registry.counter(
            "inferplane_extender_requests_total", "Scheduler calls by verb and outcome.", ["verb", "outcome"]
        )
        self.latency = registry.histogram(
            "inferplane_extender_request_duration_seconds",
            "Time spent answering a scheduler call, in the handler (parse, decide, encode).",
            ["verb"],
        )
        self.refused = registry.counter(
            "inferplane_extender_nodes_refused_total", "Nodes refused by /filter, by rule.", ["rule"]
        )
        self.cache_objects = registry.gauge(
            "inferplane_extender_cache_objects",
            "Objects in the extender's cache (nodes, pods counted, distinct node shapes).",
            ["kind"],
            mode="livemax",
        )
        self.cache_synced = registry.gauge(
            "inferplane_extender_cache_synced", "1 once nodes and pods are listed.", mode="livemin"
        )
        self.sync_age = registry.gauge(
            "inferplane_extender_cache_last_sync_age_seconds",
            "Seconds since the last list, event or bookmark of a watched resource.",
            ["resource"],
            mode="livemax",
        )


class Extender:
    """The three verbs as functions of the request body, timed and counted; Flask only routes."""

    def __init__(
        self,
        state: ClusterState,
        settings: Settings,
        registry: Registry,
        sync_ages: Callable[[], dict[str, float | None]] = dict,
        binder: Binder | None = None,
    ) -> None:
        self.state = state
        self.binder = binder
        # Pods filtered lately, by UID: a bind carries only names, and the cache needs the demand.
        self._recent: OrderedDict[str, PodInfo] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.settings = settings
        self.registry = registry
        self.metrics = ExtenderMetrics(registry)
        self._sync_ages = sync_ages

    def not_synced_message(self) -> str:
        state = self.state
        nodes, pods = state.nodes_synced.is_set(), state.pods_synced.is_set()
        return (
            f"inferplane extender is still listing the cluster (nodes listed: {nodes}, pods listed: {pods}); "
            "the pod will be retried"
        )

    def filter(self, body: bytes) -> Answer:
        if not self.state.synced:
            return Answer(200, wire.encode_filter_error(self.not_synced_message()), "not_synced", {})
        args = wire.decode_args(body, self.state.accelerators)
        pod = args.pod
        self._remember(pod)
        self.state.expire_reservations()
        self.state.unreserve(pod.uid)  # placed again: our last guess for it is void
        result = filter_nodes(pod, args.names, self.state, self.settings)
        if len(result.passed) == 1 and interacts(pod):
            # No /prioritize follows a single feasible node: the scheduler binds it there.
            self.state.reserve(pod.uid, BoundPod(result.passed[0], pod.demand.gpus, pod.group))
        for rule, count in result.rejections.items():
            self.metrics.refused.labels(rule).inc(count)
        fields = {
            "pod": f"{pod.namespace}/{pod.name}",
            "candidates": len(args.names),
            "fit": len(result.passed),
        }
        if not result.passed:
            log.info("no node fits", extra={**fields, "refused_by": result.rejections})
        return Answer(
            200, wire.encode_filter(result, args.items), "ok" if result.passed else "no_fit", fields
        )

    def prioritize(self, body: bytes) -> Answer:
        if not self.state.synced:
            return Answer(503, orjson.dumps({"Error": self.not_synced_message()}), "not_synced", {})
        args = wire.decode_args(body, self.state.accelerators)
        pod = args.pod
        priorities = prioritize_nodes(pod, args.names, self.state)
        if priorities.chosen is not None:
            self.state.reserve(pod.uid, BoundPod(priorities.chosen, pod.demand.gpus, pod.group))
        fields = {
            "pod": f"{pod.namespace}/{pod.name}",
            "candidates": len(args.names),
            "best": priorities.chosen,
        }
        return Answer(200, wire.encode_prioritize(priorities), "ok", fields)

    def preempt(self, body: bytes) -> Answer:
        if not self.state.synced:
            return Answer(503, orjson.dumps({"Error": self.not_synced_message()}), "not_synced", {})
        args = wire.decode_preempt(body, self.state.accelerators)
        kept = preempt_nodes(args.pod, args.victims, self.state, self.settings)
        fields = {
            "pod": f"{args.pod.namespace}/{args.pod.name}",
            "candidates": len(args.victims),
            "kept": len(kept),
        }
        return Answer(200, wire.encode_preempt(args, kept), "ok", fields)

    def bind(self, body: bytes) -> Answer:
        args = wire.decode_bind(body)
        fields = {"pod": f"{args.namespace}/{args.name}", "node": args.node}
        if self.binder is None:
            return Answer(
                200, wire.encode_bind("this extender was started without a binder"), "error", fields
            )
        try:
            self.binder.bind(args.namespace, args.name, args.uid, args.node)
        except BindError as exc:
            return Answer(200, wire.encode_bind(str(exc)), "refused", fields)
        with self._recent_lock:
            pod = self._recent.pop(args.uid, None)
        if pod is not None:
            self.state.assume(args.uid, BoundPod(args.node, pod.demand.gpus, pod.group))
        return Answer(200, wire.encode_bind(), "ok", fields)

    def _remember(self, pod: PodInfo, keep: int = 10_000) -> None:
        if not pod.uid:
            return
        with self._recent_lock:
            self._recent[pod.uid] = pod
            self._recent.move_to_end(pod.uid)
            while len(self._recent) > keep:
                self._recent.popitem(last=False)

    def answer(self, verb: str, handler: Callable[[bytes], Answer], body: bytes) -> Answer:
        """Run one verb: a BadRequest becomes a 400, any other failure a 500 (failing closed)."""
        started = time.perf_counter()
        try:
            result = handler(body)
        except BadRequest as exc:
            result = Answer(400, orjson.dumps({"Error": str(exc)}), "bad_request", {"error": str(exc)})
        except Exception as exc:
            log.exception("extender failed", extra={"verb": verb})
            message = f"inferplane extender failed: {type(exc).__name__}: {exc}"
            result = Answer(500, orjson.dumps({"Error": message}), "error", {})
        self.metrics.latency.labels(verb).observe(time.perf_counter() - started)
        self.metrics.requests.labels(verb, result.outcome).inc()
        return result

    def update_gauges(self) -> None:
        for kind, size in self.state.sizes().items():
            self.metrics.cache_objects.labels(kind).set(size)
        self.metrics.cache_synced.set(1 if self.state.synced else 0)
        for resource, age in self._sync_ages().items():
            if age is not None:
                self.metrics.sync_age.labels(resource).set(age)


VERBS: Sequence[str] = ("filter", "prioritize", "preempt", "bind")


# What the metrics listener serves: nothing that changes the cache or binds.
METRICS_LISTENER_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def create_app(extender: Extender, metrics_port: int | None = None) -> Flask:
    """Routes on the path alone (the scheduler may add a query string); POST bodies are JSON.

    `metrics_port`: a second listener, reachable from off the pod for Prometheus, that serves only
    METRICS_LISTENER_PATHS. The verbs stay on the loopback listener: plain HTTP without auth, and
    `/prioritize` reserves a node for the pod it names, so anyone who could call it could make GPUs
    look taken for 30 s at a time.
    """
    app = Flask("inferplane-extender")

    if metrics_port is not None:
        port = str(metrics_port)

        @app.before_request
        def metrics_listener_serves_metrics_only() -> Response | None:
            if request.environ.get("SERVER_PORT") == port and request.path not in METRICS_LISTENER_PATHS:
                paths = ", ".join(sorted(METRICS_LISTENER_PATHS))
                return Response(f"only {paths} on this port\n", status=404, content_type="text/plain")
            return None

    def route(verb: str) -> Callable[[], Response]:
        handler = getattr(extender, verb)

        def view() -> Response:
            result = extender.answer(verb, handler, request.get_data(cache=False))
            request.environ[logs.ACCESS_FIELDS_KEY] = {
                "verb": verb,
                "outcome": result.outcome,
                **result.fields,
            }
            return Response(result.body, status=result.status, content_type=JSON)

        view.__name__ = f"{verb}_view"
        return view

    for verb in VERBS:
        app.add_url_rule(f"/{verb}", view_func=route(verb), methods=["POST"])

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", content_type="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        if extender.state.synced:
            return Response("ok\n", content_type="text/plain")
        return Response(extender.not_synced_message() + "\n", status=503, content_type="text/plain")

    @app.get("/metrics")
    def metrics() -> Response:
        extender.update_gauges()
        body, content_type = extender.registry.exposition(request.headers.get("Accept", ""))
        return Response(body, content_type=content_type)

    return app
