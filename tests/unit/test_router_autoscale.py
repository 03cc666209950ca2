"""The autoscaling rule on synthetic load, one check per second as azureml-fe does."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from router.autoscale import Load, ScaleState, needed_replicas, step
from router.settings import Autoscale

POLICY = Autoscale(min_replicas=1, max_replicas=10, target_utilization=70)


def simulate(loads: Iterable[Load], replicas: int, policy: Autoscale = POLICY) -> list[int]:
    """Run the rule once a second and apply what it asks; the replica count after every check."""
    state, seen = ScaleState(), []
    for second, load in enumerate(loads):
        state, wanted = step(state, float(second), load, replicas, policy)
        if wanted is not None:
            replicas = wanted
        seen.append(replicas)
    return seen


def test_needed_replicas_follows_the_70_percent_target() -> None:
    assert needed_replicas(Load(busy_pods=7, queued=0), POLICY) == 10  # exactly 70 % of 10
    assert needed_replicas(Load(busy_pods=2, queued=0), POLICY) == 3  # 2 / 0.7 = 2.86
    assert needed_replicas(Load(busy_pods=3, queued=4), POLICY) == 10
    assert needed_replicas(Load(busy_pods=0, queued=0), POLICY) == 1  # never below min


def test_needed_replicas_stays_within_bounds() -> None:
    policy = Autoscale(min_replicas=2, max_replicas=4, target_utilization=50)
    assert needed_replicas(Load(0, 0), policy) == 2
    assert needed_replicas(Load(10, 90), policy) == 4


def test_a_spike_scales_up_on_the_next_check() -> None:
    loads = [Load(1, 0)] * 5 + [Load(2, 6)] + [Load(2, 0)] * 3
    seen = simulate(loads, replicas=2)
    assert seen[:5] == [2] * 5
    assert seen[5] == 10  # (2 + 6) / 0.7 = 11.4 → 12, capped at max 10


def test_scale_down_waits_a_minute_of_low_load() -> None:
    busy = [Load(7, 0)] * 10  # needs 10
    quiet = [Load(1, 0)] * 120  # needs 2
    seen = simulate(busy + quiet, replicas=10)
    first_lower = next(i for i, r in enumerate(seen) if r < 10)
    # The window must have forgotten the last busy second (t=9) before anything is removed.
    assert 9 + 60 <= first_lower <= 9 + 62
    assert seen[-1] == 2


def test_one_busy_second_a_minute_holds_the_replicas() -> None:
    loads = ([Load(7, 0)] + [Load(0, 0)] * 29) * 6  # bursty: one spike every 30 s
    seen = simulate(loads, replicas=1)
    assert seen[0] == 10
    assert min(seen) == 10  # never flaps down between bursts


def test_a_fresh_leader_does_not_shed_pods_before_watching_a_whole_window() -> None:
    seen = simulate([Load(0, 0)] * 59, replicas=5)
    assert seen == [5] * 59
    seen = simulate([Load(0, 0)] * 62, replicas=5)
    assert seen[-1] == 1


def test_out_of_bounds_counts_are_corrected_at_once() -> None:
    policy = Autoscale(min_replicas=3, max_replicas=5, target_utilization=70)
    assert simulate([Load(0, 0)], replicas=1, policy=policy) == [3]
    assert simulate([Load(0, 0)], replicas=9, policy=policy) == [5]


def test_a_steady_load_settles_without_oscillating() -> None:
    loads = [Load(min(7, 3 + s // 10), 0) for s in range(200)]
    seen = simulate(loads, replicas=1)
    changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert seen[-1] == 10
    assert changes <= 5  # one step per load increase, none back and forth
