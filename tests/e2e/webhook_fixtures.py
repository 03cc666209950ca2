"""Our webhook as a local process behind the chart's own webhook configurations, for the e2e tests.

`inferplane webhook` runs on 127.0.0.1 in cluster mode (list+watch of InstanceTypes and
registration ConfigMaps through the control plane's kubeconfig). The Mutating- and
ValidatingWebhookConfiguration come from `helm template` of the chart, so the tests exercise what we
ship; only three things are rewritten for the test cluster:

- `clientConfig` becomes `url: https://127.0.0.1:<port>/<path>` with the control plane CA as
  caBundle (the chart's Service has no pods here);
- the configuration's name is unique to the run;
- the namespaceSelector gains a `matchLabels` on a per-run label, ANDed with the chart's own
  exclusions, so the fail-closed webhook only ever sees namespaces a test has opted in.

A second, tiny mutating webhook (`SidecarWebhook`) stands in for someone else's injector (a mesh
sidecar, a GPU plugin) for the reinvocation tests.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from demo.webhooks import point_at_loopback, render_chart_webhooks
from inferplane.localcluster.controlplane import ControlPlane
from inferplane.localcluster.process import ManagedProcess, free_port, wait_for

from .helpers import REPO, bare_pod, iris_registration

MUTATING_WEBHOOK = "mutate-pod.inferplane.ml.example"
VALIDATING_WEBHOOK = "validate-workload.inferplane.ml.example"
INIT_IMAGE = "registry.example.invalid/inferplane:e2e"
INSTANCE_TYPES = REPO / "examples" / "catalog" / "instancetypes.yaml"
EXAMPLE_DEPLOYMENT = REPO / "examples" / "deployment.yaml"
MODEL = "ml.example/model"
INSTANCE_TYPE = "ml.example/instance-type"
INJECTED = "ml.example/injected"
# The example registration iris:3 (examples/catalog/registrations.yaml) injects these, by name.
IRIS_VOLUMES = ("inferplane-app", "inferplane-config-iris-3", "inferplane-model-iris-3")
IRIS_ENV = ("AZUREML_MODEL_DIR", "AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT")
# How long the apiserver may take to act on a new webhook configuration or namespace label, and
# the webhook's watch to deliver a new ConfigMap.
PROPAGATION_TIMEOUT = 30.0


# ---- manifests ----------------------------------------------------------------------------------


def model_pod(
    name: str, namespace: str, annotations: Mapping[str, str], node_selector: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A bare Pod with one container `score`, as a user would `kubectl create` it."""
    pod: dict[str, Any] = json.loads(bare_pod(name, namespace, dict(annotations)))
    if node_selector:
        pod["spec"]["nodeSelector"] = dict(node_selector)
    return pod


def example_deployment(
    name: str,
    namespace: str,
    template_annotations: Mapping[str, str] | None = None,
    *,
    metadata_annotations: Mapping[str, str] | None = None,
    replicas: int = 2,
) -> dict[str, Any]:
    """examples/deployment.yaml (what a user copies), renamed into `namespace` with its own labels.

    `template_annotations`, when given, replace the example's pod-template annotations; the
    selector and labels are made unique to `name` so two such Deployments never share pods.
    """
    deployment: dict[str, Any] = yaml.safe_load(EXAMPLE_DEPLOYMENT.read_text())
    deployment["metadata"].update(name=name, namespace=namespace, labels={"app": name})
    if metadata_annotations is not None:
        deployment["metadata"]["annotations"] = dict(metadata_annotations)
    spec = deployment["spec"]
    spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": {"app": name}}
    template_meta = spec["template"]["metadata"]
    template_meta["labels"] = {"app": name}
    if template_annotations is not None:
        template_meta["annotations"] = dict(template_annotations)
    return deployment


def as_list(items: list[dict[str, Any]]) -> str:
    """A `kind: List` for kubectl (it cannot map a CRD's own list kind)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def pod_tolerations(pod: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Each toleration as a comparable tuple, in the pod's order."""
    return [
        tuple(str(t.get(k, "")) for k in ("key", "operator", "value", "effect", "tolerationSeconds"))
        for t in pod["spec"].get("tolerations", [])
    ]


def injection_gaps(pod: Mapping[str, Any]) -> list[str]:
    """What is missing from a pod that should carry iris:3 in full; [] when it is complete.

    A pod is either fully injected or was never admitted: this is how the tests tell the two
    apart from any state in between.
    """
    spec, metadata = pod["spec"], pod["metadata"]
    gaps = []
    volumes = {v["name"] for v in spec.get("volumes", [])}
    gaps += [f"volume {name}" for name in IRIS_VOLUMES if name not in volumes]
    if [c["name"] for c in spec.get("initContainers", [])] != ["model-init"]:
        gaps.append("init container model-init (first and only)")
    scorer = spec["containers"][0]
    env = {e["name"] for e in scorer.get("env", [])}
    gaps += [f"env {name}" for name in IRIS_ENV if name not in env]
    if "inferplane-app" not in {m["name"] for m in scorer.get("volumeMounts", [])}:
        gaps.append("app volume mount in the scoring container")
    if not scorer.get("resources", {}).get("limits"):
        gaps.append("resources from the instance type")
    if INJECTED not in (metadata.get("annotations") or {}):
        gaps.append(f"annotation {INJECTED}")
    return gaps


# ---- the chart's webhook configurations -------------------------------------------------------------


# ---- our webhook, as a local process ---------------------------------------------------------------


def _tls_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def _metric_samples(
    url: str, context: ssl.SSLContext
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class LocalWebhook:
    """`inferplane webhook` on 127.0.0.1 in cluster mode, stoppable and restartable on one port."""

    def __init__(self, cp: ControlPlane, workdir: Path) -> None:
        self.cp = cp
        self.port = free_port()
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.tls = cp.ca.issue(
            "inferplane-webhook-e2e", "inferplane-webhook", ip_addresses=("127.0.0.1",), server=True
        )
        self.log = workdir / "webhook.log"
        self.process: ManagedProcess | None = None
        self._context = _tls_context(cp.ca_file)

    def start(self, *extra: str) -> None:
        """Start (or restart with other flags) and return once its catalog has synced."""
        self.stop()
        argv = [
            sys.executable, "-m", "inferplane.cli", "webhook", "--host", "127.0.0.1",
            f"--port={self.port}", f"--tls-cert-file={self.tls.cert_file}",
            f"--tls-key-file={self.tls.key_file}", f"--kubeconfig={self.cp.kubeconfig}",
            "--workers=1", f"--init-image={INIT_IMAGE}", *extra,
        ]  # fmt: skip
        self.process = ManagedProcess("inferplane-webhook", argv, self.log).start()
        self.cp.processes.append(self.process)  # its log tail joins a failure report
        wait_for(self._ready, 60, "the webhook to sync its catalog", watch=[self.process])

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.base_url}/readyz", context=self._context, timeout=2) as r:
            return r.status == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.cp.processes.remove(self.process)
            self.process = None

    def reviews(self, outcome: str) -> float:
        """How many /mutate-pod reviews it has answered with `outcome` (mutated, unchanged...)."""
        key = (("code", "200"), ("outcome", outcome), ("webhook", "mutate-pod"))
        samples = _metric_samples(f"{self.base_url}/metrics", self._context)
        return samples.get(("inferplane_webhook_requests_total", key), 0.0)


# ---- the environment the tests share ----------------------------------------------------------------


class WebhookEnv:
    """The CRD's InstanceTypes, our webhook and the chart's webhook configurations, all live."""

    def __init__(self, cp: ControlPlane, helm_binary: Path, workdir: Path) -> None:
        self.cp = cp
        self.run = uuid.uuid4().hex[:6]
        self.scope = {"e2e.inferplane.dev/webhook": self.run}
        self.webhook = LocalWebhook(cp, workdir)
        self.config_name = f"inferplane-e2e-{self.run}"
        self.configs = [
            point_at_loopback(
                config, name=self.config_name, base_url=self.webhook.base_url,
                ca_pem=cp.ca.cert_pem, scope=self.scope,
            )
            for config in render_chart_webhooks(helm_binary, f"e2e-{self.run}")
        ]  # fmt: skip
        self.core = k8s.CoreV1Api(cp.api())
        self._created_types: list[str] = []

    def start(self) -> None:
        types = yaml.safe_load(INSTANCE_TYPES.read_text())["items"]
        existing = set(self.cp.kubectl("get", "instancetypes", "-o", "name").stdout.split())
        self._created_types = [
            t["metadata"]["name"] for t in types if f"instancetype.ml.example/{t['metadata']['name']}"
            not in existing
        ]  # fmt: skip
        self.cp.kubectl("apply", "-f", str(INSTANCE_TYPES))
        self.webhook.start()
        self.cp.kubectl("apply", "-f", "-", input=as_list(self.configs))

    def stop(self) -> None:
        """Configurations first: without them nothing calls the webhook, then nothing is left."""
        for config in self.configs:
            self.cp.kubectl("delete", config["kind"], self.config_name, "--ignore-not-found")
        self.webhook.stop()
        if self._created_types:
            self.cp.kubectl("delete", "instancetypes", *self._created_types, "--ignore-not-found")

    def admit(self, namespace: str) -> str:
        """Opt `namespace` in: labelled for our webhooks, iris:3 registered, mutation seen working."""
        labels = [f"{k}={v}" for k, v in self.scope.items()]
        self.cp.kubectl("label", "namespace", namespace, *labels)
        self.cp.kubectl("apply", "-f", "-", input=iris_registration(namespace))
        self.wait_until_mutated(namespace)
        return namespace

    def dry_run(self, pod: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """`kubectl create --dry-run=server -o json`: the pod as admitted, or None and stderr."""
        result = self.cp.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod), check=False
        )
        return (json.loads(result.stdout) if result.returncode == 0 else None), result.stderr

    def wait_until_mutated(self, namespace: str) -> None:
        """The apiserver learns of configurations and labels, the webhook of ConfigMaps, a moment late."""
        probe = model_pod("probe", namespace, {MODEL: "iris:3"})

        def mutated() -> bool:
            pod, _ = self.dry_run(probe)
            return pod is not None and not injection_gaps(pod)

        self.cp.wait_for(mutated, PROPAGATION_TIMEOUT, f"our webhook to inject model pods in {namespace}")

    def wait_for_denial(self, pod: Mapping[str, Any], fragment: str) -> str:
        """Dry-run `pod` until it is refused with `fragment` in the message (caches catch up)."""

        def refused() -> str | None:
            admitted, stderr = self.dry_run(pod)
            return stderr if admitted is None and fragment in stderr else None

        return self.cp.wait_for(refused, PROPAGATION_TIMEOUT, f"a denial mentioning {fragment!r}")

    def pods(self, namespace: str, app: str | None = None) -> list[dict[str, Any]]:
        """Pods as stored by the apiserver (plain JSON), oldest first."""
        selector = f"app={app}" if app else None
        items = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        pods = [self.cp.api().sanitize_for_serialization(p) for p in items]
        return sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))

    def wait_for_pods(
        self, namespace: str, app: str, count: int, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        return self.cp.wait_for(
            lambda: pods if len(pods := self.pods(namespace, app)) == count else None,
            timeout,
            f"{count} pods of {namespace}/{app}",
        )

    def replica_failure(self, namespace: str, app: str) -> str | None:
        """The ReplicaFailure message `kubectl describe rs` shows for the Deployment `app`, if any."""
        apps = k8s.AppsV1Api(self.cp.api())
        for rs in apps.list_namespaced_replica_set(namespace, label_selector=f"app={app}").items:
            for condition in rs.status.conditions or []:
                if condition.type == "ReplicaFailure" and condition.status == "True":
                    return str(condition.message)
        return None


# ---- someone else's mutating webhook ---------------------------------------------------------------

SIDECAR = "mesh-proxy"
SIDECAR_VOLUME = "mesh-certs"
SIDECAR_ENV = {"name": "MESH_PROXY_ADDR", "value": "127.0.0.1:15001"}
# The same toleration the GPU instance types carry: our webhook must not add it twice.
SIDECAR_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def sidecar_patch(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An idempotent injector's JSON Patch: each item added only when absent, so its second pass
    over its own output is empty (what reinvocationPolicy IfNeeded demands of every webhook)."""
    spec = pod["spec"]
    ops: list[dict[str, Any]] = []

    def add_to(path: str, items: list[Any] | None, value: Any) -> None:
        if items is None:
            ops.append({"op": "add", "path": path, "value": [value]})
        else:
            ops.append({"op": "add", "path": f"{path}/-", "value": value})

    volumes = spec.get("volumes")
    if SIDECAR_VOLUME not in {v["name"] for v in volumes or []}:
        add_to("/spec/volumes", volumes, {"name": SIDECAR_VOLUME, "emptyDir": {"medium": "Memory"}})
    if SIDECAR not in {c["name"] for c in spec["containers"]}:
        container = {
            "name": SIDECAR,
            "image": "registry.example.invalid/mesh-proxy:1",
            "volumeMounts": [{"name": SIDECAR_VOLUME, "mountPath": "/etc/mesh", "readOnly": True}],
        }
        ops.append({"op": "add", "path": "/spec/containers/-", "value": container})
    env = spec["containers"][0].get("env")
    if SIDECAR_ENV["name"] not in {e["name"] for e in env or []}:
        add_to("/spec/containers/0/env", env, SIDECAR_ENV)
    tolerations = spec.get("tolerations")
    if SIDECAR_TOLERATION not in (tolerations or []):
        add_to("/spec/tolerations", tolerations, SIDECAR_TOLERATION)
    return ops


@dataclass
class SidecarCall:
    """One review the sidecar webhook answered: had ours already run, and did it patch."""

    saw_model_init: bool
    patched: bool
    pod: dict[str, Any] = field(repr=False)


class _SidecarServer(ThreadingHTTPServer):
    calls: list[SidecarCall]


class _SidecarHandler(BaseHTTPRequestHandler):
    server: _SidecarServer

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pod = review["request"]["object"]
        ops = sidecar_patch(pod)
        init = [c["name"] for c in pod["spec"].get("initContainers", [])]
        self.server.calls.append(SidecarCall("model-init" in init, bool(ops), pod))
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class SidecarWebhook:
    """The sidecar injector served from a thread, and every review it has answered."""

    server: _SidecarServer
    calls: list[SidecarCall] = field(default_factory=list)


def sidecar_configuration(name: str, url: str, ca_pem: bytes, scope: Mapping[str, str]) -> dict[str, Any]:
    """Registered the way a well-behaved third party would: IfNeeded, fail closed, pods only."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.mesh.e2e.example",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 5,
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": dict(scope)},
            }
        ],
    }


def serve_sidecar(cp: ControlPlane, env: WebhookEnv, config_name: str) -> Iterator[SidecarWebhook]:
    """Serve and register the sidecar webhook until the generator is closed (a fixture body)."""
    cert = cp.ca.issue("sidecar-webhook-e2e", "sidecar-webhook", ip_addresses=("127.0.0.1",), server=True)
    server = _SidecarServer(("127.0.0.1", 0), _SidecarHandler)
    calls: list[SidecarCall] = []
    server.calls = calls
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(cert.cert_file), str(cert.key_file))
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/inject"
    config = sidecar_configuration(config_name, url, cp.ca.cert_pem, env.scope)
    try:
        cp.kubectl("apply", "-f", "-", input=json.dumps(config))
        yield SidecarWebhook(server, calls)
    finally:
        cp.kubectl("delete", "mutatingwebhookconfiguration", config_name, "--ignore-not-found")
        server.shutdown()
        server.server_close()
