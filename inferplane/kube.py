"""A raw, fast client for the Kubernetes API: bytes in, bytes out, auth and TLS from the official client.

The official client's generated models cost milliseconds per object to build; the extender's caches
hold 150,000 pods, so our readers parse the raw JSON with orjson instead. The official client is kept
for what it does well and we should not redo: reading in-cluster service-account config (with token
rotation) and kubeconfig files (client certs, exec plugins, proxies), and building the urllib3 pool
with that TLS setup.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import RESTClientObject

from inferplane.errors import UserError

CONNECT_TIMEOUT = 10.0
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# What every server that watches the cluster can do about a missing one; a command with another way
# out (the webhook's --catalog DIR) passes its own `hint` to `connect`.
CONNECT_HINT = "run it in a pod, or pass --kubeconfig FILE"


class ApiStatusError(Exception):
    """The apiserver answered with an HTTP error; `code` and the Status `reason`/`message` say why."""

    def __init__(self, method: str, path: str, code: int, reason: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {code} {reason}: {message}".rstrip(": "))
        self.code = code
        self.reason = reason
        self.message = message


class KubeClient:
    """Issues raw requests to one apiserver; safe to share between threads (urllib3 pools are)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        self._pool = RESTClientObject(configuration).pool_manager

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "inferplane"}
        # auth_settings() calls the configuration's refresh hook: a rotated in-cluster token or an
        # expired exec-plugin token is renewed here.
        for setting in self.configuration.auth_settings().values():
            if setting["in"] == "header" and setting["value"]:
                headers[setting["key"]] = setting["value"]
        return headers

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; `body` is bytes as given or any other value encoded as JSON.

        Raises ApiStatusError for an HTTP error status (after reading its Status body), and urllib3's
        errors for transport failures. Never retried here: whether a POST may be sent again is the
        caller's to decide (a Binding may not, a GET may).
        """
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        url = f"{self.host}{path}" + (f"?{urlencode(query)}" if query else "")
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = content_type
            if not isinstance(body, bytes):
                body = orjson.dumps(body)
        response = self._pool.request(
            method,
            url,
            body=body,
            headers=headers,
            preload_content=not stream,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout),
            retries=False,
        )
        if response.status >= 400:
            data = response.data  # reads the rest of a streamed body too
            response.release_conn()
            raise _status_error(method, path, response.status, data)
        return response

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, timeout: float, stream: bool = False
    ) -> urllib3.BaseHTTPResponse:
        """GET `path`; with `stream` the body is left unread for the caller to iterate (a watch)."""
        return self.request("GET", path, params, timeout=timeout, stream=stream)

    def post(
        self, path: str, body: Any, params: Mapping[str, Any] | None = None, *, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        """POST (create) `body` to the collection or subresource at `path`."""
        return self.request("POST", path, params, body=body, timeout=timeout)

    def put(
        self, path: str, body: Any, params: Mapping[str, Any] | None = None, *, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        """PUT (replace) the object at `path`; its metadata.resourceVersion makes it conditional."""
        return self.request("PUT", path, params, body=body, timeout=timeout)

    def patch(
        self,
        path: str,
        body: Any,
        params: Mapping[str, Any] | None = None,
        *,
        content_type: str = MERGE_PATCH,
        timeout: float,
    ) -> urllib3.BaseHTTPResponse:
        """PATCH the object at `path`: a JSON merge patch unless `content_type` names another kind
        (JSON_PATCH for a list of operations, STRATEGIC_MERGE_PATCH for built-in types' list merging)."""
        return self.request("PATCH", path, params, body=body, content_type=content_type, timeout=timeout)

    def delete(
        self, path: str, params: Mapping[str, Any] | None = None, *, body: Any = None, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        """DELETE the object at `path`; `body` may carry DeleteOptions (preconditions, propagation)."""
        return self.request("DELETE", path, params, body=body, timeout=timeout)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _status_error(method: str, path: str, code: int, body: bytes) -> ApiStatusError:
    reason, message = "", body[:200].decode(errors="replace")
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict):
        reason = str(status.get("reason", ""))
        message = str(status.get("message", message))
    return ApiStatusError(method, path, code, reason, message)


def connect(
    kubeconfig: str | None = None, context: str | None = None, *, hint: str = CONNECT_HINT
) -> KubeClient:
    """The cluster we run in (its service account), or the one a kubeconfig names.

    Order: an explicit `kubeconfig`; then in-cluster config when running in a pod; then $KUBECONFIG
    or ~/.kube/config, as kubectl does. Raises UserError saying what was tried and ending with
    `hint`: what the command's user can do about it.
    """
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig is not None:
            if not os.path.isfile(kubeconfig):
                raise UserError(f"--kubeconfig {kubeconfig}: no such file")
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration,
                persist_config=False,
            )  # fmt: skip
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                context=context, client_configuration=configuration, persist_config=False
            )
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise UserError(
            f"cannot reach a cluster: no in-cluster service account and no usable kubeconfig at {where} "
            f"({exc}); {hint}"
        ) from exc
    return KubeClient(configuration)


def for_host(host: str, token: str | None = None, ca_file: str | None = None) -> KubeClient:
    """A client for an apiserver at `host` (tests, and tools that already hold a token)."""
    configuration = k8s_client.Configuration()
    configuration.host = host
    if token:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    if ca_file:
        configuration.ssl_ca_cert = ca_file
    return KubeClient(configuration)
