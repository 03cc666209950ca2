"""Summing the replicas' published load: stale replicas drop out, busy pods are not double counted."""

from __future__ import annotations

import datetime as dt

from router.autoscale import Load
from router.leader import LeaseNames, PeerLoad, parse_load_lease, total_load

NOW = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def lease(identity: str, renewed: str, loads: str) -> dict:
    return {"metadata": {"name": f"inferplane-router-load-{identity}",
                         "annotations": {"ml.example/router-load": loads}},
            "spec": {"holderIdentity": identity, "renewTime": renewed}}


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
