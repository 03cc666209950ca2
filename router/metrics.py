"""Prometheus metrics of the router: traffic as counted per request, load as read at scrape time.

Load (in flight, queued, pods, busy pods, utilization, the autoscaler's wish) is read from the pools
when /metrics is scraped instead of being kept in gauges on every request: it costs nothing on the
request path, and it is the same number the built-in autoscaler uses, so an HPA or KEDA user can
scale on `inferplane_router_utilization` instead of turning the built-in one on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
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
                "inferplane_router_busy_pods", "Pods with at least one request in flight", labels=labels),
            "in_flight": GaugeMetricFamily(
                "inferplane_router_in_flight", "Requests being answered by a pod", labels=labels),
            "queued": GaugeMetricFamily(
                "inferplane_router_queued", "Requests waiting for a free pod", labels=labels),
            "utilization": GaugeMetricFamily(
                "inferplane_router_utilization",
                "(busy pods + queued requests) / pods, the autoscaling signal (1.0 = 100 %)", labels=labels),
            "desired": GaugeMetricFamily(
                "inferplane_router_desired_replicas",
                "Replicas the built-in autoscaler wants (only where autoscaling is on)", labels=labels),
            "limit": GaugeMetricFamily(
                "inferplane_router_concurrency_limit",
                "Requests this router replica sends to one pod at once: the pod's "
                "max-concurrent-requests-per-pod divided among the live router replicas", labels=labels),
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
            value=self._replicas())


class RouterMetrics:
    def __init__(self, read_load: Callable[[], Iterable[LoadSample]],
                 read_replicas: Callable[[], int] = lambda: 1) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inferplane_router_requests", "Scoring requests answered, by status code",
            ["endpoint", "namespace", "deployment", "code"], registry=self.registry)
        self.latency = Histogram(
            "inferplane_router_request_duration_seconds", "Time from request head to the end of the answer",
            ["endpoint", "namespace", "deployment"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.mirrored = Counter(
            "inferplane_router_mirror_requests", "Mirror copies, by outcome (answered, failed, skipped)",
            ["endpoint", "namespace", "deployment", "outcome"], registry=self.registry)
        self.registry.register(_LoadCollector(read_load, read_replicas))
        self._counters: dict[tuple[str, str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, endpoint: str, namespace: str, deployment: str, code: int, seconds: float) -> None:
        """Count one answer; label children are cached because `labels()` is the costly part."""
        key = (endpoint, namespace, deployment, code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(endpoint, namespace, deployment, str(code))
        counter.inc()
        hkey = (endpoint, namespace, deployment)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = self.latency.labels(endpoint, namespace, deployment)
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
