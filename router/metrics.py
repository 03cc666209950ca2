"""Prometheus metrics of the router: traffic as counted per request, load as read at scrape time.

Load (in flight, queued, pods, busy pods, utilization, the autoscaler's wish) is read from the pools
when /metrics is scraped instead of being kept in gauges on every request: it costs nothing on the
request path, and it is the same number the built-in autoscaler uses, so an HPA or KEDA user can
scale on `inferplane_router_utilization` instead of turning the built-in one on.

Requests and their latency are counted in plain numbers (`_Series`) and turned into Prometheus
families only when scraped. prometheus_client's Counter and Histogram take a lock on every `inc` and
`observe` (three per request here) and walk the buckets in Python; everything here runs on the event
loop's one thread, scrapes included, so a dict update and a `bisect` do the same job for a fraction of
the cost on the request path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


@dataclass(frozen=True)
class LoadSample:
    """What one deployment looks like to this router right now."""

    endpoint: str
    deployment: str
    namespace: str
    pods: int
    busy_pods: int
    in_flight: int
    queued: int
    desired_replicas: int | None = None
    limit: int = 0  # requests this router replica sends to one pod at once (its share)

    @property
    def utilization(self) -> float:
        """azureml-fe's rule: (pods busy + requests queued) / pods."""
        return (self.busy_pods + self.queued) / self.pods if self.pods else float(self.queued > 0)


class _LoadCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[LoadSample]], replicas: Callable[[], int]) -> None:
        self._read = read
        self._replicas = replicas

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["endpoint", "deployment", "namespace"]
        families = {
            "pods": GaugeMetricFamily("inferplane_router_pods", "Ready pods routed to", labels=labels),
            "busy_pods": GaugeMetricFamily(
                "inferplane_router_busy_pods", "Pods with at least one request in flight", labels=labels
            ),
            "in_flight": GaugeMetricFamily(
                "inferplane_router_in_flight", "Requests being answered by a pod", labels=labels
            ),
            "queued": GaugeMetricFamily(
                "inferplane_router_queued", "Requests waiting for a free pod", labels=labels
            ),
            "utilization": GaugeMetricFamily(
                "inferplane_router_utilization",
                "(busy pods + queued requests) / pods, the autoscaling signal (1.0 = 100 %)",
                labels=labels,
            ),
            "desired": GaugeMetricFamily(
                "inferplane_router_desired_replicas",
                "Replicas the built-in autoscaler wants (only where autoscaling is on)",
                labels=labels,
            ),
            "limit": GaugeMetricFamily(
                "inferplane_router_concurrency_limit",
                "Requests this router replica sends to one pod at once: the pod's "
                "max-concurrent-requests-per-pod divided among the live router replicas",
                labels=labels,
            ),
        }
        for s in self._read():
            values = [s.endpoint, s.deployment, s.namespace]
            families["pods"].add_metric(values, s.pods)
            families["busy_pods"].add_metric(values, s.busy_pods)
            families["in_flight"].add_metric(values, s.in_flight)
            families["queued"].add_metric(values, s.queued)
            families["utilization"].add_metric(values, s.utilization)
            if s.desired_replicas is not None:
                families["desired"].add_metric(values, s.desired_replicas)
            families["limit"].add_metric(values, s.limit)
        yield from families.values()
        yield GaugeMetricFamily(
            "inferplane_router_replicas",
            "Live router replicas dividing the pods' concurrency limits (this one included)",
            value=self._replicas(),
        )


class _Series:
    """One (endpoint, namespace, deployment): answers by status code, and a latency histogram whose
    `buckets[i]` counts the answers that took at most `LATENCY_BUCKETS[i]` and more than the bound
    before (the last slot: more than every bound)."""

    __slots__ = ("buckets", "codes", "seconds")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0


class _TrafficCollector(Collector):
    """`inferplane_router_requests_total` and `inferplane_router_request_duration_seconds` from the series."""

    _BOUNDS = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]

    def __init__(self, series: dict[tuple[str, str, str], _Series]) -> None:
        self._series = series

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "inferplane_router_requests",
            "Scoring requests answered, by status code",
            labels=["endpoint", "namespace", "deployment", "code"],
        )
        latency = HistogramMetricFamily(
            "inferplane_router_request_duration_seconds",
            "Time from request head to the end of the answer",
            labels=["endpoint", "namespace", "deployment"],
        )
        for (endpoint, namespace, deployment), series in list(self._series.items()):
            for code, count in list(series.codes.items()):
                requests.add_metric([endpoint, namespace, deployment, str(code)], count)
            cumulative, buckets = 0, []
            for bound, count in zip(self._BOUNDS, series.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([endpoint, namespace, deployment], buckets, series.seconds)
        yield requests
        yield latency


class RouterMetrics:
    def __init__(
        self, read_load: Callable[[], Iterable[LoadSample]], read_replicas: Callable[[], int] = lambda: 1
    ) -> None:
        self.registry = CollectorRegistry()
        self.mirrored = Counter(
            "inferplane_router_mirror_requests",
            "Mirror copies, by outcome (answered, failed, skipped)",
            ["endpoint", "namespace", "deployment", "outcome"],
            registry=self.registry,
        )
        self._series: dict[tuple[str, str, str], _Series] = {}
        self.registry.register(_TrafficCollector(self._series))
        self.registry.register(_LoadCollector(read_load, read_replicas))

    def observe(self, endpoint: str, namespace: str, deployment: str, code: int, seconds: float) -> None:
        """Count one answer (on the event loop's thread, as every reader of the series is)."""
        key = (endpoint, namespace, deployment)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        codes = series.codes
        codes[code] = codes.get(code, 0) + 1
        series.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series.seconds += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry)
