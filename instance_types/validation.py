"""Every rule an InstanceType spec must follow, as sentences a person can act on.

The CRD (crd.yaml) enforces the same rules in the apiserver; where it does so with CEL, the words
here are the words `kubectl apply` prints. Each check returns every problem it finds rather than
stopping at the first, so one run of `inferplane lint` lists all there is to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sized
from fractions import Fraction
from typing import Any

from inferplane.wording import describe
from instance_types.quantity import ACCEPTED_FORMS, QuantityError, parse_quantity
from instance_types.resource_names import (
    is_container_resource,
    is_dns_subdomain,
    is_native_resource,
    is_qualified_name,
)
from instance_types.rules import Problem

# Sizes the CRD declares (maxLength / maxProperties / maxItems); tests hold crd.yaml to them.
MAX_QUANTITY_LENGTH = 64
MAX_RESOURCES = 16
MAX_NODE_SELECTOR = 32
MAX_TOLERATIONS = 32
MAX_LABEL_VALUE = 63
MAX_LABEL_KEY = 317  # a 253-character prefix, "/", a 63-character name

SPEC_FIELDS = ("nodeSelector", "resources", "tolerations")
RESOURCES_FIELDS = ("requests", "limits")
TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
OPERATORS = ("Exists", "Equal")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
REQUIRED_RESOURCES = {"cpu": "500m", "memory": "1Gi"}  # with the example each message offers
INT64_MAX = 2**63 - 1

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_VALUE_HELP = (
    "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)
LABEL_KEY_HELP = "use a label key such as nvidia.com/gpu.product or zone"
TAINT_KEY_HELP = "use a label key such as nvidia.com/gpu"
RESOURCE_NAME_HELP = (
    "use cpu, memory, ephemeral-storage, hugepages-<size> or a device plugin resource such as nvidia.com/gpu"
)


def validate_spec(spec: Any) -> list[str]:
    """Every rule the CRD's schema and CEL rules enforce, with the same messages; [] when valid."""
    return [problem.message for problem in spec_problems(spec)]


def spec_problems(spec: Any) -> list[Problem]:
    """Like validate_spec, with the id of the rule each problem breaks."""
    if not isinstance(spec, Mapping):
        return [Problem("shape", f"spec must be an object with resources, not {describe(spec)}")]
    problems = list(_unknown_fields(spec, SPEC_FIELDS, "spec"))
    if "nodeSelector" in spec:
        problems += _node_selector(spec["nodeSelector"])
    if "resources" not in spec:
        problems.append(
            Problem("shape", "spec.resources is required, with requests and limits for cpu and memory")
        )
    else:
        problems += _resources(spec["resources"])
    if "tolerations" in spec:
        problems += _tolerations(spec["tolerations"])
    return problems


def name_problems(name: Any) -> list[Problem]:
    """The apiserver's own rule for every object name: a DNS subdomain."""
    if not isinstance(name, str) or not name:
        return [Problem("name", "metadata.name is required, e.g. name: gpu-a100")]
    if not is_dns_subdomain(name):
        return [
            Problem(
                "name",
                f'metadata.name "{name}" is not a valid name; use lowercase letters, digits, '
                "'-' and '.', starting and ending with a letter or digit, e.g. gpu-a100",
            )
        ]
    return []


def _written(value: Any) -> str:
    """A value as the user wrote it in YAML, for quoting back in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _unknown_fields(obj: Mapping[str, Any], known: tuple[str, ...], path: str) -> Iterator[Problem]:
    for key in obj:
        if key not in known:
            yield Problem("known-fields", f"{path}.{key} is not a known field; use {_one_of(known)}")


def _one_of(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def _too_many(path: str, entries: Sized, limit: int) -> list[Problem]:
    if len(entries) <= limit:
        return []
    return [Problem("bounds", f"{path} has {len(entries)} entries; at most {limit} are allowed")]


def _node_selector(selector: Any) -> list[Problem]:
    path = "spec.nodeSelector"
    if not isinstance(selector, Mapping):
        return [Problem("shape", f"{path} must be a map of label keys to values, not {describe(selector)}")]
    problems = _too_many(path, selector, MAX_NODE_SELECTOR)
    for key, value in selector.items():
        if not isinstance(value, str):
            hint = f'; quote it: "{_written(value)}"' if isinstance(value, int | float) else ""
            problems.append(Problem("shape", f"{path}.{key} ({_written(value)}) must be a string{hint}"))
            continue
        if len(value) > MAX_LABEL_VALUE:
            problems.append(
                Problem("bounds", f"{path}.{key} is {len(value)} characters; at most 63 are allowed")
            )
            continue
        if not is_qualified_name(str(key)):
            problems.append(
                Problem("node-selector-label", f"{path}.{key} is not a valid label key; {LABEL_KEY_HELP}")
            )
        if not _LABEL_VALUE.fullmatch(value):
            problems.append(
                Problem(
                    "node-selector-label",
                    f'{path}.{key} ("{value}") is not a valid label value; {LABEL_VALUE_HELP}',
                )
            )
    return problems


def _resources(resources: Any) -> list[Problem]:
    path = "spec.resources"
    if not isinstance(resources, Mapping):
        return [
            Problem("shape", f"{path} must be an object with requests and limits, not {describe(resources)}")
        ]
    problems = list(_unknown_fields(resources, RESOURCES_FIELDS, path))
    values: dict[str, dict[str, Fraction]] = {}
    for part in RESOURCES_FIELDS:
        if part not in resources:
            problems.append(
                Problem("shape", f"{path}.{part} is required, e.g. {part}: {{cpu: 500m, memory: 1Gi}}")
            )
            continue
        part_problems, values[part] = _quantities(resources[part], f"{path}.{part}")
        problems += part_problems
    requests, limits = values.get("requests", {}), values.get("limits", {})
    written = {part: resources.get(part) for part in RESOURCES_FIELDS}
    for key in requests.keys() & limits.keys():
        # An extended resource in requests is refused on its own (extended-in-limits-only).
        if is_native_resource(key) and requests[key] > limits[key]:
            problems.append(
                Problem(
                    "request-within-limit",
                    f"{path}.requests.{key} ({_written(written['requests'][key])}) must not exceed "
                    f"{path}.limits.{key} ({_written(written['limits'][key])})",
                )
            )
    return problems


def _quantities(entries: Any, path: str) -> tuple[list[Problem], dict[str, Fraction]]:
    """Problems of one requests/limits map, and the values that parsed, for the cross checks."""
    if not isinstance(entries, Mapping):
        return [
            Problem("shape", f"{path} must be a map of resource names to quantities, not {describe(entries)}")
        ], {}
    problems = _too_many(path, entries, MAX_RESOURCES)
    is_limits = path.endswith(".limits")
    for name in REQUIRED_RESOURCES:
        if name not in entries:
            example = REQUIRED_RESOURCES[name]
            problems.append(
                Problem("cpu-memory-required", f"{path}.{name} is required, e.g. {name}: {example}")
            )
    values: dict[str, Fraction] = {}
    for name, raw in entries.items():
        value, value_problems = _quantity(f"{path}.{name}", raw)
        problems += value_problems
        if not is_container_resource(str(name)):
            problems.append(
                Problem("resource-name", f"{path}.{name} is not a container resource; {RESOURCE_NAME_HELP}")
            )
        if value is None:
            continue
        values[name] = value
        problems += _value_rules(f"{path}.{name}", str(name), _written(raw), value, is_limits)
    return problems, values


def _quantity(path: str, raw: Any) -> tuple[Fraction | None, list[Problem]]:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        hint = f'; quote it: "{raw}"' if isinstance(raw, float) else ', e.g. "500m"'
        return None, [Problem("shape", f"{path} ({_written(raw)}) must be a string or a whole number{hint}")]
    if isinstance(raw, str) and len(raw) > MAX_QUANTITY_LENGTH:
        return None, [
            Problem("bounds", f"{path} is {len(raw)} characters; at most {MAX_QUANTITY_LENGTH} are allowed")
        ]
    try:
        return parse_quantity(raw), []
    except QuantityError:
        return None, [Problem("quantity", f'{path} ("{raw}") is not a quantity; {ACCEPTED_FORMS}')]


def _value_rules(path: str, name: str, written: str, value: Fraction, is_limits: bool) -> list[Problem]:
    """The rules on one parsed value, which depend on what kind of resource it is."""
    if name in REQUIRED_RESOURCES:
        if value <= 0:
            return [Problem("cpu-memory-positive", f"{path} ({written}) must be greater than zero")]
        return []
    if not is_native_resource(name):
        if not is_limits:
            return [
                Problem(
                    "extended-in-limits-only",
                    f"{path} is not allowed; GPUs and other extended resources go in "
                    "spec.resources.limits only",
                )
            ]
        if value.denominator != 1 or not 1 <= value <= INT64_MAX:
            return [
                Problem("extended-whole-number", f"{path} ({written}) must be a whole number of at least 1")
            ]
        return []
    if value < 0:
        return [Problem("not-negative", f"{path} ({written}) must not be negative")]
    return []


def _tolerations(tolerations: Any) -> list[Problem]:
    path = "spec.tolerations"
    if not isinstance(tolerations, list):
        return [Problem("shape", f"{path} must be a list of tolerations, not {describe(tolerations)}")]
    problems = _too_many(path, tolerations, MAX_TOLERATIONS)
    for index, toleration in enumerate(tolerations):
        problems += _toleration(f"{path}[{index}]", toleration)
    return problems


def _toleration(path: str, toleration: Any) -> list[Problem]:
    """Kubernetes' own toleration rules (ValidateTolerations), so the pods we write are admitted."""
    if not isinstance(toleration, Mapping):
        return [
            Problem(
                "shape",
                f"{path} must be an object with key, operator, value, effect, not {describe(toleration)}",
            )
        ]
    problems = list(_unknown_fields(toleration, TOLERATION_FIELDS, path))
    for field in ("key", "operator", "value", "effect"):
        if field in toleration and not isinstance(toleration[field], str):
            problems.append(
                Problem("shape", f"{path}.{field} ({_written(toleration[field])}) must be a string")
            )
    seconds = toleration.get("tolerationSeconds")
    if "tolerationSeconds" in toleration and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        problems.append(
            Problem("shape", f"{path}.tolerationSeconds ({_written(seconds)}) must be a whole number")
        )
    if problems:
        return problems
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    value, effect = toleration.get("value", ""), toleration.get("effect", "")
    if operator not in OPERATORS:
        problems.append(
            Problem("toleration-enums", f'{path}.operator ("{operator}") must be Exists or Equal')
        )
    if "effect" in toleration and effect not in EFFECTS:
        problems.append(Problem("toleration-enums", f'{path}.effect ("{effect}") must be {_one_of(EFFECTS)}'))
    if len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
        problems.append(Problem("bounds", f"{path} has a key or value too long for a label"))
        return problems
    if key and not is_qualified_name(key):
        problems.append(
            Problem("toleration-key", f'{path}: key "{key}" is not a valid taint key; {TAINT_KEY_HELP}')
        )
    if not key and operator != "Exists":
        problems.append(Problem("toleration-operator", f"{path}: operator must be Exists when key is empty"))
    if operator == "Exists" and value:
        problems.append(Problem("toleration-value", f"{path}: value must be empty when operator is Exists"))
    elif not _LABEL_VALUE.fullmatch(value):
        problems.append(
            Problem(
                "toleration-value", f'{path}: value "{value}" is not a valid taint value; {LABEL_VALUE_HELP}'
            )
        )
    if "tolerationSeconds" in toleration and effect != "NoExecute":
        problems.append(
            Problem("toleration-seconds", f"{path}: tolerationSeconds applies only to effect NoExecute")
        )
    return problems
