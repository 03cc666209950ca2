"""The `ml.example/injected` annotation: a record of what the webhook put into the pod.

It serves two readers. A person running `kubectl get pod -o yaml` sees which models and instance type
were applied. A later pass (reinvocation, a retry, or a pod created from `inferplane inject` output)
learns which volumes, env vars, resources and selectors are ours to bring up to date; everything
not listed is the user's and is never changed. Listing a user's item here gains nothing: the only
thing a pass does with an owned item is set it to the value it would inject anyway.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import orjson

VERSION = 1


@dataclass(frozen=True)
class Status:
    models: tuple[str, ...] = ()
    instance_type: str = ""
    container: str = ""
    volumes: tuple[str, ...] = ()
    init_containers: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # "limits.cpu", "requests.nvidia.com/gpu"
    node_selector: tuple[str, ...] = ()

    def to_annotation(self) -> str:
        """Compact JSON with sorted keys: the same pod always gets the same bytes."""
        return _annotation(self)


@functools.lru_cache(maxsize=1024)  # every replica of a Deployment gets the same record
def _annotation(status: Status) -> str:
    body = {key: getattr(status, name) for name, key in _KEYS if getattr(status, name)}
    return orjson.dumps({"version": VERSION, **body}, option=orjson.OPT_SORT_KEYS).decode()


@functools.lru_cache(maxsize=1024)
def record(
    models: tuple[str, ...],
    instance_type: str,
    container: str,
    owned: tuple[tuple[str, tuple[str, ...]], ...],
) -> str:
    """`Status(...).to_annotation()` keyed on plain tuples (`owned`: field name, names): building
    and hashing a frozen Status per review cost ~1.5 µs in process, this key a third of that."""
    fields = dict(owned)
    return Status(models=models, instance_type=instance_type, container=container, **fields).to_annotation()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


_KEYS = tuple((field.name, _camel(field.name)) for field in fields(Status))
_NOTHING = Status()


def parse_status(text: str | None) -> tuple[Status, list[str]]:
    """The recorded status, or an empty one plus a warning when it cannot be read.

    An unreadable record only means nothing is known to be ours, which is the safe side: a
    conflicting item is then refused instead of overwritten.
    """
    if not text:
        return _NOTHING, []
    status, warnings = _parse(text)
    return status, list(warnings)


@functools.lru_cache(maxsize=1024)  # a reinvocation brings back the record the first pass wrote
def _parse(text: str) -> tuple[Status, tuple[str, ...]]:
    try:
        raw: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raw = None
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        return _NOTHING, ("ignored an unreadable ml.example/injected annotation; it is rewritten",)
    values: dict[str, Any] = {}
    for name, key in _KEYS:
        value = raw.get(key)
        if isinstance(value, str) and isinstance(getattr(Status, name), str):
            values[name] = value
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            values[name] = tuple(value)
    return Status(**values), ()
