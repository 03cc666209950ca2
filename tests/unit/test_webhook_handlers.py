"""The handlers as the server calls them: raw bytes in, an AdmissionReview or BadRequest out."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest

from inferplane.errors import BadRequest
from webhook.catalog import Catalog
from webhook.config import InjectionConfig
from webhook.handlers import mutate_pod, validate_workload

CONFIG = InjectionConfig()


def catalog() -> Catalog:
    c = Catalog()
    c.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "iris-3",
                "namespace": "team-a",
                "labels": {"ml.example/model-name": "iris", "ml.example/model-version": "3"},
            },
            "data": {"model.yaml": "storage: {pvc: {claimName: models}}\nfiles: [{path: m.pkl}]\n"},
        }
    )
    return c


def body(obj: Any, kind: str = "Pod", group: str = "", **request: Any) -> bytes:
    req = {
        "uid": "u-1",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "operation": "CREATE",
        "namespace": "team-a",
        "object": obj,
        **request,
    }
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "p-"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [{"name": "c"}]}}


def response(answer_body: bytes) -> dict[str, Any]:
    return orjson.loads(answer_body)["response"]


def test_a_pod_without_the_model_annotation_is_allowed_untouched() -> None:
    answer = mutate_pod(body(pod({"other": "x"})), catalog(), CONFIG)
    assert answer.outcome == "skipped" and answer.uid == "u-1"
    assert response(answer.body) == {"uid": "u-1", "allowed": True}


def test_an_opted_in_pod_gets_a_patch_and_audit_annotations() -> None:
    answer = mutate_pod(body(pod({"ml.example/model": "iris:3"})), catalog(), CONFIG)
    result = response(answer.body)
    assert answer.outcome == "mutated" and result["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(result["patch"]))
    assert result["auditAnnotations"] == {
        "models": "iris:3",
        "instance-type": "defaultinstancetype",
        "container": "c",
    }


def test_a_denial_is_allowed_false_with_the_message() -> None:
    answer = mutate_pod(body(pod({"ml.example/model": "iris:4"})), catalog(), CONFIG)
    assert answer.outcome == "denied"
    assert response(answer.body)["status"]["message"] == (
        'model "iris:4" not found in namespace "team-a"; registered: iris:3'
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (body(pod(), kind="Deployment", group="apps"), "takes Pods, got apps/Deployment"),
        (body([1, 2]), "not a Pod"),
        (body({"kind": "Service"}), "not a Pod"),
        (
            body({"metadata": {"annotations": {"ml.example/model": "iris:3"}}, "spec": []}),
            "spec: expected a map",
        ),
        (body({"metadata": {"annotations": {"ml.example/model": 3}}, "spec": {}}), "expected a string"),
    ],
)
def test_objects_that_are_not_pods_are_bad_requests(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        mutate_pod(raw, catalog(), CONFIG)


def test_deeply_nested_objects_do_not_blow_the_stack() -> None:
    # 200 levels: within JSON parsers' limits, far beyond any Pod and Python's comfort when recursing.
    raw = body({**pod({"ml.example/model": "iris:3"}), "extra": "DEEP"})
    raw = raw.replace(b'"DEEP"', b'{"a":' * 200 + b"1" + b"}" * 200)
    with pytest.raises(BadRequest, match="deeper than"):
        mutate_pod(raw, catalog(), CONFIG)
    with pytest.raises(BadRequest, match="not JSON"):  # orjson stops at 1024 levels by itself
        mutate_pod(b'{"a":' * 5000 + b"1" + b"}" * 5000, catalog(), CONFIG)


@pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
def test_other_operations_pass_untouched(operation: str) -> None:
    answer = mutate_pod(body(pod({"ml.example/model": "iris:4"}), operation=operation), catalog(), CONFIG)
    assert response(answer.body) == {"uid": "u-1", "allowed": True}


def test_validate_workload_skips_kinds_it_does_not_know_and_never_patches() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    answer = validate_workload(body(service, kind="Service"), catalog(), CONFIG)
    assert answer.outcome == "skipped"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "template": {"metadata": {"annotations": {"ml.example/model": "iris:3"}}, "spec": pod()["spec"]}
        },
    }
    result = response(
        validate_workload(body(deployment, kind="Deployment", group="apps"), catalog(), CONFIG).body
    )
    assert result == {"uid": "u-1", "allowed": True}


def test_validate_workload_refuses_a_template_that_is_not_a_pod_template() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": 3},
    }
    with pytest.raises(BadRequest, match=r"spec\.template: a Deployment needs a pod template here"):
        validate_workload(body(deployment, kind="Deployment", group="apps"), catalog(), CONFIG)
