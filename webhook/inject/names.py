"""Deterministic names for what we inject: DNS-1123 labels of at most 63 characters.

Names must be the same on every pass (idempotence) and must not depend on time or chance. A
readable name is used when it is exact; when cleaning it up lost information, or it is too long,
a hash of the exact parts is appended so two different models can never share a name.
"""

from __future__ import annotations

import functools
import hashlib
import re

MAX_LABEL = 63
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _clean(part: str) -> str:
    return _DASHES.sub("-", _INVALID.sub("-", part.lower())).strip("-")


def hashed(readable: str, exact: str) -> str:
    suffix = hashlib.sha256(exact.encode()).hexdigest()[:8]
    return f"{readable[: MAX_LABEL - 9].rstrip('-')}-{suffix}"


@functools.lru_cache(maxsize=4096)
def dns_label(*parts: str) -> str:
    """`inferplane`, `model`, `Iris_v2`, `3` -> `inferplane-model-iris-v2-3-<hash>` (lossy, so hashed)."""
    cleaned = [_clean(part) for part in parts]
    readable = "-".join(part for part in cleaned if part)
    exact = all(c == p for c, p in zip(cleaned, parts, strict=True))
    if exact and len(readable) <= MAX_LABEL and DNS_LABEL.match(readable):
        return readable
    return hashed(readable or "x", "/".join(parts))
