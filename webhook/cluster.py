"""Keeps the webhook's Catalog in step with the cluster: InstanceTypes and registration ConfigMaps.

Two list+watch reflectors, one per kind; the catalog is ready once both have listed, and stays ready
afterwards: a webhook that turns unready when the apiserver blips would empty its Service, and with
`failurePolicy: Ignore` every pod created meanwhile would miss its model. Serving from a cache a few
seconds stale is the lesser harm.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from inferplane.kube import KubeClient
from inferplane.reflector import Backoff, Reflector
from instance_types.instance_type import GROUP, KIND, VERSION
from models.registration import NAME_LABEL
from webhook.catalog import CONFIGMAP_KIND, Catalog

log = logging.getLogger(__name__)

INSTANCE_TYPES_PATH = f"/apis/{GROUP}/{VERSION}/instancetypes"
CONFIGMAPS_PATH = "/api/v1/configmaps"
CRD_MISSING = (
    "the InstanceType CRD (instancetypes.ml.example) is not installed: install the inferplane chart, "
    "or kubectl apply -f instance_types/crd.yaml; readiness stays false until it is"
)


class ClusterFeed:
    """Two reflectors feeding one Catalog; `ready` is set once both have listed."""

    def __init__(
        self,
        client: KubeClient,
        catalog: Catalog,
        *,
        backoff: Backoff | None = None,
        watch_timeout: int = 300,
    ) -> None:
        backoff = backoff or Backoff()
        self.catalog = catalog
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._listed: set[str] = set()
        self.reflectors = (
            Reflector(
                client, INSTANCE_TYPES_PATH,
                on_replace=lambda items: self._replace(KIND, items),
                on_event=lambda kind, obj: self._event(KIND, kind, obj),
                backoff=backoff, watch_timeout=watch_timeout, missing_hint=CRD_MISSING,
            ),
            Reflector(
                client, CONFIGMAPS_PATH, label_selector=NAME_LABEL,
                on_replace=lambda items: self._replace(CONFIGMAP_KIND, items),
                on_event=lambda kind, obj: self._event(CONFIGMAP_KIND, kind, obj),
                backoff=backoff, watch_timeout=watch_timeout,
            ),
        )  # fmt: skip

    def start(self) -> None:
        """Start both watches (in a gunicorn worker: after the fork)."""
        for reflector in self.reflectors:
            reflector.start()

    def stop(self) -> None:
        for reflector in self.reflectors:
            reflector.stop()

    def status(self) -> dict[str, Any]:
        """Per resource: listed or not, and seconds since the last list, event or bookmark."""
        return {
            r.path: {"synced": r.synced.is_set(), "last_sync_age_seconds": r.last_sync_age()}
            for r in self.reflectors
        }

    def _replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        # Items of a LIST of a built-in type carry no `kind`; the catalog sorts objects by it.
        for item in items:
            item.setdefault("kind", kind)
        self.catalog.replace_all(kind, items)
        with self._lock:
            self._listed.add(kind)
            if len(self._listed) == len(self.reflectors) and not self.ready.is_set():
                self.catalog.ready = True
                self.ready.set()
                log.info("catalog synced", extra={"instance_types": len(self.catalog.instance_type_names())})

    def _event(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        obj.setdefault("kind", kind)
        if event == "DELETED":
            self.catalog.remove(obj)
        else:
            self.catalog.put(obj)
