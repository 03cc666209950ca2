"""AdmissionReview v1 on the wire: parse a request strictly, build a response the apiserver accepts.

The apiserver decodes responses case-sensitively and checks the apiVersion, kind and uid it sent
(wire.md A.4), so every answer echoes them. Patch and patchType travel together or not at all.
Warnings are cut to 120 characters without control characters (the apiserver drops a warning with
a newline); audit annotation keys must not contain "/" (the apiserver adds `<webhook name>/`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from inferplane.errors import BadRequest
from webhook.patch import Op, encode

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_DEPTH = 64  # a Pod is nowhere near this deep; deeper bodies are hostile
MAX_WARNING = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_AUDIT_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class Review(NamedTuple):
    """One parsed request; a tuple rather than a frozen dataclass, cheaper to make per review."""

    uid: str
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    kind: str  # request.kind.kind, e.g. "Pod"
    group: str  # request.kind.group, "" for core
    namespace: str  # request.namespace, else object.metadata.namespace, else ""
    sub_resource: str
    dry_run: bool
    object: Any  # request.object (None for DELETE)
    old_object: Any


def _depth_ok(value: Any, limit: int) -> bool:
    """Level by level, so a hostile body cannot exhaust the stack of the code that checks it
    (and three times faster than a stack of (node, depth) pairs)."""
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(limit):
        deeper = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        if not deeper:
            return True
        level = deeper
    return not level


def parse_review(body: bytes) -> Review:
    """Raises BadRequest naming what is wrong with the body."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("body is not an AdmissionReview: expected a JSON object")
    if raw.get("apiVersion") != API_VERSION or raw.get("kind") != KIND:
        raise BadRequest(
            f"body is not an {API_VERSION} {KIND} (got apiVersion {raw.get('apiVersion')!r}, "
            f"kind {raw.get('kind')!r}); register the webhook with admissionReviewVersions: [v1]"
        )
    request = raw.get("request")
    if not isinstance(request, dict):
        raise BadRequest("AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadRequest("AdmissionReview request has no uid")
    operation = request.get("operation")
    if operation not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise BadRequest(f"AdmissionReview request has an unknown operation {operation!r}")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise BadRequest("AdmissionReview request has no kind")
    if not _depth_ok(raw, MAX_DEPTH):
        raise BadRequest(f"AdmissionReview is nested deeper than {MAX_DEPTH} levels")
    obj = request.get("object")
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    namespace = request.get("namespace") or (metadata.get("namespace") if isinstance(metadata, dict) else "")
    return Review(
        uid=uid,
        operation=operation,
        kind=kind["kind"],
        group=kind.get("group") or "",
        namespace=namespace if isinstance(namespace, str) else "",
        sub_resource=request.get("subResource") or "",
        dry_run=request.get("dryRun") is True,
        object=obj,
        old_object=request.get("oldObject"),
    )


@functools.lru_cache(maxsize=64)  # our handful of keys, checked once each
def _audit_key_ok(key: str) -> bool:
    return _AUDIT_KEY.match(key) is not None


def clean_warning(text: str) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= MAX_WARNING else text[: MAX_WARNING - 1] + "…"


def respond(
    review: Review,
    *,
    allowed: bool,
    message: str = "",
    patch: Sequence[Op] = (),
    warnings: Sequence[str] = (),
    audit: Mapping[str, str] | None = None,
) -> bytes:
    response: dict[str, Any] = {"uid": review.uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": _CONTROL.sub(" ", message)}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode(list(patch))
    if warnings:  # most answers have none: skips building three empty collections
        cleaned = [w for w in dict.fromkeys(clean_warning(w) for w in warnings) if w]
        if cleaned:
            response["warnings"] = cleaned
    if audit:
        if not all(map(_audit_key_ok, audit)):
            bad = [key for key in audit if not _audit_key_ok(key)]
            raise ValueError(f"audit annotation keys must be qualified names without '/': {bad}")
        response["auditAnnotations"] = dict(audit)
    return orjson.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response})
