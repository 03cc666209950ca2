"""`inferplane webhook` as the apiserver meets it: a real process under gunicorn, HTTPS on loopback,
reviews posted by a client that verifies the serving certificate against its CA."""

from __future__ import annotations

import base64
import signal
import socket
import ssl
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import CertPair, ServerProcess, ThrowawayCA, served_certificate_serial
from prometheus_client.parser import text_string_to_metric_families

CATALOG = """\
apiVersion: ml.example/v1alpha1
kind: InstanceType
metadata: {name: cpu-small}
spec:
  resources:
    requests: {cpu: 500m, memory: 1Gi}
    limits: {cpu: "1", memory: 2Gi}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: iris-3
  namespace: team-a
  labels: {ml.example/model-name: iris, ml.example/model-version: "3"}
data:
  model.yaml: |
    storage:
      pvc: {claimName: models, subPath: iris/3}
    files:
      - {path: outputs/model.json, containerPath: model.json}
"""


def pod_review(uid: str = "0f9c1b52-aaaa-4d2e-9a51-000000000001", model: str | None = "iris:3",
               instance_type: str | None = None) -> dict[str, Any]:  # fmt: skip
    annotations = {}
    if model:
        annotations["ml.example/model"] = model
    if instance_type:
        annotations["ml.example/instance-type"] = instance_type
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "iris-7d9f-", "namespace": "team-a", "annotations": annotations},
        "spec": {"containers": [{"name": "score", "image": "registry.local/iris:1"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def post(server: ServerProcess, path: str, body: bytes, content_type: str = "application/json"):
    return server.session.post(
        server.url(path), data=body, headers={"Content-Type": content_type}, timeout=10
    )


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "catalog.yaml").write_text(CATALOG)
    return folder


@pytest.fixture
def pair(tls: ThrowawayCA, request: pytest.FixtureRequest) -> CertPair:
    return tls.issue(f"webhook-{request.node.name}")


@pytest.fixture(scope="module")
def webhook(start_module_server, tls: ThrowawayCA, catalog_dir: Path) -> ServerProcess:
    """One server for the tests that leave it as they found it."""
    args = ["webhook", "--host", "127.0.0.1", "--catalog", str(catalog_dir)]
    return start_module_server(args, tls=tls.issue("webhook-shared"))


@pytest.fixture
def own_webhook(start_server, pair: CertPair, catalog_dir: Path) -> ServerProcess:
    """A server of the test's own, for tests that stop it or change its files."""
    return start_server(["webhook", "--host", "127.0.0.1", "--catalog", str(catalog_dir)], tls=pair)


def test_a_pod_naming_a_model_gets_a_patch_that_injects_it(webhook):
    response = post(webhook, "/mutate-pod?timeout=5s", orjson.dumps(pod_review()))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "0f9c1b52-aaaa-4d2e-9a51-000000000001"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["patchType"] == "JSONPatch"
    patch = orjson.loads(base64.b64decode(answer["response"]["patch"]))
    added = [
        op["value"] for op in patch if op["op"] == "add" and op["path"].startswith("/spec/initContainers")
    ]
    names = [c["name"] for value in added for c in (value if isinstance(value, list) else [value])]
    assert "model-init" in names


def test_an_unknown_model_is_denied_naming_what_exists(webhook):
    response = post(webhook, "/mutate-pod", orjson.dumps(pod_review(model="nope:1")))
    assert response.status_code == 200
    verdict = response.json()["response"]
    assert verdict["allowed"] is False
    assert "nope:1" in verdict["status"]["message"]
    assert "iris:3" in verdict["status"]["message"]


def test_a_pod_without_a_model_passes_untouched(webhook):
    response = post(webhook, "/mutate-pod", orjson.dumps(pod_review(model=None)))
    verdict = response.json()["response"]
    assert verdict["allowed"] is True
    assert "patch" not in verdict


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(webhook, tls):
    ca_file = tls.ca_file
    malformed = post(webhook, "/mutate-pod", b'{"apiVersion": "admission.k8s.io/v1", "kind": ')
    assert malformed.status_code == 400
    assert malformed.json()["message"]

    wrong_type = post(webhook, "/mutate-pod", orjson.dumps(pod_review()), content_type="text/plain")
    assert wrong_type.status_code == 415
    assert "application/json" in wrong_type.json()["message"]

    # The apiserver always sends Content-Length: a body declared too large is refused before it is read.
    with tls_connection(webhook, ca_file) as conn:
        conn.sendall(request_head(8 * 1024 * 1024) + b"[0,0,0,")
        status, body = read_response(conn)
    assert status.split()[1] == b"413"
    assert "7340032 bytes" in orjson.loads(body)["message"]

    wrong_method = webhook.session.get(webhook.url("/mutate-pod"), timeout=5)
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.json()["message"]

    unknown = post(webhook, "/mutate-pods", b"{}")
    assert unknown.status_code == 404

    assert post(webhook, "/mutate-pod", orjson.dumps(pod_review())).json()["response"]["allowed"] is True
    assert webhook.session.get(webhook.url("/healthz"), timeout=5).status_code == 200


def test_the_access_log_is_json_and_carries_the_review_uid(webhook):
    post(webhook, "/mutate-pod?timeout=10s", orjson.dumps(pod_review(uid="uid-for-the-log")))
    line = webhook.wait_for_log(lambda entry: entry.get("uid") == "uid-for-the-log")
    assert line["path"] == "/mutate-pod"
    assert line["status"] == 200
    assert line["outcome"] == "mutated"
    assert line["logger"] == "gunicorn.access"
    assert line["duration_ms"] > 0


def samples(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = server.session.get(server.url("/metrics"), timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_webhook_and_outcome(webhook):
    before = samples(webhook)
    post(webhook, "/mutate-pod", orjson.dumps(pod_review()))
    post(webhook, "/mutate-pod", orjson.dumps(pod_review(model="nope:1")))
    post(webhook, "/mutate-pod", b"not json")
    seen = samples(webhook)

    def added(name: str, labels: tuple[tuple[str, str], ...]) -> float:
        return seen.get((name, labels), 0) - before.get((name, labels), 0)

    def count(code: str, outcome: str) -> float:
        key = (("code", code), ("outcome", outcome), ("webhook", "mutate-pod"))
        return added("inferplane_webhook_requests_total", key)

    assert count("200", "mutated") == 1
    assert count("200", "denied") == 1
    assert count("400", "bad_request") == 1
    assert added("inferplane_webhook_latency_seconds_count", (("webhook", "mutate-pod"),)) == 3
    assert seen[("inferplane_webhook_requests_in_flight", (("webhook", "mutate-pod"),))] == 0
    # Sub-millisecond buckets exist, so a healthy latency is not one opaque bar.
    assert (
        "inferplane_webhook_latency_seconds_bucket",
        (("le", "0.0005"), ("webhook", "mutate-pod")),
    ) in seen


def test_ready_with_a_catalog_dir(webhook):
    response = webhook.session.get(webhook.url("/readyz"), timeout=5)
    assert response.status_code == 200
    assert response.json()["ready"] is True


def test_not_ready_until_the_cluster_catalog_syncs(start_server, pair, tmp_path):
    # An apiserver that is not there: the watches keep retrying and readiness stays false.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{_closed_port()}"}}}}]
        users: [{{name: u, user: {{token: t}}}}]
        contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
        current-context: x
        """)
    )
    server = start_server(["webhook", "--host", "127.0.0.1", "--kubeconfig", str(kubeconfig)], tls=pair)
    ready = server.session.get(server.url("/readyz"), timeout=5)
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert set(ready.json()["caches"]) == {"/apis/ml.example/v1alpha1/instancetypes", "/api/v1/configmaps"}
    began = time.monotonic()
    # `?timeout=1s` leaves no time to wait for a sync: 503 at once, with the reason.
    review = post(server, "/mutate-pod?timeout=1s", orjson.dumps(pod_review()))
    assert review.status_code == 503
    assert "not synced" in review.json()["message"]
    assert time.monotonic() - began < 1
    server.wait_for_log(lambda entry: entry.get("message") == "list failed; retrying")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tls_connection(server: ServerProcess, ca_file: Path) -> ssl.SSLSocket:
    """A raw TLS connection, for requests a high-level client will not send (a body in halves)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def request_head(length: int, path: str = "/mutate-pod?timeout=10s") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def read_response(conn: ssl.SSLSocket) -> tuple[bytes, bytes]:
    """(status line, body) of a `Connection: close` response."""
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.partition(b"\r\n")[0], body


def test_sigterm_lets_a_request_in_flight_finish(own_webhook, pair):
    body = orjson.dumps(pod_review(uid="in-flight"))
    with tls_connection(own_webhook, pair.ca_file) as conn:
        conn.sendall(request_head(len(body)) + body[:100])
        time.sleep(0.3)  # the worker is now reading this request's body
        own_webhook.send_signal(signal.SIGTERM)
        own_webhook.wait_for_log(lambda entry: entry.get("message") == "Handling signal: term")
        time.sleep(0.3)
        conn.sendall(body[100:])
        status, answer = read_response(conn)
    assert status == b"HTTP/1.1 200 OK"
    assert orjson.loads(answer)["response"]["uid"] == "in-flight"
    assert own_webhook.stop(timeout=30) == 0


def test_a_rotated_certificate_is_served_without_a_restart(own_webhook, pair, tls):
    before = served_certificate_serial("127.0.0.1", own_webhook.port)
    assert before == pair.serial()
    rotated = tls.issue(pair.cert_file.parent.name)  # same files, new key and certificate
    assert rotated.serial() != before
    own_webhook.wait_for_log(
        lambda entry: entry.get("message") == "TLS certificate changed; reloading workers"
    )
    deadline = time.monotonic() + 15
    while served_certificate_serial("127.0.0.1", own_webhook.port) != rotated.serial():
        assert time.monotonic() < deadline, "the rotated certificate was never served"
        time.sleep(0.1)
    # A verifying client (the apiserver, with the same CA bundle) goes on working.
    assert post(own_webhook, "/mutate-pod", orjson.dumps(pod_review())).json()["response"]["allowed"] is True
    assert own_webhook.process.poll() is None


def test_a_half_written_pair_is_not_loaded(own_webhook, pair):
    pair.key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    own_webhook.wait_for_log(
        lambda entry: entry.get("message", "").startswith("TLS files changed but do not load")
    )
    assert served_certificate_serial("127.0.0.1", own_webhook.port) == pair.serial()
    assert post(own_webhook, "/mutate-pod", orjson.dumps(pod_review())).status_code == 200


def test_two_workers_report_one_sum_of_their_metrics(start_server, pair, catalog_dir):
    server = start_server(
        ["webhook", "--host", "127.0.0.1", "--catalog", str(catalog_dir), "--workers", "2", "--threads", "2"],
        tls=pair,
    )
    body = orjson.dumps(pod_review())
    sent = 0
    pids: set[int] = set()
    while len(pids) < 2:
        assert sent < 300, "every request went to one worker; cannot tell the metrics apart"
        for _ in range(10):
            # A new connection each time, so that either worker may accept it.
            server.session.close()
            assert post(server, "/mutate-pod", body).status_code == 200
            sent += 1
        pids = {entry["pid"] for entry in server.log_lines() if entry.get("logger") == "gunicorn.access"}
    seen = samples(server)
    key = (("code", "200"), ("outcome", "mutated"), ("webhook", "mutate-pod"))
    assert seen[("inferplane_webhook_requests_total", key)] == sent


def test_the_operators_default_instance_type_and_node_selector_reach_every_model_pod(
    start_server, pair, catalog_dir
):
    # The chart passes webhook.defaultInstanceType and the global nodeSelector as these flags.
    server = start_server(
        ["webhook", "--host", "127.0.0.1", "--catalog", str(catalog_dir), "--default-cpu", "250m",
         "--default-memory", "768Mi", "--node-selector", "pool=models",
         "--node-selector", "kubernetes.io/os=linux", "--scheduler-marker-resource", "ml.example/placement"],
        tls=pair,
    )  # fmt: skip
    verdict = post(server, "/mutate-pod", orjson.dumps(pod_review())).json()["response"]
    patch = orjson.loads(base64.b64decode(verdict["patch"]))
    values = {op["path"]: op["value"] for op in patch}
    assert values["/spec/nodeSelector"] == {"pool": "models", "kubernetes.io/os": "linux"}
    assert values["/spec/containers/0/resources"] == {
        "requests": {"cpu": "250m", "memory": "768Mi"},
        "limits": {"cpu": "250m", "memory": "768Mi", "ml.example/placement": "1"},
    }
    assert verdict["auditAnnotations"]["instance-type"] == "defaultinstancetype"
