"""The instance type's requests and limits on the scoring container.

Rules, in the words a user would use:
- a value the user set is kept when it fits inside the instance type; above the instance type's
  limit it is refused, naming both values;
- a value the user did not set comes from the instance type; a request the user's own lower limit
  cannot hold is lowered to that limit;
- extended resources (GPUs) get only a limit: the apiserver copies a limit without a request into
  requests after our patch (wire.md A.5, C.3), and a request must then equal the limit;
- values set by an earlier pass are ours (see webhook.inject.status) and are recomputed, so a
  changed instance type takes effect instead of being refused as the user's.
Quantities are compared exactly (`parse_quantity`), and a value already equal to what we want is
left in its current spelling (`600m` stays `600m` when the instance type says `0.6`): the apiserver
rewrites quantities canonically, and a later pass must not fight that.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

from instance_types.quantity import parse_quantity
from instance_types.resource_names import HUGEPAGES_PREFIX, is_extended_resource
from webhook.inject.done import Done
from webhook.inject.plan import Plan
from webhook.inject.podspec import child
from webhook.inject.problems import FieldDenied, quote

# The same few spellings ("1", "2Gi", "500m") come back on every review; Fractions are immutable.
# Typed: 1.0 and True are refused as quantities, and must not hit the entry of 1.
_quantity = functools.lru_cache(maxsize=4096, typed=True)(parse_quantity)


@functools.lru_cache(maxsize=4096, typed=True)
def _exceeds(value: Any, limit: Any) -> bool:
    """`value > limit` for two spellings already read: comparing Fractions is pure Python (about
    1 µs a pair here), and the same pairs (the instance type's request and limit) come with every
    review."""
    return _quantity(value) > _quantity(limit)


def _equal_to_limit(name: str) -> bool:
    """Resources Kubernetes never overcommits: the request must equal the limit."""
    return is_extended_resource(name) or name.startswith(HUGEPAGES_PREFIX)


class _Reader:
    """Parses quantities, turning a bad one into a denial that names the field."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, kind: str, name: str, value: Any) -> Fraction:
        try:
            return _quantity(value)
        except Exception as exc:  # QuantityError, or a float from a YAML file
            field = f"spec.containers[{self.index}].resources.{kind}[{name}]"
            raise FieldDenied(field, f"resources.{kind}.{name}: {exc}") from exc

    def exceeds(self, kind: str, name: str, value: Any, limit_kind: str, limit: Any) -> bool:
        """`value > limit`, each read (and refused when unreadable) as its field."""
        self(kind, name, value)
        self(limit_kind, name, limit)
        return _exceeds(value, limit)


def _keep(existing: Any, wanted: str, read: _Reader, kind: str, name: str) -> Any:
    if existing is not None and read(kind, name, existing) == read(kind, name, wanted):
        return existing
    return wanted


def _who(container: dict[str, Any]) -> str:
    """How messages name the container; spelled only when a message is (quoting costs ~1 µs)."""
    return f"container {quote(container['name'])}"


def apply_resources(pod: dict[str, Any], plan: Plan) -> Done:
    container = pod["spec"]["containers"][plan.container]
    field = f"spec.containers[{plan.container}].resources"
    read = _Reader(plan.container)
    it = plan.instance_type
    it_limits, it_requests = it.limits, it.requests
    marker = plan.config.scheduler_marker_resource

    resources = container.get("resources") or {}
    requests: dict[str, Any] = dict(resources.get("requests") or {})
    limits: dict[str, Any] = dict(resources.get("limits") or {})
    prior = set(plan.prior.resources)
    user_requests = {k: v for k, v in requests.items() if f"requests.{k}" not in prior}
    user_limits = {k: v for k, v in limits.items() if f"limits.{k}" not in prior and k != marker}
    owned: list[str] = []
    warnings: list[str] = []

    final_limits = dict(user_limits)
    for name, cap in it_limits.items():
        if name in user_limits:
            if read.exceeds("limits", name, user_limits[name], "limits", cap):
                raise FieldDenied(
                    f"{field}.limits[{name}]",
                    f"{_who(container)} asks limits.{name} {user_limits[name]}, above instance type "
                    f"{quote(it.name)} limit {cap}; lower it or pick a larger instance type",
                )
        else:
            final_limits[name] = _keep(limits.get(name), cap, read, "limits", name)
            owned.append(f"limits.{name}")
    if marker:
        # Our marker for the scheduler extender (issue 4); always exactly one.
        final_limits[marker] = _keep(limits.get(marker), "1", read, "limits", marker)
        owned.append(f"limits.{marker}")

    final_requests = dict(user_requests)
    for name, value in user_requests.items():
        asked = read("requests", name, value)
        if name in it_limits and read.exceeds("requests", name, value, "limits", it_limits[name]):
            raise FieldDenied(
                f"{field}.requests[{name}]",
                f"{_who(container)} asks requests.{name} {value}, above instance type {quote(it.name)} "
                f"limit {it_limits[name]}; lower it or pick a larger instance type",
            )
        limit = final_limits.get(name)
        if limit is not None and _equal_to_limit(name) and asked != read("limits", name, limit):
            raise FieldDenied(
                f"{field}.requests[{name}]",
                f"{_who(container)} asks requests.{name} {value} but its limit is {limit}; "
                f"{name} requests must equal the limit, so set only the limit",
            )
        if limit is not None and read.exceeds("requests", name, value, "limits", limit):
            raise FieldDenied(
                f"{field}.requests[{name}]",
                f"{_who(container)} asks requests.{name} {value}, above its limits.{name} {limit}; "
                "lower the request",
            )
    for name, wanted in it_requests.items():
        if name in user_requests:
            continue
        limit = final_limits.get(name)
        if limit is not None and read.exceeds("requests", name, wanted, "limits", limit):
            warnings.append(
                f"{_who(container)}: requests.{name} lowered to its own limit {limit} "
                f"(instance type {quote(it.name)} asks {wanted})"
            )
            wanted = str(limit)
        final_requests[name] = _keep(requests.get(name), wanted, read, "requests", name)
        owned.append(f"requests.{name}")
    for name in list(final_limits):
        if f"limits.{name}" in owned and name not in final_requests:
            # The apiserver copies this limit into requests after our patch: that copy is ours too,
            # and follows the limit when it changes.
            owned.append(f"requests.{name}")
            if name in requests:
                final_requests[name] = _keep(requests[name], str(final_limits[name]), read, "requests", name)

    if final_requests != requests or final_limits != limits:
        target = child(container, "resources")
        for kind, old, new in (("requests", requests, final_requests), ("limits", limits, final_limits)):
            if new != old:
                if new:
                    target[kind] = new
                else:
                    target.pop(kind, None)
    return Done(tuple(warnings), {"resources": tuple(sorted(owned))})
