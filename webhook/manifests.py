"""Read and write the manifests the offline CLI works on: multi-document YAML or JSON, Lists.

Files are hostile until proven otherwise. PyYAML builds aliases as shared references, so a
"billion laughs" file is small in memory but expands when walked or printed as JSON; a file that
refers to itself never ends. Both are refused by counting the expanded size once, with sharing
remembered, before anything else looks at the objects.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from inferplane.errors import UserError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 100
MAX_NODES = 1_000_000


@dataclass(frozen=True)
class Document:
    obj: dict[str, Any]
    where: str  # "deploy.yaml document 2 (line 14)": how every message names it
    line: int


def read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def read_documents(path: str) -> list[Document]:
    """Every non-empty document of the file (`-` for stdin); raises UserError naming file and line."""
    return parse_documents(read_text(path), "stdin" if path == "-" else path)


def _size(value: Any, seen: dict[int, int], stack: set[int], depth: int, where: str) -> int:
    """Expanded node count; shared nodes are counted each time they appear but walked once."""
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key in stack:
        raise UserError(f"{where}: a YAML alias refers to itself; write the value out")
    if key in seen:
        return seen[key]
    if depth > MAX_DEPTH:
        raise UserError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a Kubernetes object")
    stack.add(key)
    children = value.values() if isinstance(value, dict) else value
    total = 1 + sum(_size(child, seen, stack, depth + 1, where) for child in children)
    stack.discard(key)
    seen[key] = total
    if total > MAX_NODES:
        raise UserError(f"{where}: expands to more than {MAX_NODES} values (YAML aliases?); refusing")
    return total


def parse_documents(text: str, source: str) -> list[Document]:
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UserError(f"{source}: {place}not valid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise UserError(f"{source}: nested too deeply to read; not a Kubernetes object") from exc
    documents = []
    for number, node in enumerate(nodes, start=1):
        if node is None:
            continue
        line = node.start_mark.line + 1
        where = f"{source} document {number} (line {line})"
        try:
            obj = _Loader("").construct_document(node)
        except yaml.YAMLError as exc:
            raise UserError(f"{where}: not valid YAML: {exc}") from exc
        except RecursionError as exc:
            raise UserError(f"{where}: nested too deeply to read; not a Kubernetes object") from exc
        if obj is None:
            continue
        _size(obj, {}, set(), 1, where)
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str) or "apiVersion" not in obj:
            raise UserError(f"{where}: not a Kubernetes object; expected a map with apiVersion and kind")
        documents.append(Document(obj, where, line))
    return documents


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (registration manifests stay readable), no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\r\t") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(objects: Iterable[Any]) -> str:
    return yaml.dump_all(list(objects), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def dump_json(objects: list[Any]) -> str:
    """One object as itself; several as a `kind: List`, as kubectl prints them."""
    body = objects[0] if len(objects) == 1 else {"apiVersion": "v1", "kind": "List", "items": objects}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
