"""AdmissionReview in, AdmissionReview out. (Interface stub: the webhook-core owner fills it in.)

The HTTP server calls these with the raw body; a malformed review raises BadRequest (HTTP 400)."""

from __future__ import annotations

from dataclasses import dataclass

from webhook.catalog import Catalog
from webhook.config import InjectionConfig


@dataclass(frozen=True)
class Answer:
    body: bytes  # the AdmissionReview to send back with HTTP 200
    uid: str  # the review's uid, for logs
    outcome: str  # for metrics: mutated | unchanged | skipped | denied | allowed | warned


def mutate_pod(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    raise NotImplementedError


def validate_workload(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
    raise NotImplementedError
