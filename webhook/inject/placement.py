"""Where the pod may run: the instance type's nodeSelector and tolerations, and its label.

The nodeSelector is the webhook's own (the operator's `--node-selector`, the chart's global
`nodeSelector`: every model pod) joined with the instance type's; the two never disagree, a choice
where they do is refused when the plan is made. A nodeSelector key the user set to another value
is a contradiction only the user can resolve, so it is refused naming both values. Tolerations are
only ever added (a list is never reordered or shrunk), skipping ones already present in any
spelling Kubernetes treats as the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.inject import keys
from webhook.inject.done import Done
from webhook.inject.plan import Plan
from webhook.inject.podspec import child, child_list
from webhook.inject.problems import FieldDenied, quote
from webhook.inject.refs import LABEL_VALUE


def _node_selector(spec: dict[str, Any], plan: Plan) -> tuple[str, ...]:
    it = plan.instance_type
    required = plan.choice.node_selector
    current: dict[str, str] = dict(spec.get("nodeSelector") or {})
    wanted = dict(current)
    owned = []
    for key in plan.prior.node_selector:
        if key not in required:
            wanted.pop(key, None)  # ours, from an instance type or a setting no longer in force
    for key, value in required.items():
        have = current.get(key)
        if have is None or key in plan.prior.node_selector:
            wanted[key] = value
            owned.append(key)
        elif have != value and key in it.node_selector:
            raise FieldDenied(
                f"spec.nodeSelector[{key}]",
                f"nodeSelector {key}={have} conflicts with instance type {quote(it.name)}, which needs "
                f"{key}={value}; remove it from the pod or pick another instance type",
            )
        elif have != value:
            raise FieldDenied(
                f"spec.nodeSelector[{key}]",
                f"nodeSelector {key}={have} conflicts with the webhook's node selector, which places "
                f"every model pod on {key}={value}; remove it from the pod",
            )
    if wanted != current:
        if wanted:
            spec["nodeSelector"] = wanted
        else:
            spec.pop("nodeSelector", None)
    return tuple(owned)


def _toleration_key(toleration: Mapping[str, Any]) -> tuple[Any, ...]:
    """Kubernetes reads a missing operator as Equal, and missing strings as empty."""
    return (
        toleration.get("key") or "",
        toleration.get("operator") or "Equal",
        toleration.get("value") or "",
        toleration.get("effect") or "",
        toleration.get("tolerationSeconds"),
    )


def _tolerations(spec: dict[str, Any], plan: Plan) -> None:
    if not plan.instance_type.tolerations:
        return
    tolerations = child_list(spec, "tolerations")
    present = {_toleration_key(t) for t in tolerations}
    for toleration in plan.instance_type.tolerations:
        if _toleration_key(toleration) not in present:
            tolerations.append(dict(toleration))
            present.add(_toleration_key(toleration))


def _label(pod: dict[str, Any], plan: Plan) -> list[str]:
    name = plan.instance_type.name
    if len(name) > 63 or not LABEL_VALUE.match(name):
        return [
            f"instance type {quote(name)} is too long for a label value; "
            f"label {keys.INSTANCE_TYPE_LABEL} not set"
        ]
    labels = child(child(pod, "metadata"), "labels")
    had = labels.get(keys.INSTANCE_TYPE_LABEL)
    labels[keys.INSTANCE_TYPE_LABEL] = name
    if had is not None and had not in (name, plan.prior.instance_type):
        return [
            f"label {keys.INSTANCE_TYPE_LABEL}={had} replaced by {name}; choose with the annotation instead"
        ]
    return []


def apply_placement(pod: dict[str, Any], plan: Plan) -> Done:
    spec = pod["spec"]
    owned = _node_selector(spec, plan)
    _tolerations(spec, plan)
    return Done(tuple(_label(pod, plan)), {"node_selector": owned})
