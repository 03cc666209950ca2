"""AdmissionReview in, AdmissionReview out: the whole webhook minus HTTP.

The HTTP server calls these with the raw body; a malformed review raises BadRequest (HTTP 400).
Everything else is an answer: allowed with or without a patch, or denied with the sentence the
user will read in kubectl. There are no side effects, so a dryRun review gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferplane.errors import BadRequest
from webhook.catalog import Catalog
from webhook.config import InjectionConfig
from webhook.inject.problems import FieldDenied, Malformed
from webhook.mutate import mutate
from webhook.patch import diff
from webhook.review import Review, parse_review, respond
from webhook.workload import INJECTABLE, POD, TEMPLATE_PATHS, check_object, template_of


@dataclass(frozen=True)
class Answer:
    body: bytes  # the AdmissionReview to send back with HTTP 200
    uid: str  # the review's uid, for logs
    outcome: str  # for metrics: mutated | unchanged | skipped | denied | allowed | warned


def _admitted(review: Review) -> bool:
    """Only object CREATEs (and, for workloads, UPDATEs) are ours; the rest pass untouched."""
    return not review.sub_resource and review.operation in ("CREATE", "UPDATE")


def mutate_pod(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    review = parse_review(body)
    if review.operation != "CREATE" or review.sub_resource:
        return Answer(respond(review, allowed=True), review.uid, "skipped")
    if review.kind != POD or review.group:
        raise BadRequest(
            f"/mutate-pod takes Pods, got {review.group or 'core'}/{review.kind}; fix the webhook rules"
        )
    pod = review.object
    if not isinstance(pod, dict) or pod.get("kind", POD) != POD:
        raise BadRequest("AdmissionReview request.object is not a Pod")
    try:
        mutation = mutate(pod, namespace=review.namespace, catalog=catalog, config=config)
    except FieldDenied as exc:
        return Answer(respond(review, allowed=False, message=exc.message), review.uid, "denied")
    except Malformed as exc:
        raise BadRequest(f"request.object is not a valid Pod: {exc}") from exc
    if mutation is None:
        return Answer(respond(review, allowed=True), review.uid, "skipped")
    patch = diff(pod, mutation.pod)
    answer = respond(review, allowed=True, patch=patch, warnings=mutation.warnings, audit=mutation.audit)
    return Answer(answer, review.uid, "mutated" if patch else "unchanged")


def _template_unchanged(review: Review) -> bool:
    """An UPDATE that leaves the pod template alone (scaling, a controller's annotation) is not
    re-judged: a model deleted since must not block a Deployment's own controller."""
    old = review.old_object
    return (
        review.operation == "UPDATE"
        and isinstance(old, dict)
        and old.get("kind") == review.object.get("kind")
        and template_of(old) == template_of(review.object)
    )


def validate_workload(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    review = parse_review(body)
    obj: Any = review.object
    if not _admitted(review) or review.kind not in INJECTABLE:
        return Answer(respond(review, allowed=True), review.uid, "skipped")
    if not isinstance(obj, dict) or obj.get("kind", review.kind) != review.kind:
        raise BadRequest(f"AdmissionReview request.object is not a {review.kind}")
    obj = {"kind": review.kind, **obj}
    if review.kind in TEMPLATE_PATHS and _template_unchanged(review):
        return Answer(respond(review, allowed=True), review.uid, "allowed")
    try:
        checked = check_object(obj, namespace=review.namespace, catalog=catalog, config=config)
    except Malformed as exc:
        raise BadRequest(f"request.object is not a valid {review.kind}: {exc}") from exc
    # Warnings travel without the field path: kubectl shows ~120 characters of each, and every
    # warning names its subject; a denial's message is not cut, so it gets the path.
    warnings = [f.message for f in checked.findings if f.severity == "warning"]
    denied = checked.denied
    if denied is not None and denied.reference and config.unknown_reference == "warn":
        warnings.append(denied.message)
        denied = None
    if denied is not None:
        return Answer(
            respond(review, allowed=False, message=denied.line(), warnings=warnings), review.uid, "denied"
        )
    return Answer(
        respond(review, allowed=True, warnings=warnings), review.uid, "warned" if warnings else "allowed"
    )
