"""Typed reads of a parsed document, each failing with a sentence that says where, what and how to fix.

A registration is hand-written YAML; a typo must stop the model from being served with a message
naming the ConfigMap, the key and the field, never be ignored. Every reader here takes the field's
dotted path so the message can point at it.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from inferplane.wording import describe
from models.values import InvalidRegistration

# A Kubernetes label value: the model name and version are label values, and they become directory
# names under the app root, so the same rule keeps them path-safe ('.' and '..' cannot match).
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Where:
    """The place a value came from: `ConfigMap default/iris-3, key model.yaml`."""

    origin: str
    key: str = ""

    def at(self, key: str) -> Where:
        return Where(self.origin, key)

    def fail(self, field: str, problem: str, fix: str) -> NoReturn:
        place = self.origin + (f", key {self.key}" if self.key else "")
        if field:
            place += f", field {field}"
        raise InvalidRegistration(f"{place}: {problem}; {fix}")


def join(field: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else key


def mapping(
    value: Any,
    where: Where,
    field: str,
    *,
    allowed: Collection[str],
    required: Collection[str] = (),
    example: str,
) -> Mapping[str, Any]:
    """A mapping whose keys are all known (with a hint for typos) and whose required keys are there."""
    if not isinstance(value, Mapping):
        where.fail(field, f"expected a mapping, got {describe(value)}", f"write it as {example}")
    for key in value:
        if not isinstance(key, str):
            where.fail(field, f"key {key!r} is not a string", f"use one of: {', '.join(allowed)}")
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean {close[0]}?" if close else f"the known keys are: {', '.join(allowed)}"
            where.fail(join(field, key), "unknown key", f"{hint} (typos are not ignored)")
    for key in required:
        if key not in value:
            where.fail(join(field, key), "missing", f"add it, e.g. {example}")
    return value


def string(value: Any, where: Where, field: str, *, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "an empty string" if isinstance(value, str) else describe(value)
        where.fail(field, f"expected a non-empty string, got {got}", f"write e.g. {example}")
    if "\x00" in value:
        where.fail(field, "contains a NUL character", "remove it")
    return value


def string_map(value: Any, where: Where, field: str, *, example: str) -> dict[str, str]:
    """A string-to-string mapping, such as CSI volumeAttributes or flexVolume options."""
    if not isinstance(value, Mapping):
        where.fail(field, f"expected a mapping of strings, got {describe(value)}", f"write e.g. {example}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            where.fail(
                join(field, str(key)),
                f"expected a string, got {describe(item)}",
                'quote the value, e.g. "true" or "1" (Kubernetes takes strings here)',
            )
        out[key] = item
    return out


def relative_path(value: Any, where: Where, field: str, *, allow_dot: bool, example: str) -> str:
    """A relative POSIX path that cannot climb out of the directory it is resolved against."""
    text = string(value, where, field, example=example)
    if text.startswith("/"):
        where.fail(field, f"{text!r} is absolute", f"write it relative, e.g. {example}")
    if ".." in text.split("/"):
        where.fail(field, f"{text!r} contains '..'", "a path may not climb out of its directory; remove '..'")
    normal = posixpath.normpath(text)
    if normal == "." and not allow_dot:
        where.fail(field, f"{text!r} names the directory itself", f"name a file, e.g. {example}")
    return normal


def label_value(value: Any, where: Where, field: str, *, what: str) -> str:
    if not isinstance(value, str):
        where.fail(field, f"expected a string, got {describe(value)}", f'quote it, e.g. "{value}"')
    if not _LABEL_VALUE.fullmatch(value):
        where.fail(
            field,
            f"{value!r} is not a valid {what}",
            "use 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    return value


def sha256(value: Any, where: Where, field: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else describe(value)
        where.fail(
            field,
            f"{shown} is not a sha256",
            "write the 64 hex digits `sha256sum FILE` prints, quoted, or leave sha256 out",
        )
    return value.lower()


def choice(value: Any, where: Where, field: str, *, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = repr(value) if isinstance(value, str) else describe(value)
        where.fail(field, f"{shown} is not allowed", f"use one of: {', '.join(choices)}")
    return value
