"""AdmissionReview parsing refuses what the apiserver would never send, with the reason."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from inferplane.errors import BadRequest
from webhook.review import clean_warning, parse_review, respond


def review(**request: object) -> bytes:
    base: dict[str, object] = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "namespace": "team-a",
        "object": {"kind": "Pod", "metadata": {}},
    }
    base.update(request)
    envelope = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": base}
    return json.dumps(envelope).encode()


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "admissionReviewVersions"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no request"),
        (review(uid=""), "no uid"),
        (review(operation="PATCH"), "unknown operation"),
        (review(kind="Pod"), "no kind"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),
        (review(object={"a": nested(80)}), "deeper"),
    ],
)
def test_malformed_reviews_are_bad_requests_naming_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_review(body)


def test_namespace_falls_back_to_the_object_when_the_request_has_none() -> None:
    parsed = parse_review(review(namespace=None, object={"metadata": {"namespace": "old-api"}}))
    assert parsed.namespace == "old-api"


def test_a_response_echoes_version_kind_and_uid_and_pairs_patch_with_type() -> None:
    parsed = parse_review(review())
    allowed = orjson.loads(respond(parsed, allowed=True))
    assert allowed == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }
    patched = orjson.loads(respond(parsed, allowed=True, patch=[{"op": "add", "path": "/x", "value": 1}]))
    assert patched["response"]["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(patched["response"]["patch"]))
    assert ops == [{"op": "add", "path": "/x", "value": 1}]


def test_a_denial_carries_code_and_message_and_keeps_warnings() -> None:
    parsed = parse_review(review())
    body = orjson.loads(respond(parsed, allowed=False, message="no\nmodel", warnings=["w"]))
    assert body["response"]["status"] == {"code": 403, "reason": "Forbidden", "message": "no model"}
    assert body["response"]["warnings"] == ["w"]


def test_warnings_are_single_lines_of_at_most_120_characters() -> None:
    assert clean_warning("a\nb\tc") == "a b c"
    assert len(clean_warning("x" * 500)) == 120


def test_audit_keys_with_a_slash_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="without '/'"):
        respond(parse_review(review()), allowed=True, audit={"ml.example/model": "x"})
