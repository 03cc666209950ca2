"""The router as a user meets it: a real router process in front of real scoring servers on loopback.

Each stub scorer has its own 127.0.0.x address. Split shares are checked against binomial bounds
(five standard deviations: a correct router fails about once in 3.5 million runs), latencies only
with wide margins, never as a benchmark.
"""

from __future__ import annotations

import math
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from router.testing import Router, Stub, start_router, start_stub

KEYS = {"primary": "key-one", "secondary": "key-two"}
AUTH = {"Authorization": "Bearer key-one"}


def within_binomial(hits: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread <= hits <= n * p + spread


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, Stub]]:
    started = {
        "blue": start_stub("127.0.0.2", "blue"),
        "green": start_stub("127.0.0.3", "green"),
        "red": start_stub("127.0.0.4", "red"),
        "slow": start_stub("127.0.0.5", "slow", delay_ms=1000),
        "shadow": start_stub("127.0.0.6", "shadow", delay_ms=800),
        "failing": start_stub("127.0.0.7", "failing", status=500),
    }
    yield started
    for stub in started.values():
        stub.stop()


def routes(stubs: dict[str, Stub]) -> dict:
    return {
        "endpoints": {
            "iris": {
                "keys": KEYS,
                "deployments": {
                    "blue": {
                        "traffic": 70,
                        "max-concurrent-requests-per-pod": 32,
                        "backends": [stubs["blue"].address],
                    },
                    "green": {
                        "traffic": 20,
                        "max-concurrent-requests-per-pod": 32,
                        "backends": [stubs["green"].address],
                    },
                    "red": {
                        "traffic": 0,
                        "default": True,
                        "max-concurrent-requests-per-pod": 32,
                        "backends": [stubs["red"].address],
                    },
                },
            },
            "mirrored": {
                "auth": "none",
                "deployments": {
                    "live": {"max-concurrent-requests-per-pod": 32, "backends": [stubs["blue"].address]},
                    "shadow": {
                        "mirror": 50,
                        "max-concurrent-requests-per-pod": 64,
                        "max-queue-wait-ms": 5000,
                        "backends": [stubs["shadow"].address],
                    },
                },
            },
            "queued": {
                "auth": "none",
                "deployments": {
                    "one": {"max-queue-wait-ms": 300, "backends": [stubs["slow"].address]},
                },
            },
            "patient": {
                "auth": "none",
                "deployments": {
                    "one": {"max-queue-wait-ms": 5000, "backends": [stubs["green"].address]},
                },
            },
            "timing": {
                "auth": "none",
                "deployments": {
                    "one": {
                        "request-timeout-ms": 300,
                        "max-concurrent-requests-per-pod": 8,
                        "backends": [stubs["slow"].address],
                    },
                },
            },
            "broken": {
                "auth": "none",
                "deployments": {
                    "gone": {"backends": ["127.0.0.9:9"]},
                    "crashing": {"backends": [stubs["failing"].address]},
                },
            },
        }
    }


@pytest.fixture(scope="module")
def router(stubs: dict[str, Stub], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    started = start_router(routes(stubs), tmp_path_factory.mktemp("router"))
    yield started
    started.stop()


def score(session: requests.Session, url: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 10)
    return session.post(url, data=b'{"data": [[1, 2, 3, 4]]}', **kwargs)


def test_split_follows_traffic_with_the_remainder_to_the_default(router: Router) -> None:
    n = 1500
    with requests.Session() as session:
        seen = Counter(
            score(session, router.url("iris"), headers=AUTH).headers["azureml-model-deployment"]
            for _ in range(n)
        )
    # blue 70 %, green 20 %, red 0 % + the unassigned 10 % as the default.
    assert set(seen) == {"blue", "green", "red"}
    assert within_binomial(seen["blue"], n, 0.7), seen
    assert within_binomial(seen["green"], n, 0.2), seen
    assert within_binomial(seen["red"], n, 0.1), seen


def test_pinning_bypasses_split_and_mirror(router: Router, stubs: dict[str, Stub]) -> None:
    with requests.Session() as session:
        for header in ("azureml-model-deployment", "x-ml-deployment"):
            pinned = {**AUTH, header: "green"}
            answers = [score(session, router.url("iris"), headers=pinned) for _ in range(30)]
            assert {a.json()["name"] for a in answers} == {"green"}
        by_url = [score(session, router.url("iris", "red"), headers=AUTH) for _ in range(10)]
        assert {a.json()["name"] for a in by_url} == {"red"}
        shadow_before = stubs["shadow"].stats()["requests"]
        for _ in range(20):
            assert score(session, router.url("mirrored"), headers={"x-ml-deployment": "live"}).ok
        time.sleep(0.3)
        assert stubs["shadow"].stats()["requests"] == shadow_before


def test_mirror_gets_copies_without_delaying_the_caller(router: Router, stubs: dict[str, Stub]) -> None:
    n = 200
    before = stubs["shadow"].stats()["requests"]
    with requests.Session() as session:
        started = time.monotonic()
        answers = [score(session, router.url("mirrored")) for _ in range(n)]
        elapsed = time.monotonic() - started
    assert {a.json()["name"] for a in answers} == {"blue"}  # the shadow's answers never reach the caller
    # ~100 copies take 0.8 s each at the shadow; had the caller waited for them this would take ~80 s.
    assert elapsed < 20, elapsed
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stubs["shadow"].stats()["in_flight"]:
        time.sleep(0.1)
    copies = stubs["shadow"].stats()["requests"] - before
    assert within_binomial(copies, n, 0.5), copies


def test_busy_pod_queues_then_503_naming_the_limit(router: Router, stubs: dict[str, Stub]) -> None:
    def call(_: int) -> tuple[int, float, str]:
        started = time.monotonic()
        answer = requests.post(router.url("queued"), data=b"{}", timeout=10)
        return answer.status_code, time.monotonic() - started, answer.text

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(call, range(3)))
    codes = sorted(code for code, _, _ in results)
    assert codes == [200, 503, 503], results
    for code, seconds, text in results:
        if code == 503:
            assert 0.25 <= seconds < 0.9, seconds  # the 300 ms queue wait, then a quick refusal
            assert "no pod freed up within 300 ms" in text
    assert stubs["slow"].stats()["max_in_flight"] == 1  # never two at once on a one-request pod


def test_queued_requests_are_served_in_turn_one_at_a_time(router: Router, stubs: dict[str, Stub]) -> None:
    before = stubs["green"].stats()["max_in_flight"]
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda _: requests.post(
                    router.url("patient"), data=b"{}", headers={"x-stub-delay-ms": "100"}, timeout=10
                ),
                range(6),
            )
        )
    assert [a.status_code for a in answers] == [200] * 6
    assert before >= 1 and stubs["green"].stats()["max_in_flight"] == max(before, 1)


def test_slow_pod_gets_504_on_time_and_the_router_carries_on(router: Router) -> None:
    started = time.monotonic()
    answer = requests.post(router.url("timing"), data=b"{}", timeout=10)
    elapsed = time.monotonic() - started
    assert answer.status_code == 504
    assert "did not answer within 300 ms" in answer.json()["error"]["message"]
    assert 0.28 <= elapsed < 0.9, elapsed
    fast = requests.post(router.url("timing"), data=b"{}", headers={"x-stub-delay-ms": "0"}, timeout=10)
    assert fast.status_code == 200


def test_unreachable_pod_is_502_and_a_scorer_error_passes_through(router: Router) -> None:
    answer = requests.post(router.url("broken", "gone"), data=b"{}", timeout=10)
    assert answer.status_code == 502
    assert "127.0.0.9:9" in answer.json()["error"]["message"]
    crashed = requests.post(router.url("broken", "crashing"), data=b"{}", timeout=10)
    assert crashed.status_code == 500 and crashed.json()["name"] == "failing"


def test_errors_name_the_problem(router: Router) -> None:
    unknown = requests.post(router.url("nope"), data=b"{}", timeout=5)
    assert unknown.status_code == 404
    message = unknown.json()["error"]["message"]
    assert "'nope' not found" in message and "iris" in message and "mirrored" in message
    missing_key = requests.post(router.url("iris"), data=b"{}", timeout=5)
    assert missing_key.status_code == 401
    assert "Authorization: Bearer" in missing_key.json()["error"]["message"]
    bad_key = requests.post(router.url("iris"), data=b"{}", headers={"Authorization": "Bearer x"}, timeout=5)
    assert bad_key.status_code == 401 and "'Authorization' header" in bad_key.json()["error"]["message"]
    no_deployment = requests.post(router.url("iris", "purple"), data=b"{}", headers=AUTH, timeout=5)
    assert no_deployment.status_code == 404 and "blue, green, red" in no_deployment.text
    assert requests.put(router.url("iris"), data=b"{}", headers=AUTH, timeout=5).status_code == 405
    assert requests.get(f"http://{router.address}/nothing", timeout=5).status_code == 404


def test_malformed_http_gets_400_and_the_server_keeps_running(router: Router) -> None:
    with socket.create_connection((router.host, router.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    assert requests.get(f"http://{router.address}/healthz", timeout=5).status_code == 200


def test_health_readiness_and_metrics(router: Router) -> None:
    assert requests.get(f"http://{router.address}/readyz", timeout=5).status_code == 200
    text = requests.get(f"http://{router.address}/metrics", timeout=5).text
    total = "inferplane_router_requests_total"
    assert f'{total}{{code="200",deployment="blue",endpoint="iris",namespace="default"}}' in text
    assert f'{total}{{code="504",deployment="one",endpoint="timing",namespace="default"}}' in text
    assert "inferplane_router_utilization{" in text
    assert "inferplane_router_request_duration_seconds_bucket" in text


def test_key_rotation_never_refuses_a_valid_client(stubs: dict[str, Stub], tmp_path: Path) -> None:
    table = {
        "endpoints": {
            "iris": {
                "keys": dict(KEYS),
                "deployments": {
                    "blue": {"max-concurrent-requests-per-pod": 8, "backends": [stubs["blue"].address]}
                },
            }
        }
    }
    router = start_router(table, tmp_path)
    try:
        with requests.Session() as session:
            assert score(session, router.url("iris"), headers={"Authorization": "Bearer key-two"}).ok
            # Clients have moved to the primary; the secondary is regenerated while they keep calling.
            table["endpoints"]["iris"]["keys"]["secondary"] = "key-three"
            router.reroute(table)
            codes = Counter()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                codes[score(session, router.url("iris"), headers=AUTH).status_code] += 1
            assert set(codes) == {200}, codes
            assert score(session, router.url("iris"), headers={"Authorization": "Bearer key-three"}).ok
            old = score(session, router.url("iris"), headers={"Authorization": "Bearer key-two"})
            assert old.status_code == 401
    finally:
        router.stop()


def test_a_pod_leaving_mid_request_finishes_it(stubs: dict[str, Stub], tmp_path: Path) -> None:
    def table(*names: str) -> dict:
        return {
            "endpoints": {
                "e": {
                    "auth": "none",
                    "deployments": {
                        "d": {
                            "max-concurrent-requests-per-pod": 4,
                            "backends": [stubs[n].address for n in names],
                        }
                    },
                }
            }
        }

    router = start_router(table("slow", "green"), tmp_path)
    try:
        with ThreadPoolExecutor(1) as pool:
            pinned_to_slow = pool.submit(
                lambda: [requests.post(router.url("e"), data=b"{}", timeout=10) for _ in range(2)]
            )
            time.sleep(0.3)  # both pods have work; the slow one holds a 1 s request
            router.reroute(table("green"))
            time.sleep(0.3)
            after = [requests.post(router.url("e"), data=b"{}", timeout=10).json()["name"] for _ in range(20)]
            finished = pinned_to_slow.result(timeout=10)
        assert [a.status_code for a in finished] == [200, 200]
        assert set(after) == {"green"}
    finally:
        router.stop()


def test_an_endpoint_name_in_two_namespaces_needs_the_namespace(
    stubs: dict[str, Stub], tmp_path: Path
) -> None:
    def one(stub: str) -> dict:
        return {"auth": "none", "deployments": {"d": {"backends": [stubs[stub].address]}}}

    router = start_router(
        {
            "endpoints": {
                "team-a/shared": one("blue"),
                "team-b/shared": one("green"),
                "team-b/only-b": one("red"),
            }
        },
        tmp_path,
    )
    try:

        def name(url: str, **headers: str) -> str:
            answer = requests.post(url, data=b"{}", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            return answer.json()["name"]

        ambiguous = requests.post(router.url("shared"), data=b"{}", timeout=10)
        assert ambiguous.status_code == 409
        message = ambiguous.json()["error"]["message"]
        assert "several namespaces (team-a, team-b)" in message
        assert "/api/v1/namespaces/<namespace>/endpoint/shared/score" in message
        assert "x-ml-namespace" in message
        assert name(router.url("shared", namespace="team-a")) == "blue"
        assert name(router.url("shared", "d", namespace="team-b")) == "green"
        assert name(router.url("shared"), **{"x-ml-namespace": "team-b"}) == "green"
        assert "x-ml-namespace" not in stubs["green"].stats()["headers_seen"][-1]  # ours, not the model's
        assert name(router.url("only-b")) == "red"  # a name one namespace defines needs no namespace
        elsewhere = requests.post(router.url("only-b", namespace="team-a"), data=b"{}", timeout=10)
        assert elsewhere.status_code == 404
        assert "not found in namespace 'team-a'; it is defined in: team-b" in elsewhere.text
        both = requests.post(
            router.url("shared", namespace="team-a"),
            data=b"{}",
            headers={"x-ml-namespace": "team-b"},
            timeout=10,
        )
        assert both.status_code == 400 and "give one" in both.json()["error"]["message"]
        text = requests.get(f"http://{router.address}/metrics", timeout=5).text
        labels = 'code="200",deployment="d",endpoint="shared",namespace="team-b"'
        assert f"inferplane_router_requests_total{{{labels}}} 2.0" in text
    finally:
        router.stop()


def mirror_outcomes(router: Router, endpoint: str) -> dict[str, float]:
    """inferplane_router_mirror_requests_total by outcome, once no copy is still on its way."""

    def read() -> dict[str, float]:
        text = requests.get(f"http://{router.address}/metrics", timeout=5).text
        series = f'inferplane_router_mirror_requests_total{{deployment="copy",endpoint="{endpoint}"'
        found = {}
        for line in text.splitlines():
            if line.startswith(series):
                found[line.split('outcome="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        return found

    seen, deadline = read(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read()
        if now == seen:
            return now
        seen = now
    return seen


@pytest.mark.parametrize(
    ("limit", "small", "big"),
    [
        (3 * 1024 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024),  # above the 1 MiB a body is kept for retries
        (1000, 500, 2000),  # below it: kept for a retry, yet not copied
    ],
)
def test_mirror_copies_only_bodies_up_to_the_flags_limit(
    stubs: dict[str, Stub], tmp_path: Path, limit: int, small: int, big: int
) -> None:
    table = {
        "endpoints": {
            "copied": {
                "auth": "none",
                "deployments": {
                    "live": {"max-concurrent-requests-per-pod": 8, "backends": [stubs["blue"].address]},
                    "copy": {
                        "mirror": 50,
                        "max-concurrent-requests-per-pod": 8,
                        "max-queue-wait-ms": 5000,
                        "backends": [stubs["green"].address],
                    },
                },
            }
        }
    }
    router = start_router(table, tmp_path, ["--mirror-max-body-bytes", str(limit)])
    try:
        with requests.Session() as session:
            for _ in range(20):
                assert session.post(router.url("copied"), data=b"x" * small, timeout=20).ok
            first = mirror_outcomes(router, "copied")
            assert first.get("answered", 0) > 0 and first.get("skipped", 0) == 0, first
            for _ in range(20):  # over the flag: answered by live, not copied
                answer = session.post(router.url("copied"), data=b"x" * big, timeout=20)
                assert answer.ok and answer.json()["name"] == "blue"
            second = mirror_outcomes(router, "copied")
        assert second.get("answered") == first["answered"], second
        assert second.get("skipped", 0) > 0, second
    finally:
        router.stop()
