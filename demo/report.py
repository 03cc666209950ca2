"""The demo's outcome as numbers: the split and the mirror observed against what the annotations ask
for, and whether the answers were right. Pure, so the bounds are tested apart from any cluster.

Each live request goes to a deployment with its traffic share p, independently, so a deployment's
count over n requests is binomial(n, p); a count more than SIGMAS standard deviations from n·p
happens by chance about once in 150,000 runs, so outside those bounds the split is wrong, not
unlucky. The mirror is the same with its percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SIGMAS = 4.5


@dataclass(frozen=True)
class Bounds:
    expected: float
    low: int
    high: int

    def holds(self, count: int) -> bool:
        return self.low <= count <= self.high


def binomial_bounds(n: int, percent: float) -> Bounds:
    """Where a binomial(n, percent/100) count falls unless something is wrong."""
    p = percent / 100
    mean = n * p
    spread = SIGMAS * math.sqrt(n * p * (1 - p))
    return Bounds(round(mean, 2), max(0, math.floor(mean - spread)), min(n, math.ceil(mean + spread)))


@dataclass(frozen=True)
class Answer:
    """One request through the router: who answered, the status, and whether the predictions were right."""

    deployment: str
    status: int
    correct: bool
    milliseconds: float


@dataclass
class Outcome:
    requests: int
    split: dict[str, int]
    expected: dict[str, Bounds]
    mirrored: dict[str, int]
    expected_mirror: dict[str, Bounds]
    statuses: dict[str, int]
    answers_correct: int
    latency_ms_p50: float
    latency_ms_p99: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)


def summarise(
    answers: Sequence[Answer],
    traffic: Mapping[str, int],
    mirrors: Mapping[str, int],
    mirrored: Mapping[str, int],
) -> Outcome:
    """Compare what happened with what the annotations ask: `traffic` and `mirrors` in percent by
    deployment (the live shares already resolved, summing to 100), `mirrored` the copies each
    mirror deployment received."""
    n = len(answers)
    split = {name: 0 for name in traffic}
    statuses: dict[str, int] = {}
    for answer in answers:
        split[answer.deployment] = split.get(answer.deployment, 0) + 1
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
    expected = {name: binomial_bounds(n, percent) for name, percent in traffic.items()}
    expected_mirror = {name: binomial_bounds(n, percent) for name, percent in mirrors.items()}
    correct = sum(1 for a in answers if a.correct)
    problems = []
    if n == 0:
        problems.append("no request was sent")
    for name, count in split.items():
        bounds = expected.get(name)
        if bounds is None:
            problems.append(f"{count} answers came from {name}, which should take no live traffic")
        elif not bounds.holds(count):
            problems.append(f"{name} answered {count} of {n}; expected {bounds.low}..{bounds.high}")
    for name, bounds in expected_mirror.items():
        count = mirrored.get(name, 0)
        if not bounds.holds(count):
            problems.append(
                f"{name} got {count} mirrored copies of {n}; expected {bounds.low}..{bounds.high}"
            )
    if correct != n:
        problems.append(f"{n - correct} of {n} answers were wrong or failed")
    latencies = [a.milliseconds for a in answers]
    return Outcome(
        requests=n,
        split=split,
        expected=expected,
        mirrored=dict(mirrored),
        expected_mirror=expected_mirror,
        statuses=statuses,
        answers_correct=correct,
        latency_ms_p50=_percentile(latencies, 0.5),
        latency_ms_p99=_percentile(latencies, 0.99),
        problems=problems,
    )
