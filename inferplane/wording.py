"""Words shared by every message about a value of the wrong shape.

The CLI, the webhook and the CRD checks all tell a person "expected X, got Y" about YAML they wrote;
they describe Y the same way, in YAML's terms rather than Python's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(value: Any) -> str:
    """How a YAML reader would call `value`: "a list", "a number (42)", "nothing (null)"."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a map"
    return type(value).__name__
