"""The azureml-fe autoscaling rule as pure functions: load in, replica count out.

utilization = (pods busy + requests queued) / pods. Above the target the deployment needs
ceil((busy + queued) / target) pods, and gets them at once; below it, the count only comes down once
the highest need seen over the last `scale_down_after_s` (a minute, ~20 checks at azureml-fe's 1 s
rhythm) is lower than what runs now. Scaling down on the window's maximum rather than on its latest
value is what keeps a bursty load from flapping: one busy second within the minute holds the
replicas. The same stabilization HPA uses for `behavior.scaleDown`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from router.settings import Autoscale

SCALE_DOWN_AFTER_S = 60.0


@dataclass(frozen=True)
class Load:
    """One deployment's load, summed over all router replicas."""

    busy_pods: int
    queued: int


@dataclass(frozen=True)
class ScaleState:
    """The needs seen within the scale-down window, oldest first, and when watching began."""

    since: float | None = None
    needs: tuple[tuple[float, int], ...] = ()


def needed_replicas(load: Load, policy: Autoscale) -> int:
    """Pods needed for the current load at the target utilization, within min..max."""
    demand = load.busy_pods + load.queued
    # The epsilon keeps 7 busy at 70 % from becoming 10.000000001 → 11 pods.
    need = math.ceil(demand * 100.0 / policy.target_utilization - 1e-9)
    return max(policy.min_replicas, min(policy.max_replicas, need))


def step(
    state: ScaleState,
    now: float,
    load: Load,
    replicas: int,
    policy: Autoscale,
    scale_down_after_s: float = SCALE_DOWN_AFTER_S,
) -> tuple[ScaleState, int | None]:
    """One check: the new state, and the replica count to set (None: leave it as it is)."""
    need = needed_replicas(load, policy)
    since = state.since if state.since is not None else now
    needs = (*((t, n) for t, n in state.needs if t > now - scale_down_after_s), (now, need))
    state = ScaleState(since, needs)
    if need > replicas or replicas < policy.min_replicas:
        return state, need  # up at once (also back inside the bounds after a manual change)
    if replicas > policy.max_replicas:
        return state, policy.max_replicas
    if now - since < scale_down_after_s:
        return state, None  # not watched for a whole window yet: a restart must not shed pods
    stable = max(n for _, n in needs)
    return state, (stable if stable < replicas else None)
