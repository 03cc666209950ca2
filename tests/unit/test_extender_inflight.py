"""/prioritize waits for related pods the scheduler is still binding, and only for those."""

from __future__ import annotations

import threading
import time

from extender import fixtures as fx
from extender.inflight import InFlight
from extender.parse import pod_from


def test_a_gpu_pod_waits_for_another_gpu_pod_in_flight_until_it_is_bound():
    in_flight = InFlight(max_wait=5.0)
    first, second = pod_from(fx.pod("a", gpus=1, uid="a")), pod_from(fx.pod("b", gpus=1, uid="b"))
    in_flight.started(first)
    in_flight.started(second)
    threading.Timer(0.2, in_flight.finished, args=("a",)).start()
    waited = in_flight.wait_for_related(second)
    assert 0.1 < waited < 4.0  # released by the bind, not by the cap


def test_unrelated_pods_never_wait_and_the_wait_is_capped():
    in_flight = InFlight(max_wait=0.2)
    in_flight.started(pod_from(fx.pod("gpu", gpus=1, uid="g")))
    in_flight.started(pod_from(fx.pod("web-1", deployment="web", uid="w1")))
    assert in_flight.wait_for_related(pod_from(fx.pod("solo-cpu", uid="c"))) == 0.0
    assert in_flight.wait_for_related(pod_from(fx.pod("api-1", deployment="api", uid="a1"))) == 0.0
    started = time.monotonic()
    in_flight.wait_for_related(pod_from(fx.pod("web-2", deployment="web", uid="w2")))
    assert 0.15 < time.monotonic() - started < 2.0


def test_a_pod_never_waits_for_itself_and_waiting_can_be_off():
    in_flight = InFlight(max_wait=5.0)
    pod = pod_from(fx.pod("a", gpus=1, uid="a"))
    in_flight.started(pod)
    assert in_flight.wait_for_related(pod) == 0.0
    off = InFlight(max_wait=0.0)
    off.started(pod)
    assert off.wait_for_related(pod_from(fx.pod("b", gpus=1, uid="b"))) == 0.0


def test_a_pod_never_bound_stops_counting_after_its_ttl():
    in_flight = InFlight(max_wait=5.0, ttl=0.1)
    in_flight.started(pod_from(fx.pod("a", gpus=1, uid="a")))
    time.sleep(0.15)
    assert in_flight.wait_for_related(pod_from(fx.pod("b", gpus=1, uid="b"))) < 0.1
