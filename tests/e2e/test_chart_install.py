"""The chart on a real apiserver: what helm renders is accepted, and once installed the webhook
configuration it registers routes model pods to our webhook and no other pod.

There is no kubelet, so the chart's Deployments never get running pods. The webhook instead runs
on loopback with the Secret the chart generated and the chart's ServiceAccount token, and the
chart's own Service is routed to it (``route_service_to_loopback``): the apiserver then calls it
exactly as in a cluster, through the MutatingWebhookConfiguration, its caBundle, matchConditions
and namespaceSelector.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import ssl
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from kubernetes import client as k8s

from inferplane.localcluster.controlplane import ControlPlane
from inferplane.localcluster.process import ManagedProcess, free_port, inferplane_argv, wait_for

from .helpers import CHART, bare_pod, helm, iris_registration, token_kubeconfig

pytestmark = pytest.mark.e2e

RELEASE = "ip"
FULLNAME = "ip-inferplane"
WEBHOOK_SERVICE = f"{FULLNAME}-webhook"

# Each value set the chart supports, applied with a server-side dry run.
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "scheduler": ["--set", "scheduler.enabled=true"],
    "router-off": ["--set", "router.enabled=false"],
    "nodeport": ["--set", "router.service.type=NodePort", "--set", "router.service.nodePort=30443"],
    "loadbalancer": ["--set", "router.service.type=LoadBalancer"],
    "insecure-router": ["--set", "router.allowInsecureConnections=true", "--set", "router.ha=false"],
    "cert-manager": ["--set", "certManager.enabled=true"],
}


def _objects(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_chart_passes_server_side_dry_run(
    helm_binary: Path, control_plane: ControlPlane, fresh_namespace: str, value_set: str
) -> None:
    rendered = helm(
        helm_binary, control_plane, "template", RELEASE, str(CHART), "--namespace", fresh_namespace,
        *VALUE_SETS[value_set],
    ).stdout  # fmt: skip
    objects = _objects(rendered)
    # cert-manager's CRDs are not installed on this control plane (nothing may be downloaded):
    # its objects are checked by the unit tests; every other object goes to the apiserver.
    applied = [o for o in objects if not o["apiVersion"].startswith("cert-manager.io/")]
    assert len(applied) >= len(objects) - 6
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": applied}),
    )  # fmt: skip
    accepted = json.loads(result.stdout)["items"]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in accepted) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in applied
    )
    # The apiserver kept our restricted security context as written (nothing dropped by a typo).
    for obj in accepted:
        if obj["kind"] == "Deployment":
            for c in obj["spec"]["template"]["spec"]["containers"]:
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
                assert c["securityContext"]["readOnlyRootFilesystem"] is True


@contextmanager
def resolving(host: str) -> Iterator[None]:
    """Make `host` (a Service's cluster DNS name) resolve to 127.0.0.1 in this process, as cluster DNS
    would resolve it to the Service, so TLS is checked against the name the chart's certificate holds."""
    real = socket.getaddrinfo

    def resolve(name: str, *rest: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if name == host else name, *rest, **kwargs)

    socket.getaddrinfo = resolve  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real


def _load_probe() -> Any:
    path = CHART / "files" / "helm_test_probe.py"
    spec = importlib.util.spec_from_file_location("inferplane_helm_test_probe", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Installed:
    """The chart installed in its own namespace, with its webhook served from loopback."""

    def __init__(self, cp: ControlPlane, helm_binary: Path, namespace: str, workdir: Path) -> None:
        self.cp = cp
        self.helm_binary = helm_binary
        self.namespace = namespace
        self.workdir = workdir
        self.core = k8s.CoreV1Api(cp.api())
        self.webhook: ManagedProcess | None = None
        self.port = free_port()

    def secret(self, name: str) -> dict[str, bytes]:
        data = self.core.read_namespaced_secret(name, self.namespace).data
        return {k: base64.b64decode(v) for k, v in data.items()}

    def ca_bundles(self) -> set[bytes]:
        admission = k8s.AdmissionregistrationV1Api(self.cp.api())
        configs = [
            admission.read_mutating_webhook_configuration(FULLNAME),
            admission.read_validating_webhook_configuration(FULLNAME),
        ]
        return {base64.b64decode(c.webhooks[0].client_config.ca_bundle) for c in configs}

    def token_kubeconfig(self, account: str = WEBHOOK_SERVICE, file: str = "webhook.kubeconfig") -> Path:
        return token_kubeconfig(self.cp, self.namespace, account, self.workdir / file)

    def start_webhook(self) -> None:
        tls = self.secret(f"{FULLNAME}-webhook-tls")
        cert, key = self.workdir / "tls.crt", self.workdir / "tls.key"
        cert.write_bytes(tls["tls.crt"])
        key.write_bytes(tls["tls.key"])
        key.chmod(0o600)
        self.webhook = ManagedProcess(
            "chart-webhook",
            [
                sys.executable, "-m", "inferplane.cli", "webhook", "--host", "127.0.0.1",
                f"--port={self.port}", f"--tls-cert-file={cert}", f"--tls-key-file={key}",
                f"--kubeconfig={self.token_kubeconfig()}", "--workers=1",
            ],
            self.workdir / "webhook.log",
        ).start()  # fmt: skip
        self.cp.processes.append(self.webhook)  # its log tail joins a failure report
        (self.workdir / "ca.crt").write_bytes(tls["ca.crt"])
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        context.check_hostname = False  # the certificate names the Service, we dial 127.0.0.1

        def ready() -> bool:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{self.port}/readyz", context=context, timeout=2
            ) as r:
                return r.status == 200

        wait_for(ready, 60, "the webhook to sync its caches with the chart's RBAC", watch=[self.webhook])
        self.cp.route_service_to_loopback(self.namespace, WEBHOOK_SERVICE, self.port)

    def stop_webhook(self) -> None:
        if self.webhook is not None:
            self.webhook.stop()
            self.cp.processes.remove(self.webhook)
            self.webhook = None


@pytest.fixture
def installed(
    control_plane: ControlPlane, helm_binary: Path, tmp_path: Path
) -> Iterator[tuple[Installed, str]]:
    namespace = f"e2e-chart-{uuid.uuid4().hex[:6]}"
    result = helm(
        helm_binary, control_plane, "install", RELEASE, str(CHART), "--namespace", namespace,
        "--create-namespace", "--take-ownership",
    )  # fmt: skip
    chart = Installed(control_plane, helm_binary, namespace, tmp_path)
    try:
        yield chart, result.stdout
    finally:
        chart.stop_webhook()
        # Uninstall before anything else runs: the webhook configuration is cluster-wide and
        # fails closed for annotated pods in every namespace.
        helm(helm_binary, control_plane, "uninstall", RELEASE, "--namespace", namespace, "--wait")
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def test_installed_chart_routes_model_pods_and_only_them_to_the_webhook(
    control_plane: ControlPlane, fresh_namespace: str, installed: tuple[Installed, str]
) -> None:
    chart, notes = installed
    cp, app = control_plane, fresh_namespace
    assert "ml.example/model: iris:3" in notes and f"helm test {RELEASE}" in notes

    # The CRD came from the chart and is served.
    cp.kubectl("wait", "--for=condition=Established", "crd/instancetypes.ml.example", "--timeout=30s")
    # Both webhook configurations trust exactly the CA that signed the serving certificate.
    tls = chart.secret(f"{FULLNAME}-webhook-tls")
    assert chart.ca_bundles() == {tls["ca.crt"]} == {chart.secret(f"{FULLNAME}-ca")["tls.crt"]}

    chart.start_webhook()
    cp.kubectl("apply", "-f", "-", input=iris_registration(app))
    model = {"ml.example/model": "iris:3"}

    def injected(pod: dict[str, Any]) -> list[str]:
        return [c["name"] for c in pod["spec"].get("initContainers", [])]

    # The apiserver learns of the webhook configuration asynchronously: retry a dry run until the
    # mutation shows, then create for real.
    def mutated_dry_run() -> bool:
        out = cp.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=bare_pod("probe", app, model)
        )
        return "model-init" in injected(json.loads(out.stdout))

    cp.wait_for(mutated_dry_run, timeout=30, message="the chart's webhook to mutate a model pod")
    created = cp.kubectl("create", "-o", "json", "-f", "-", input=bare_pod("model", app, model))
    pod = json.loads(created.stdout)
    assert "model-init" in injected(pod)

    plain = json.loads(cp.kubectl("create", "-o", "json", "-f", "-", input=bare_pod("plain", app, {})).stdout)
    assert injected(plain) == []

    # Model pods in the release's own namespace are left alone (no self-deadlock on restart).
    own = cp.kubectl("create", "-o", "json", "-f", "-", input=bare_pod("own", chart.namespace, model)).stdout
    assert injected(json.loads(own)) == []

    # The helm test probe, as the test pod runs it: the Service's DNS name, verified TLS.
    probe = _load_probe()
    host = f"{WEBHOOK_SERVICE}.{chart.namespace}.svc"
    (chart.workdir / "probe-ca.crt").write_bytes(tls["ca.crt"])
    with resolving(host):
        assert probe.probe_webhook(f"https://{host}:{chart.port}", str(chart.workdir / "probe-ca.crt")) == []

    # Webhook down: a model pod is refused (it must not start without its model) ...
    chart.stop_webhook()
    refused = cp.kubectl("create", "-f", "-", input=bare_pod("model-down", app, model), check=False)
    assert refused.returncode != 0
    assert "mutate-pod.inferplane.ml.example" in refused.stderr
    # ... while every other pod is created as if the webhook did not exist.
    cp.kubectl("create", "-f", "-", input=bare_pod("plain-down", app, {}))


def test_upgrade_keeps_the_ca_and_the_serving_certificate(
    control_plane: ControlPlane, helm_binary: Path, installed: tuple[Installed, str]
) -> None:
    chart, _ = installed
    before_ca = chart.secret(f"{FULLNAME}-ca")
    before_tls = chart.secret(f"{FULLNAME}-webhook-tls")
    before_bundles = chart.ca_bundles()

    def upgrade(setting: str) -> None:
        helm(
            helm_binary,
            control_plane,
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            chart.namespace,
            "--set",
            setting,
        )

    upgrade("webhook.replicas=3")
    assert chart.secret(f"{FULLNAME}-ca") == before_ca
    assert chart.secret(f"{FULLNAME}-webhook-tls") == before_tls
    assert chart.ca_bundles() == before_bundles
    apps = k8s.AppsV1Api(control_plane.api())
    assert apps.read_namespaced_deployment(WEBHOOK_SERVICE, chart.namespace).spec.replicas == 3
    # New names for the router need a new certificate: re-issued, by the same CA.
    router_before = chart.secret(f"{FULLNAME}-router-tls")
    upgrade("router.tls.hosts[0]=models.example.com")
    assert chart.secret(f"{FULLNAME}-ca") == before_ca
    assert chart.secret(f"{FULLNAME}-webhook-tls") == before_tls
    router_after = chart.secret(f"{FULLNAME}-router-tls")
    assert router_after["tls.crt"] != router_before["tls.crt"]
    assert router_after["ca.crt"] == before_ca["tls.crt"]
    leaf = x509.load_pem_x509_certificate(router_after["tls.crt"])
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(before_ca["tls.crt"]))
    sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert "models.example.com" in sans.get_values_for_type(x509.DNSName)


def test_router_runs_with_the_chart_certificate_and_rbac(
    control_plane: ControlPlane, installed: tuple[Installed, str]
) -> None:
    """The router with the chart's arguments, TLS Secret and ServiceAccount: it syncs pods and key
    Secrets, publishes its load Lease, and the helm test probe accepts it."""
    chart, _ = installed
    cp, ns = control_plane, chart.namespace
    deployment = k8s.AppsV1Api(cp.api()).read_namespaced_deployment(f"{FULLNAME}-router", ns)
    (router,) = deployment.spec.template.spec.containers
    tls = chart.secret(f"{FULLNAME}-router-tls")
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (chart.workdir / f"router-{key}").write_bytes(tls[key])
    port = free_port()
    local = {"--port": str(port), "--tls-cert-file": str(chart.workdir / "router-tls.crt"),
             "--tls-key-file": str(chart.workdir / "router-tls.key")}  # fmt: skip
    args = [
        f"{a.split('=')[0]}={local[a.split('=')[0]]}" if a.split("=")[0] in local else a for a in router.args
    ]
    identity = f"router-{uuid.uuid4().hex[:6]}"
    token = chart.token_kubeconfig(f"{FULLNAME}-router", "router.kubeconfig")
    env = {"POD_NAMESPACE": ns, "POD_NAME": identity}
    proc = ManagedProcess(
        "chart-router",
        [
            "env",
            *(f"{k}={v}" for k, v in env.items()),
            *inferplane_argv(),
            *args,
            "--host=127.0.0.1",
            f"--kubeconfig={token}",
        ],
        chart.workdir / "router.log",
    ).start()
    cp.processes.append(proc)
    try:
        probe = _load_probe()
        ca = str(chart.workdir / "router-ca.crt")
        host = f"{FULLNAME}-router.{ns}.svc"
        with resolving(host):
            # Ready = its first list of pods and Secrets succeeded under the chart's ClusterRole.
            wait_for(
                lambda: probe.probe_router(f"https://{host}:{port}", ca) == [], 60,
                "the router to sync with the chart's RBAC, over the chart's certificate", watch=[proc],
            )  # fmt: skip
        leases = k8s.CoordinationV1Api(cp.api())
        cp.wait_for(
            lambda: leases.read_namespaced_lease(f"{FULLNAME}-router-load-{identity}", ns),
            timeout=30, message="the router's load Lease, written with the chart's lease Role",
        )  # fmt: skip
    finally:
        proc.stop()
        cp.processes.remove(proc)


def test_router_limited_to_namespaces_runs_on_their_roles_alone(
    helm_binary: Path, control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path
) -> None:
    """router.watchNamespaces: with only the Roles the chart puts in the listed namespaces (no
    ClusterRole), the router with the chart's arguments lists pods and key Secrets there and turns
    ready, writes its load Lease, and has no right anywhere else."""
    cp, release = control_plane, fresh_namespace
    suffix = uuid.uuid4().hex[:6]
    watched, unwatched = [f"team-a-{suffix}", f"team-b-{suffix}"], f"team-c-{suffix}"
    for namespace in (*watched, unwatched):
        cp.kubectl("create", "namespace", namespace)
    try:
        objects = _objects(helm(
            helm_binary, cp, "template", RELEASE, str(CHART), "--namespace", release,
            "--set", f"router.watchNamespaces={{{','.join(watched)}}}", "--set", "router.autoscale=false",
            "--set", "router.allowInsecureConnections=true", "--set", "webhook.enabled=false",
        ).stdout)  # fmt: skip
        router_rbac = [
            o
            for o in objects
            if o["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
            and o["metadata"]["name"].startswith(f"{FULLNAME}-router")
        ]
        assert not [o for o in router_rbac if o["kind"].startswith("Cluster")]
        cp.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": router_rbac})
        )
        account = f"system:serviceaccount:{release}:{FULLNAME}-router"
        for namespace, allowed in [(watched[0], "yes"), (watched[1], "yes"), (unwatched, "no")]:
            answer = cp.kubectl(
                "auth", "can-i", "list", "secrets", "-n", namespace, "--as", account, check=False
            ).stdout.strip()
            assert answer == allowed, (namespace, answer)
        (router,) = [
            o["spec"]["template"]["spec"]["containers"][0]
            for o in objects
            if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{FULLNAME}-router"
        ]
        args = router["args"]
        assert [a for a in args if a.startswith("--namespace=")] == [f"--namespace={n}" for n in watched]
        port, identity = free_port(), f"router-{suffix}"
        token = token_kubeconfig(cp, release, f"{FULLNAME}-router", tmp_path / "router.kubeconfig")
        proc = ManagedProcess(
            "chart-router-namespaced",
            ["env", f"POD_NAMESPACE={release}", f"POD_NAME={identity}", *inferplane_argv(),
             *[a for a in args if not a.startswith("--port=")], f"--port={port}", "--host=127.0.0.1",
             f"--kubeconfig={token}"],
            tmp_path / "router.log",
        ).start()  # fmt: skip
        cp.processes.append(proc)
        try:

            def ready() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    return answer.status == 200

            wait_for(ready, 60, "the router to list both namespaces with their Roles", watch=[proc])
            leases = k8s.CoordinationV1Api(cp.api())
            cp.wait_for(
                lambda: leases.read_namespaced_lease(f"{FULLNAME}-router-load-{identity}", release),
                timeout=30,
                message="the load Lease, written without autoscaling",
            )
        finally:
            proc.stop()
            cp.processes.remove(proc)
    finally:
        for namespace in (*watched, unwatched):
            cp.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            [],
            [
                "port-forward svc/ip-inferplane-router 8000:443",
                "--connect-to ip-inferplane-router.",
                "--cacert",
            ],
        ),
        (
            ["--set", "router.service.type=NodePort"],
            [".spec.ports[0].nodePort", "https://$NODE_IP:$NODE_PORT/api/v1/endpoint/"],
        ),
        (
            ["--set", "router.service.type=LoadBalancer"],
            ["loadBalancer.ingress[0].ip", "https://$ADDRESS:443/api/v1/endpoint/"],
        ),
        (
            ["--set", "router.allowInsecureConnections=true"],
            ["curl http://127.0.0.1:8000/api/v1/endpoint/", "plain HTTP"],
        ),
        (
            ["--set", "router.tls.hosts[0]=models.example.com"],
            ["curl https://models.example.com/api/v1/endpoint/"],
        ),
    ],
)
def test_install_notes_give_a_scoring_url_for_the_service_type(
    control_plane: ControlPlane,
    helm_binary: Path,
    fresh_namespace: str,
    settings: list[str],
    expected: list[str],
) -> None:
    out = helm(
        helm_binary, control_plane, "install", RELEASE, str(CHART), "--namespace", fresh_namespace,
        "--dry-run=server", "--take-ownership", *settings,
    ).stdout  # fmt: skip
    notes = out.split("NOTES:", 1)[1]
    for text in expected:
        assert text in notes, f"{text!r} not in NOTES:\n{notes}"
