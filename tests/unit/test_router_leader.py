"""The replicas' Leases: summing published load (stale replicas drop out, busy pods are not double
counted), counting live replicas and dividing each pod's limit among them, one release's names."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from router.autoscale import Load
from router.leader import LeaseNames, PeerLoad, live_replicas, parse_load_lease, total_load

NOW = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def lease(identity: str, renewed: str, loads: str) -> dict:
    return {
        "metadata": {
            "name": f"inferplane-router-load-{identity}",
            "annotations": {"ml.example/router-load": loads},
        },
        "spec": {"holderIdentity": identity, "renewTime": renewed},
    }


def test_parse_and_sum_fresh_replicas() -> None:
    a = parse_load_lease(lease("a", "2024-01-01T11:59:59.500000Z", '{"ns/blue": [2, 1, 3]}'))
    b = parse_load_lease(lease("b", "2024-01-01T11:59:58Z", '{"ns/blue": [2, 4, 3]}'))
    stale = parse_load_lease(lease("c", "2024-01-01T11:59:00Z", '{"ns/blue": [3, 9, 3]}'))
    assert a is not None and b is not None and stale is not None
    # busy 2 + 2 on 3 pods: the two routers may be using the same pods, so at most 3 are busy.
    assert total_load([a, b, stale], "ns/blue", NOW) == Load(busy_pods=3, queued=5)
    assert total_load([a, b], "ns/green", NOW) == Load(0, 0)


def test_a_garbled_lease_is_ignored() -> None:
    assert parse_load_lease(lease("a", "2024-01-01T11:59:59Z", "not json")) is None
    assert parse_load_lease({"metadata": {}, "spec": {}}) is None
    assert isinstance(parse_load_lease(lease("a", "2024-01-01T11:59:59Z", "{}")), PeerLoad)


def test_each_release_has_its_own_leases() -> None:
    a, b = LeaseNames("models-a-router"), LeaseNames("models-b-router")
    assert (a.leader, b.leader) == ("models-a-router-autoscaler", "models-b-router-autoscaler")
    assert a.load("router-7c9f") == "models-a-router-load-router-7c9f"
    # Peers are found by this selector, so release b's replicas never count as release a's.
    assert a.selector == "ml.example/router-load=models-a-router" != b.selector
    assert LeaseNames().leader == "inferplane-router-autoscaler"  # what a router run by hand uses


def test_live_replicas_count_fresh_leases_and_always_this_one() -> None:
    def peer(identity: str, seconds_ago: float) -> PeerLoad:
        return PeerLoad(identity, NOW - dt.timedelta(seconds=seconds_ago), {})

    assert live_replicas([], "router-b", NOW) == (1, 0)  # alone, or before the first list: whole limits
    peers = [peer("router-a", 1), peer("router-c", 9), peer("router-gone", 11), peer("router-b", 30)]
    # router-b's own Lease is stale (it could not write) but it counts itself; router-gone does not count.
    assert live_replicas(peers, "router-b", NOW) == (3, 1)
    # ... while its peers, seeing that Lease stale, do not count it: a replica that cannot write its
    # Lease makes the others take too large a share (logged by it, see Coordinator._complain).
    assert live_replicas(peers, "router-c", NOW) == (2, 1)


def test_the_router_divides_each_pods_limit_by_the_live_replicas() -> None:
    from router.proxy import Router
    from router.settings import DeploymentSettings
    from router.table import Backend, Deployment, RouteTable, make_endpoint

    async def limits(replicas: int, rank: int) -> dict[str, int]:
        router = Router()
        blue = Deployment("blue", "ns", DeploymentSettings(max_concurrent=5), (Backend("p", "10.0.0.1", 1),))
        one = Deployment("one", "ns", DeploymentSettings(max_concurrent=1), (Backend("q", "10.0.0.2", 1),))
        router.apply(RouteTable.of([make_endpoint("iris", [blue, one], namespace="ns")]))
        router.set_replicas(replicas, rank)
        found = {key.rsplit("/", 1)[1]: pool.max_concurrent for key, pool in router.pools.items()}
        await router.close()
        return found

    assert asyncio.run(limits(1, 0)) == {"blue": 5, "one": 1}
    shares = [asyncio.run(limits(2, rank)) for rank in range(2)]
    assert sorted(s["blue"] for s in shares) == [2, 3] and [s["one"] for s in shares] == [1, 1]


def test_a_failing_tick_is_logged_once_a_minute_not_every_second(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from kubernetes.client import Configuration
    from kubernetes.client.rest import ApiException

    from router.leader import Coordinator

    async def ticks() -> None:
        coordinator = Coordinator(None, SimpleNamespace(configuration=Configuration()), "ns", "router-a")
        for _ in range(5):  # a missing RBAC rule: the same refusal every second
            coordinator._complain(ApiException(status=403, reason="Forbidden"))
        coordinator._complain(ApiException(status=500, reason="Internal Server Error"))

    with caplog.at_level(logging.WARNING, logger="inferplane.router"):
        asyncio.run(ticks())
    assert [r.error for r in caplog.records] == [
        "ApiException 403: Forbidden",  # type: ignore[attr-defined]
        "ApiException 500: Internal Server Error",
    ]
