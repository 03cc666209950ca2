"""The RFC 6902 patch from the pod we received to the pod we want, and its wire encoding.

Our own diff, not `jsonpatch.make_patch`: that one has open bugs producing wrong patches for arrays
(stale `move` paths, misordered ops: stefankoegl/python-json-patch#124, #138, #160, #179; see
research/ecosystem.md 3.2). This diff never moves or removes list items: it recurses into maps and
into list items at the same index, and appends new items with `/-`. So the patch applies to exactly
the object received, whatever other admission plugins put there (volumes, tolerations, sidecars),
and a parent that is missing (annotations, env, resources.limits) is created by one `add` of the
whole value (wire.md A.8).
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

Op = dict[str, Any]


def _equal(old: Any, new: Any) -> bool:
    """JSON equality, at C speed for the unchanged subtrees that make up most of a pod.

    Python's `==` calls `True == 1` and `1 == 1.0` equal, JSON does not; so a container that
    compares equal is confirmed by its serialisation (each node is serialised at most once: the
    diff does not descend below an equal subtree).
    """
    if old is new:
        return True
    if type(old) is not type(new) or old != new:
        return False
    if isinstance(old, dict | list):
        try:
            return orjson.dumps(old, option=orjson.OPT_NON_STR_KEYS) == orjson.dumps(
                new, option=orjson.OPT_NON_STR_KEYS
            )
        except TypeError:  # a value JSON cannot hold (a YAML set): compare item by item
            return False
    return True


def diff(old: Any, new: Any, path: str = "") -> list[Op]:
    """Operations turning `old` into `new`; [] when they are equal."""
    ops: list[Op] = []
    if not _equal(old, new):
        _changes(old, new, path, ops)
    return ops


def _changes(old: Any, new: Any, path: str, ops: list[Op]) -> None:
    """Append to `ops` what turns `old` into `new`, values known to differ; paths are spelled only
    where something changed. One list for the whole diff, not one per level (~1 µs a review).

    A value that is the very object it was (the mutation shares what it did not touch with the
    pod it received) is skipped at once, without comparing it.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        # Our steps never remove a key: the C-level subset test saves walking `old` (~0.7 µs a review).
        if not old.keys() <= new.keys():
            ops += [{"op": "remove", "path": f"{path}/{_escape(key)}"} for key in old if key not in new]
        for key, value in new.items():
            before = old.get(key, _ABSENT)
            if before is value:
                continue
            if before is _ABSENT:
                ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
            elif not _equal(before, value):
                _changes(before, value, f"{path}/{_escape(key)}", ops)
    elif isinstance(old, list) and isinstance(new, list) and len(new) >= len(old):
        for index, (before, after) in enumerate(zip(old, new, strict=False)):
            if before is not after and not _equal(before, after):
                _changes(before, after, f"{path}/{index}", ops)
        if len(new) > len(old):
            end = f"{path}/-"
            ops += [{"op": "add", "path": end, "value": value} for value in new[len(old) :]]
    else:
        # A scalar changed, a type changed, or (never from our steps) a list shrank: replace it whole.
        ops.append({"op": "replace", "path": path, "value": new})


_ABSENT = object()


def _escape(key: str) -> str:
    """RFC 6901: `~` before `/`, so `a/~b` reads back as itself."""
    return key.replace("~", "~0").replace("/", "~1") if "~" in key or "/" in key else key


def encode(ops: list[Op]) -> str:
    """Base64 of the compact JSON, as `AdmissionResponse.patch` (a Go []byte) travels."""
    return binascii.b2a_base64(orjson.dumps(ops), newline=False).decode()
