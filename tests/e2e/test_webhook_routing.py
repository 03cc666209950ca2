"""The apiserver reaches a webhook registered by Service, served from loopback.

Our chart registers its webhook with ``clientConfig.service``, as production
clusters require. This pins down the path the webhook e2e tests depend on:
Service ClusterIP -> the apiserver's egress proxy -> 127.0.0.1
(``route_service_to_loopback``), with TLS verified against
``<service>.<namespace>.svc`` and the configured caBundle.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inferplane.localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e

DENIAL = "denied by the e2e routing probe"


class _ProbeServer(ThreadingHTTPServer):
    paths: list[str]


class _DenyAll(BaseHTTPRequestHandler):
    """Answers every AdmissionReview with a denial and records the request path."""

    server: _ProbeServer

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.paths.append(self.path)
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": False,
                "status": {"code": 403, "message": DENIAL},
            },
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def probe(control_plane: ControlPlane, fresh_namespace: str) -> Iterator[_ProbeServer]:
    """A TLS admission server on loopback with a cert for probe.<ns>.svc."""
    cert = control_plane.ca.issue(
        f"probe-{fresh_namespace}", "probe", dns_names=(f"probe.{fresh_namespace}.svc",), server=True
    )
    server = _ProbeServer(("127.0.0.1", 0), _DenyAll)
    server.paths = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_service_webhook_on_loopback_is_called_over_tls(
    control_plane: ControlPlane, fresh_namespace: str, probe: _ProbeServer
) -> None:
    ns = fresh_namespace
    cluster_ip = control_plane.route_service_to_loopback(ns, "probe", probe.server_address[1])
    config_name = f"e2e-routing-{ns}"
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": config_name},
        "webhooks": [
            {
                "name": "routing.e2e.inferplane.test",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "clientConfig": {
                    "service": {"namespace": ns, "name": "probe", "path": "/validate", "port": 443},
                    "caBundle": base64.b64encode(control_plane.ca.cert_pem).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                    }
                ],
                # Only this test's namespace and labelled objects: the
                # cluster is shared by the whole session.
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "objectSelector": {"matchLabels": {"e2e-routing": "deny"}},
            }
        ],
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(webhook))
    try:

        def configmap(name: str, labels: dict[str, str]) -> str:
            return json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                }
            )

        # The apiserver learns of new webhook configurations asynchronously.
        def denied() -> bool:
            dry = control_plane.kubectl(
                "apply",
                "--dry-run=server",
                "-f",
                "-",
                input=configmap("probe", {"e2e-routing": "deny"}),
                check=False,
            )
            return dry.returncode != 0 and DENIAL in dry.stderr

        control_plane.wait_for(denied, timeout=30, message="the webhook to deny a labelled ConfigMap")
        result = control_plane.kubectl(
            "apply", "-f", "-", input=configmap("denied", {"e2e-routing": "deny"}), check=False
        )
        assert result.returncode != 0
        assert DENIAL in result.stderr
        control_plane.kubectl("apply", "-f", "-", input=configmap("allowed", {}))
        assert probe.paths
        assert control_plane.egress is not None
        assert any(e.startswith(f"CONNECT {cluster_ip}:443 ->") for e in control_plane.egress.events)
        assert all(p.startswith("/validate?timeout=5s") for p in probe.paths), probe.paths
    finally:
        control_plane.kubectl("delete", "validatingwebhookconfiguration", config_name, "--ignore-not-found")
