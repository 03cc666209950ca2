"""Binding a pod to the node the scheduler chose, so the extender learns of it at once.

Why the extender binds (`bindVerb`) instead of the scheduler's DefaultBinder: the scheduler places
the next pod as soon as it has *assumed* the previous one, long before the binding reaches our
watch; without this, a Deployment scaled from 0 to 8 would have its replicas counted on no node and
bin-packed or spread as if the others were not there. Binding here, we count the pod on its node in
the same moment the binding succeeds; the watch event that follows finds the record already there.
"""

from __future__ import annotations

from inferplane.errors import UserError
from inferplane.kube import ApiStatusError, KubeClient

BIND_TIMEOUT = 10.0


class BindError(UserError):
    """The apiserver refused the binding; the message is the scheduler's (and the pod's) to read."""


class Binder:
    def __init__(self, client: KubeClient) -> None:
        self._client = client

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """POST the Binding the DefaultBinder would; the pod's UID is a precondition."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, **({"uid": uid} if uid else {})},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/binding"
        try:
            self._client.post(path, body, timeout=BIND_TIMEOUT)
        except ApiStatusError as exc:
            raise BindError(f"binding {namespace}/{name} to {node}: HTTP {exc.code}: {exc.message}") from exc
