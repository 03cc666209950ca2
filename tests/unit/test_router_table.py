"""Split, mirror and auth decisions, and reading settings from annotations and routes files."""

from __future__ import annotations

import random

import pytest

from inferplane.errors import UserError
from router import auth
from router.settings import DeploymentSettings, parse_settings
from router.static import parse_routes
from router.table import Deployment, RouteTable, choose, make_endpoint, mirror_targets


def dep(name: str, traffic: int = 0, mirror: int = 0, default: bool = False) -> Deployment:
    return Deployment(name, "ns", DeploymentSettings(traffic=traffic, mirror=mirror, is_default=default))


def shares(endpoint, draws: int = 100_000) -> dict[str, float]:
    """Exact shares over an even grid of draws on [0, 100)."""
    counts: dict[str, int] = {}
    for i in range(draws):
        name = choose(endpoint, i * 100.0 / draws).name
        counts[name] = counts.get(name, 0) + 1
    return {n: c / draws for n, c in counts.items()}


def test_remainder_goes_to_the_first_deployment() -> None:
    # Azure's worked example: A=20 % and default, B=10 % → A gets the other 70 % too.
    endpoint = make_endpoint("e", [dep("a", 20), dep("b", 10)])
    assert endpoint.default == "a"
    assert shares(endpoint) == pytest.approx({"a": 0.9, "b": 0.1})


def test_remainder_goes_to_the_deployment_marked_default() -> None:
    # ... then B at 40 % and default: B effectively 80 %.
    endpoint = make_endpoint("e", [dep("a", 20), dep("b", 40, default=True)])
    assert shares(endpoint) == pytest.approx({"a": 0.2, "b": 0.8})


def test_zero_traffic_deployment_gets_nothing_unless_default() -> None:
    endpoint = make_endpoint("e", [dep("a"), dep("b")])
    assert shares(endpoint) == {"a": 1.0}


def test_traffic_over_100_is_scaled_down_and_reported() -> None:
    endpoint = make_endpoint("e", [dep("a", 90), dep("b", 60)])
    assert shares(endpoint) == pytest.approx({"a": 0.6, "b": 0.4})
    assert any("150%" in p for p in endpoint.problems)


def test_two_defaults_are_reported_and_the_first_wins() -> None:
    endpoint = make_endpoint("e", [dep("a", default=True), dep("b", default=True)])
    assert endpoint.default == "a"
    assert endpoint.problems


def test_mirror_draws_its_own_percent_and_skips_the_live_deployment() -> None:
    endpoint = make_endpoint("e", [dep("a", 100), dep("shadow", 0, mirror=10)])
    assert [d.name for d in mirror_targets(endpoint, "a", [5.0])] == ["shadow"]
    assert mirror_targets(endpoint, "a", [10.0]) == []
    assert mirror_targets(endpoint, "shadow", [0.0]) == []
    rng = random.Random(7)
    hits = sum(bool(mirror_targets(endpoint, "a", [rng.random() * 100])) for _ in range(20_000))
    assert 0.08 < hits / 20_000 < 0.12


def test_auth_accepts_either_key_and_names_the_header_when_refusing() -> None:
    endpoint = make_endpoint("iris", [dep("a")], "key", ["one", "two"])
    assert auth.check(endpoint, b"Bearer one") is None
    assert auth.check(endpoint, b"bearer two") is None
    missing = auth.check(endpoint, None)
    assert missing is not None and missing.status == 401 and "Authorization: Bearer" in missing.message
    wrong = auth.check(endpoint, b"Bearer three")
    assert wrong is not None and wrong.status == 401 and "'Authorization' header" in wrong.message
    malformed = auth.check(endpoint, b"one")
    assert malformed is not None and "Bearer <key>" in malformed.message


def test_auth_none_and_missing_keys() -> None:
    assert auth.check(make_endpoint("e", [dep("a")], "none"), None) is None
    failure = auth.check(make_endpoint("e", [dep("a")], "key", []), b"Bearer x")
    assert failure is not None and failure.status == 503 and "e-keys" in failure.message


def test_settings_from_annotations_with_azure_defaults() -> None:
    s = parse_settings({})
    assert (s.max_concurrent, s.request_timeout_ms, s.max_queue_wait_ms) == (1, 5000, 500)
    assert s.autoscale is None
    s = parse_settings(
        {
            "ml.example/traffic": "30",
            "ml.example/max-concurrent-requests-per-pod": "4",
            "ml.example/autoscale-max-replicas": "5",
            "ml.example/autoscale-target-utilization": "60",
            "ml.example/default-deployment": "true",
        }
    )
    assert (s.traffic, s.max_concurrent, s.is_default) == (30, 4, True)
    assert s.autoscale is not None and (s.autoscale.min_replicas, s.autoscale.max_replicas) == (1, 5)


@pytest.mark.parametrize(
    ("annotations", "says"),
    [
        ({"ml.example/traffic": "lots"}, "ml.example/traffic: 'lots' is not a whole number"),
        ({"ml.example/traffic": "101"}, "outside 0..100"),
        ({"ml.example/mirror": "60"}, "outside 0..50"),
        ({"ml.example/request-timeout-ms": "400000"}, "outside 1..300000"),
        ({"ml.example/autoscale-min-replicas": "4", "ml.example/autoscale-max-replicas": "2"}, "below"),
        ({"ml.example/default-deployment": "maybe"}, "not true or false"),
    ],
)
def test_bad_settings_name_the_annotation(annotations: dict[str, str], says: str) -> None:
    with pytest.raises(UserError, match=says):
        parse_settings(annotations)


def test_routes_file_uses_the_annotation_vocabulary() -> None:
    table = parse_routes(
        {
            "endpoints": {
                "iris": {
                    "keys": {"primary": "p", "secondary": "s"},
                    "deployments": {
                        "blue": {"traffic": 90, "backends": ["127.0.0.2:5001"]},
                        "green": {
                            "traffic": 10,
                            "default": True,
                            "request-timeout-ms": 100,
                            "backends": ["127.0.0.3:5001", "127.0.0.4:5002"],
                        },
                    },
                }
            }
        }
    )
    iris = table.endpoints["default/iris"]
    assert iris.keys == ("p", "s") and iris.default == "green"
    assert iris.by_name["green"].settings.request_timeout_ms == 100
    assert [b.address for b in iris.by_name["green"].backends] == [("127.0.0.3", 5001), ("127.0.0.4", 5002)]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({}, "expected a mapping with 'endpoints:'"),
        ({"endpoints": {"e": {}}}, "endpoint e: expected a mapping with 'deployments:'"),
        ({"endpoints": {"e": {"deployments": {"a": {"backends": ["nohost"]}}}}}, "must be HOST:PORT"),
        ({"endpoints": {"e": {"deployments": {"a": {"traffic": "x"}}}}}, "deployment a: traffic: 'x'"),
        ({"endpoints": {"e": {"auth": "token", "deployments": {"a": {}}}}}, "must be 'key' or 'none'"),
        ({"endpoints": {"a/e": {"namespace": "b", "deployments": {}}}}, "key says namespace 'a'"),
        ({"endpoints": {"a/b/e": {"deployments": {}}}}, "NAME or NAMESPACE/NAME"),
        ({"endpoints": {"e": {"deployments": {"a": {"namespace": "x"}}}}}, "'namespace' belongs to the"),
        ({"endpoints": {"e": {"deployments": {}}, "default/e": {"deployments": {}}}}, "defined twice"),
    ],
)
def test_routes_file_errors_say_where(document: object, says: str) -> None:
    with pytest.raises(UserError, match=says):
        parse_routes(document)


def test_an_endpoint_name_is_found_alone_while_one_namespace_defines_it() -> None:
    table = RouteTable.of(
        [
            make_endpoint("iris", [dep("a")], namespace="team-a"),
            make_endpoint("iris", [dep("a")], namespace="team-b"),
            make_endpoint("fraud", [dep("a")], namespace="team-b"),
        ]
    )
    fraud, where = table.find("fraud")
    assert fraud is not None and fraud.key == "team-b/fraud" and where == ("team-b",)
    assert table.find("iris") == (None, ("team-a", "team-b"))  # ambiguous: the caller must choose
    chosen, _ = table.find("iris", "team-b")
    assert chosen is not None and chosen.key == "team-b/iris"
    assert chosen.by_name["a"].namespace == "team-b"  # deployments live in their endpoint's namespace
    assert table.find("iris", "team-c") == (None, ("team-a", "team-b"))
    assert table.find("fraud", "team-a") == (None, ("team-b",))
    assert table.find("nope") == (None, ())


def test_routes_file_names_namespaces_in_the_key_or_a_field() -> None:
    table = parse_routes(
        {
            "endpoints": {
                "iris": {"deployments": {"a": {}}},
                "team-b/iris": {"deployments": {"a": {}}},
                "fraud": {"namespace": "team-c", "deployments": {"a": {}}},
            }
        }
    )
    assert sorted(table.endpoints) == ["default/iris", "team-b/iris", "team-c/fraud"]
    assert table.find("fraud", "team-c")[0] is not None
