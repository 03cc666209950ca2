"""HTTP/1.1 bytes shared by the client-facing server and the upstream client: framing and heads."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

# Connection-level headers: they describe one hop, so a proxy never forwards them (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)

CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_STATUS_LINES: dict[int, bytes] = {}

Headers = list[tuple[bytes, bytes]]


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode())
    return line


def chunk(data: bytes) -> list[bytes]:
    """One chunk of a chunked body, as pieces for `writelines` (no copy of `data`)."""
    return [b"%x\r\n" % len(data), data, CRLF]


def head(first_line: bytes, headers: Headers) -> bytes:
    parts = [first_line]
    for name, value in headers:
        parts += (name, b": ", value, CRLF)
    parts.append(CRLF)
    return b"".join(parts)


def write_piece(transport: asyncio.Transport, data: bytes, chunked: bool) -> None:
    """One piece of a body, framed as a chunk when the body is chunked."""
    if chunked:
        transport.writelines(chunk(data))
    else:
        transport.write(data)
