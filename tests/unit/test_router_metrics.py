"""The router's request counts and latency histogram, counted in plain numbers, expose exactly what
prometheus_client's own Counter and Histogram would for the same answers (its `_created` series aside)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from router.metrics import LATENCY_BUCKETS, RouterMetrics

ANSWERS = [
    ("iris", "default", "blue", 200, 0.0004),
    ("iris", "default", "blue", 200, 0.0005),  # on a bound: counted in that bucket (le is inclusive)
    ("iris", "default", "blue", 200, 0.003),
    ("iris", "default", "blue", 504, 5.0),
    ("iris", "default", "green", 200, 0.02),
    ("iris", "team-b", "blue", 200, 0.0011),
    ("iris", "default", "", 401, 0.00001),  # refused before a deployment was chosen
    ("iris", "default", "blue", 200, 400.0),  # past every bound: only +Inf
]


def reference(answers: list[tuple[str, str, str, int, float]]) -> set[str]:
    registry = CollectorRegistry()
    requests = Counter(
        "inferplane_router_requests",
        "Scoring requests answered, by status code",
        ["endpoint", "namespace", "deployment", "code"],
        registry=registry,
    )
    latency = Histogram(
        "inferplane_router_request_duration_seconds",
        "Time from request head to the end of the answer",
        ["endpoint", "namespace", "deployment"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for endpoint, namespace, deployment, code, seconds in answers:
        requests.labels(endpoint, namespace, deployment, str(code)).inc()
        latency.labels(endpoint, namespace, deployment).observe(seconds)
    return {line for line in generate_latest(registry).decode().splitlines() if "_created" not in line}


def test_counts_and_histogram_match_prometheus_client() -> None:
    metrics = RouterMetrics(lambda: [])
    for answer in ANSWERS:
        metrics.observe(*answer)
    exposed = set(metrics.render().decode().splitlines())
    expected = reference(ANSWERS)
    assert expected <= exposed, sorted(expected - exposed)
    traffic = {line for line in exposed if "inferplane_router_request" in line and "mirror" not in line}
    assert traffic == expected, sorted(traffic ^ expected)


def test_counts_accumulate_between_scrapes() -> None:
    metrics = RouterMetrics(lambda: [])
    metrics.observe("e", "ns", "d", 200, 0.001)
    first = metrics.render().decode()
    metrics.observe("e", "ns", "d", 200, 0.001)
    second = metrics.render().decode()
    series = 'inferplane_router_requests_total{code="200",deployment="d",endpoint="e",namespace="ns"}'
    assert f"{series} 1.0" in first and f"{series} 2.0" in second
