"""Endpoint keys: `Authorization: Bearer <key>`, either of the endpoint's two keys accepted.

Two keys make rotation a non-event: clients move to the secondary, the primary is replaced, clients
move back; at no point is a valid client refused. Comparison is constant-time so a key cannot be
guessed byte by byte from response times.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from router.settings import AUTH_NONE
from router.table import Endpoint


@dataclass(frozen=True)
class AuthFailure:
    status: int
    message: str


def check(endpoint: Endpoint, authorization: bytes | None) -> AuthFailure | None:
    """None when the request may pass; otherwise the status and the sentence the caller reads."""
    if endpoint.auth == AUTH_NONE:
        return None
    if not endpoint.keys:
        return AuthFailure(
            503,
            f"endpoint '{endpoint.name}' requires a key but has none configured: create the Secret "
            f"'{endpoint.name}-keys' with data keys 'primary' and 'secondary'",
        )
    if authorization is None:
        return AuthFailure(
            401, f"endpoint '{endpoint.name}' requires a key: send the header 'Authorization: Bearer <key>'"
        )
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return AuthFailure(
            401, "the 'Authorization' header must be 'Bearer <key>' (with the word Bearer and a space)"
        )
    token = token.strip()
    matched = False
    for key in endpoint.key_bytes:
        matched |= hmac.compare_digest(token, key)
    if not matched:
        return AuthFailure(
            401,
            f"the key in the 'Authorization' header is not valid for endpoint '{endpoint.name}' "
            "(use its primary or secondary key)",
        )
    return None
