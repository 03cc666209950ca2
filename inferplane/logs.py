"""One JSON object per log line, for every server and for gunicorn's own error and access logs.

A log shipper (Loki, Fluent Bit, Cloud Logging) can then index fields such as the AdmissionReview
`uid`, which the Kubernetes docs name as the key for matching a webhook's log line to the apiserver's.
Request-scoped fields are bound once with `bound(uid=...)` and land on every line logged inside that
block, including lines from the pure handlers that know nothing about HTTP.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TextIO

import orjson

# Fields bound for the current request (gthread runs each request on one thread, so a ContextVar
# scopes them exactly to that request).
_bound: ContextVar[Mapping[str, Any]] = ContextVar("inferplane_log_fields", default=MappingProxyType({}))

# The attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# The WSGI environ key through which an app hands fields (a dict) to the access log line.
ACCESS_FIELDS_KEY = "inferplane.access_fields"


def _default(value: object) -> str:
    """orjson calls this for values it cannot serialize; a log line must never fail to print."""
    return repr(value)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...bound fields, ...extra}` as one line.

    Written here rather than taken from python-json-logger: that library is a thin layer over the
    same stdlib hooks, and ours must merge the ContextVar fields, which it does not do.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_bound.get())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` to every line logged in this block (nested blocks add to the outer ones)."""
    token = _bound.set({**_bound.get(), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Send the root logger's records, as JSON, to `stream` (stderr); safe to call again."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_inferplane", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._inferplane = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def read_lines(data: bytes | str) -> list[dict[str, Any]]:
    """Log output back as dicts, one per JSON-object line (other lines are skipped): for the tests
    and benchmarks that check what a server logged."""
    found = []
    for line in data.splitlines():
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found
