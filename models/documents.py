"""Strict YAML and JSON loading for registration keys.

PyYAML's safe loader keeps the last of two equal keys and expands aliases; both hide mistakes (a
second `files:` silently replacing the first) or invite abuse (alias bombs), and a registration
needs neither. Errors carry the line and column so the user can find the spot.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from models.fields import Where

# The apiserver refuses a ConfigMap over 1 MiB, so no real registration key is larger; refusing
# early keeps a hostile file from costing the parser time and memory.
MAX_DOCUMENT_BYTES = 1024 * 1024


# A registration is a handful of levels deep; stopping far below Python's recursion limit keeps a
# hostile `[[[[...` from costing seconds before it fails.
MAX_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, duplicate keys and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not supported in a registration; write the value out",
                problem_mark=event.start_mark,
            )
        if self._depth >= MAX_DEPTH:
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_DEPTH} levels deep; a registration is a few levels deep",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: let the base class produce its own error
                break
            if duplicate:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r}; keep one",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _check_size(text: str, where: Where) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        where.fail("", f"is {size} bytes", "a registration key holds at most 1 MiB (the ConfigMap limit)")


def load_yaml(text: str, where: Where) -> Any:
    _check_size(text, where)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        spot = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        where.fail("", f"does not parse as YAML: {spot}{problem}", "fix the YAML at that spot")
    except yaml.YAMLError as exc:
        where.fail("", f"does not parse as YAML: {exc}", "fix the YAML")
    except RecursionError:
        where.fail("", "is nested too deeply to parse", "a registration is a few levels deep; flatten it")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}; keep one")
        out[key] = value
    return out


def load_json(text: str, where: Where) -> Any:
    _check_size(text, where)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        where.fail(
            "", f"does not parse as JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}", "fix the JSON"
        )
    except ValueError as exc:
        where.fail("", f"does not parse as JSON: {exc}", "fix the JSON")
    except RecursionError:
        where.fail("", "is nested too deeply to parse", "a registration is a few levels deep; flatten it")
