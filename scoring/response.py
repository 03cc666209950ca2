"""What `run()` returned, turned into the HTTP answer the caller gets.

Azure's entry-script contract: `run()` returns something JSON can carry (the usual case), or a
response it builds itself when it needs a status code, headers or a non-JSON body. Azure users
write `AMLResponse(message, status_code, json_str=...)`; ours takes the same positional arguments,
so a script moved over only changes its import line.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"


class ResultError(Exception):
    """`run()` returned something that cannot be sent; the message says what and how to fix it."""


@dataclass(frozen=True)
class AMLResponse:
    """A response built by `run()`: `return AMLResponse({"error": "no rows"}, 422)`.

    `body`: str (sent as text, or as JSON when `json_str` is true, as in Azure: the string already
    holds JSON), bytes (sent as they are), anything else (encoded as JSON).
    `headers` may set Content-Type, which then wins over the guess from the body.
    """

    body: Any = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    json_str: bool = False


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, ready for the wire."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def with_headers(self, extra: list[tuple[str, str]]) -> Reply:
        return Reply(self.status, self.headers + tuple(extra), self.body)


def _default(value: Any) -> Any:
    """Types orjson does not know but model code returns all the time (pandas frames and series,
    numpy values beside OPT_SERIALIZE_NUMPY, Decimal, sets)."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        try:
            return value.to_dict(orient="records")
        except TypeError:
            return value.to_dict()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__module__}.{type(value).__qualname__} is not JSON serializable")


def to_json(value: Any) -> bytes:
    """JSON bytes for `value`; ResultError names the first value that has no JSON form."""
    try:
        return orjson.dumps(
            value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )
    except TypeError as exc:
        raise ResultError(f"run() returned a value that is not JSON: {exc}") from None


def json_reply(status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, (("Content-Type", JSON_TYPE), *headers), to_json(value))


def error_reply(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Every error we answer has this one shape: `{"error": "<sentence>"}`."""
    return json_reply(status, {"error": message}, headers)


def _checked_headers(headers: Any) -> list[tuple[str, str]]:
    if not isinstance(headers, Mapping):
        raise ResultError(
            f"AMLResponse headers must be a mapping of str to str, not {type(headers).__name__}"
        )
    out = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ResultError(f"AMLResponse header {name!r}: names and values must be str")
        if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
            raise ResultError(f"AMLResponse header {name!r}: not a valid HTTP header")
        out.append((name, value))
    return out


def encode_result(result: Any) -> Reply:
    """The answer for `run()`'s return value: JSON with 200, or the AMLResponse as the script built it."""
    if not isinstance(result, AMLResponse):
        return json_reply(200, result)
    status = result.status
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ResultError(f"AMLResponse status {status!r}: give an HTTP status code from 100 to 599")
    headers = _checked_headers(result.headers)
    body = result.body
    if isinstance(body, bytes):
        content_type, data = BYTES_TYPE, body
    elif isinstance(body, str):
        content_type, data = (JSON_TYPE if result.json_str else TEXT_TYPE), body.encode()
    else:
        content_type, data = JSON_TYPE, to_json(body)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.insert(0, ("Content-Type", content_type))
    return Reply(status, tuple(headers), data)
