"""A pod's effective resource requests, the way kube-scheduler counts them (wire.md C.4).

Init containers run one at a time before the app; native sidecars (init containers with
`restartPolicy: Always`) keep running beside everything started after them. So a pod needs, per
resource, the larger of its busiest init step and its steady state, plus the runtime overhead:

    steady    = sum(sidecars) + sum(containers)
    init_peak = max over init container i of  sum(sidecars before i) + request(i)
    effective = max(steady, init_peak) + overhead
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from functools import lru_cache
from math import ceil
from typing import Any

from extender.config import DEFAULT_ACCELERATORS
from extender.model import GpuCounts
from inferplane.errors import UserError
from instance_types import quantity
from instance_types.resource_names import is_extended_resource

# Memoised: the same few strings ("100m", "1Gi") arrive with every one of 150,000 pods.
parse_quantity = lru_cache(maxsize=4096)(quantity.parse_quantity)


def container_requests(container: Mapping[str, Any]) -> dict[str, Fraction]:
    """Requests, with a limit standing in for a missing request (what API defaulting does)."""
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return {name: parse_quantity(str(value)) for name, value in merged.items()}


def _add(total: dict[str, Fraction], more: Mapping[str, Fraction]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Fraction(0)) + value


def _max_into(peak: dict[str, Fraction], candidate: Mapping[str, Fraction]) -> None:
    for name, value in candidate.items():
        if value > peak.get(name, Fraction(0)):
            peak[name] = value


def effective_requests(spec: Mapping[str, Any]) -> dict[str, Fraction]:
    """Per-resource requests of the whole pod (see the module docstring for the formula)."""
    steady: dict[str, Fraction] = {}
    for container in spec.get("containers") or ():
        _add(steady, container_requests(container))
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for container in spec.get("initContainers") or ():
        own = container_requests(container)
        step = dict(sidecars)
        _add(step, own)
        _max_into(init_peak, step)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, own)
    _add(steady, sidecars)
    _max_into(steady, init_peak)
    overhead = spec.get("overhead") or {}
    _add(steady, {name: parse_quantity(str(value)) for name, value in overhead.items()})
    return steady


class Accelerators:
    """Which extended resources are accelerators: what makes a node a GPU node (kept for GPU pods)
    and a pod a GPU pod (bin-packed, checked for free devices).

    Not every extended resource is one: a node offering only `rdma/hca` or `smarter-devices/fuse` is
    an ordinary machine that CPU pods may use, and the scheduler's own NodeResourcesFit already
    counts such resources. `markers` (the resource that only routes pods to the extender) are never
    accelerators, even when a pattern matches.
    """

    def __init__(self, patterns: Iterable[str] = DEFAULT_ACCELERATORS, markers: Iterable[str] = ()) -> None:
        self.patterns = tuple(dict.fromkeys(patterns))
        for pattern in self.patterns:
            check_accelerator_pattern(pattern)
        self._names = frozenset(p for p in self.patterns if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in self.patterns if p.endswith("*"))
        self.markers = frozenset(markers)

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str)
            and (name in self._names or name.startswith(self._prefixes))
            and name not in self.markers
        )

    def __repr__(self) -> str:
        return f"Accelerators({list(self.patterns)!r}, markers={sorted(self.markers)!r})"


def check_accelerator_pattern(pattern: str) -> None:
    """An extended resource name (`example.com/fpga`), or a prefix of such names ending in `*`
    (`example.com/fpga-*`); UserError otherwise, since a typo would silently match nothing."""
    stem, star, rest = pattern.partition("*")
    # A stem followed by any name character must make an extended resource name.
    if rest or not is_extended_resource(stem + "x" if star else stem):
        raise UserError(
            f"--accelerator-resource {pattern!r}: give an extended resource name such as example.com/fpga, "
            "or a prefix of such names ending in * such as example.com/fpga-*"
        )


DEFAULT = Accelerators()


def gpu_counts(requests: Mapping[str, Fraction], accelerators: Accelerators = DEFAULT) -> GpuCounts:
    """The accelerator part of `requests` (or of a node's allocatable), whole units, zero entries
    dropped."""
    return tuple(
        sorted((name, ceil(value)) for name, value in requests.items() if value > 0 and name in accelerators)
    )


def cpu_milli(requests: Mapping[str, Fraction]) -> int:
    return ceil(requests.get("cpu", Fraction(0)) * 1000)


def memory_bytes(requests: Mapping[str, Fraction]) -> int:
    return ceil(requests.get("memory", Fraction(0)))


def quantities(values: Mapping[str, Any] | None, names: Iterable[str] | None = None) -> dict[str, Fraction]:
    """Parse a resource map such as a node's `status.allocatable` (only `names` when given)."""
    values = values or {}
    keys = values.keys() if names is None else [n for n in names if n in values]
    return {name: parse_quantity(str(values[name])) for name in keys}
