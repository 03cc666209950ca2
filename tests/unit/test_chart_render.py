"""The Helm chart as the real helm renders it: lint, the values schema, and the invariants a cluster
operator relies on (restricted pods, a webhook that can only ever block model pods, TLS that
matches, minimal RBAC, a scheduler configuration that agrees with the webhook).

helm is the pinned binary inferplane.localcluster.build compiles from its Go module (`inferplane
cluster build helm`); the first run builds it, later runs find it cached. Each render takes a few
tens of milliseconds.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from inferplane.localcluster import build

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferplane"
NAMESPACE = "inferplane-system"
RELEASE = "ip"
FULLNAME = "ip-inferplane"
MODEL_ANNOTATION = "ml.example/model"

# Value sets every structural test runs over: the defaults and each switch a user is likely to flip.
VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "cert-manager": ["--set", "certManager.enabled=true"],
    "cert-manager-detected": ["--api-versions", "cert-manager.io/v1"],
    "scheduler": ["--set", "scheduler.enabled=true"],
    "router-off": ["--set", "router.enabled=false"],
    "webhook-off": ["--set", "webhook.enabled=false"],
    "nodeport": ["--set", "router.service.type=NodePort", "--set", "router.service.nodePort=30443"],
    "loadbalancer": ["--set", "router.service.type=LoadBalancer"],
    "insecure-router": ["--set", "router.allowInsecureConnections=true", "--set", "router.ha=false"],
    "azure-ssl-secret": [
        "--set", "router.tls.secretName=azureml-ssl",
        "--set", "router.tls.certKey=cert.pem", "--set", "router.tls.keyKey=key.pem",
    ],
}  # fmt: skip

# Pod Security "restricted" allows only these volume sources.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret",
}  # fmt: skip


@cache
def helm_path() -> Path:
    try:
        return Path(build.ensure_helm())
    except build.BuildError as err:
        pytest.fail(f"cannot build helm for the chart tests:\n{err}", pytrace=False)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_path()), *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


@cache
def _render(extra: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra)
    assert result.returncode == 0, f"helm template {' '.join(extra)} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=yaml.CSafeLoader) if doc)


def render(*extra: str) -> list[dict[str, Any]]:
    return list(_render(tuple(extra)))


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]


def dockerfile_user() -> tuple[int, int]:
    users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    uid, gid = users[-1].split(":")
    return int(uid), int(gid)


def container(docs: list[dict[str, Any]], deployment: str, name: str) -> dict[str, Any]:
    spec = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


# ---- lint and schema --------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(value_set: str) -> None:
    extra = [a for a in VALUE_SETS[value_set] if a != "--api-versions" and a != "cert-manager.io/v1"]
    result = run_helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("webhook.failurePolicy=Maybe", "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'"),
        ("webhook.timeoutSeconds=60", "at '/webhook/timeoutSeconds': maximum: got 60, want 30"),
        ("webhook.replicas=0", "at '/webhook/replicas': minimum: got 0, want 1"),
        ("webhok.enabled=true", "additional properties 'webhok' not allowed"),
        ("router.service.type=Ingress", "at '/router/service/type': value must be one of"),
        ("certManager.enabled=maybe", "at '/certManager/enabled'"),
        ("scheduler.extender.httpTimeout=5 seconds", "at '/scheduler/extender/httpTimeout'"),
        ("router.tls.hosts[0]=Not_A_Host", "at '/router/tls/hosts/0'"),
        ("webhook.validation.unknownReference=ignore", "at '/webhook/validation/unknownReference'"),
        ("image.digest=latest", "at '/image/digest'"),
        ("webhook.defaultInstanceType.cpu=lots", "at '/webhook/defaultInstanceType/cpu'"),
        ("scheduler.markerResource=cpu", "at '/scheduler/markerResource'"),
        (
            "scheduler.extender.acceleratorResources[0]=fpga",
            "at '/scheduler/extender/acceleratorResources/0'",
        ),
        ("scheduler.extender.metrics.port=80", "at '/scheduler/extender/metrics/port'"),
    ],
)
def test_values_schema_rejects_bad_values_with_the_path(setting: str, message: str) -> None:
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--set", setting)
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_router_inline_certificate_without_key_is_refused_with_the_fix() -> None:
    result = run_helm("template", RELEASE, str(CHART), "--set", "router.tls.certPem=x")
    assert result.returncode != 0
    assert "router.tls.keyPem is empty" in result.stderr
    assert "--set-file router.tls.keyPem=" in result.stderr


@pytest.mark.parametrize(("version", "ok"), [("1.29.9", False), ("1.30.0", True), ("1.33.2", True)])
def test_kube_version_floor_is_1_30_for_match_conditions(version: str, ok: bool) -> None:
    result = run_helm("template", RELEASE, str(CHART), "--kube-version", version)
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert "kubeVersion" in result.stderr and ">= 1.30.0-0" in result.stderr


# ---- security invariants on every pod ---------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_meets_pod_security_restricted(value_set: str) -> None:
    docs = render(*VALUE_SETS[value_set])
    uid, gid = dockerfile_user()
    specs = list(pod_specs(docs))
    assert specs, "nothing rendered a pod"
    for name, spec in specs:
        where = f"{value_set}: {name}"
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, where
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{where}: {key}"
        for volume in spec.get("volumes", []):
            sources = set(volume) - {"name"}
            assert sources <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} uses {sources}"
        for c in spec.get("initContainers", []) + spec["containers"]:
            ctx = c["securityContext"]
            what = f"{where}/{c['name']}"
            assert ctx["allowPrivilegeEscalation"] is False, what
            assert ctx["capabilities"]["drop"] == ["ALL"], what
            assert not ctx["capabilities"].get("add"), what
            assert ctx["readOnlyRootFilesystem"] is True, what
            assert ctx["runAsNonRoot"] is True, what
            assert not ctx.get("privileged"), what
            # Numeric, and the image's own USER, so the kubelet can verify non-root.
            assert (ctx["runAsUser"], ctx["runAsGroup"]) == (uid, gid), what
            assert c.get("resources", {}).get("requests"), f"{what}: no resource requests"
            for port in c.get("ports", []):
                assert port["containerPort"] >= 1024, f"{what}: privileged port {port}"
                assert "hostPort" not in port, what


def test_servers_have_probes_and_a_writable_tmp_on_a_read_only_root() -> None:
    docs = render("--set", "scheduler.enabled=true")
    for deployment, name in [
        (f"{FULLNAME}-webhook", "webhook"),
        (f"{FULLNAME}-router", "router"),
        (f"{FULLNAME}-scheduler", "kube-scheduler"),
        (f"{FULLNAME}-scheduler", "extender"),
    ]:
        c = container(docs, deployment, name)
        ready, live = c["readinessProbe"], c["livenessProbe"]
        if name == "extender":
            # Loopback only: the kubelet cannot reach it, so the probe runs in the container.
            assert "127.0.0.1:8890/readyz" in ready["exec"]["command"][-1]
            assert "127.0.0.1:8890/healthz" in live["exec"]["command"][-1]
        else:
            assert ready["httpGet"]["path"] == "/readyz", name
            assert live["httpGet"]["path"] in ("/healthz", "/livez"), name
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), name


# ---- the webhook configurations -------------------------------------------------------------------


def test_mutating_webhook_can_only_ever_block_pods_that_ask_for_a_model() -> None:
    docs = render()
    config = find(docs, "MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 5
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"] == [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
         "scope": "Namespaced"},
    ]  # fmt: skip
    expressions = [c["expression"] for c in hook["matchConditions"]]
    assert any(f"'{MODEL_ANNOTATION}' in object.metadata.annotations" in e for e in expressions)
    (selector,) = hook["namespaceSelector"]["matchExpressions"]
    assert selector["key"] == "kubernetes.io/metadata.name"
    assert selector["operator"] == "NotIn"
    assert {"kube-system", NAMESPACE} <= set(selector["values"])
    service = hook["clientConfig"]["service"]
    assert service["path"] == "/mutate-pod"
    assert service["namespace"] == NAMESPACE


def test_validating_webhook_checks_workloads_and_fails_open() -> None:
    docs = render()
    (hook,) = find(docs, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["clientConfig"]["service"]["path"] == "/validate-workload"
    covered = {
        (group, resource)
        for rule in hook["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if set(rule["operations"]) == {"CREATE", "UPDATE"}
    }
    assert covered == {
        ("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets"),
        ("batch", "jobs"), ("batch", "cronjobs"),
    }  # fmt: skip
    (selector,) = hook["namespaceSelector"]["matchExpressions"]
    assert {"kube-system", NAMESPACE} <= set(selector["values"])


def test_webhook_service_reaches_the_container_port() -> None:
    docs = render("--set", "webhook.port=9443")
    service = find(docs, "Service", f"{FULLNAME}-webhook")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        ref = find(docs, kind)["webhooks"][0]["clientConfig"]["service"]
        assert ref["name"] == service["metadata"]["name"]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
    c = container(docs, f"{FULLNAME}-webhook", "webhook")
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named[port["targetPort"]] == 9443
    assert flag(c["args"], "port") == "9443"
    pod_labels = find(docs, "Deployment", f"{FULLNAME}-webhook")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_no_webhook_configuration_without_a_webhook_to_answer_it() -> None:
    docs = render("--set", "webhook.enabled=false")
    assert not kinds(docs) & {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
    assert not any(d["metadata"]["name"].endswith("-webhook") for d in docs)


def test_webhook_is_highly_available_by_default() -> None:
    docs = render()
    deployment = find(docs, "Deployment", f"{FULLNAME}-webhook")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    pdb = find(docs, "PodDisruptionBudget", f"{FULLNAME}-webhook")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    one = render("--set", "webhook.replicas=1")
    assert not [d for d in one if d["kind"] == "PodDisruptionBudget" and "webhook" in d["metadata"]["name"]]


def test_priority_class_and_node_selector_reach_every_component() -> None:
    docs = render(
        "--set", "priorityClassName=system-cluster-critical", "--set", "nodeSelector.pool=system",
        "--set", "router.nodeSelector.zone=edge", "--set", "scheduler.enabled=true",
    )  # fmt: skip
    for name, spec in pod_specs(docs):
        assert spec["priorityClassName"] == "system-cluster-critical", name
        assert spec["nodeSelector"]["pool"] == "system", name
    assert find(docs, "Deployment", f"{FULLNAME}-router")["spec"]["template"]["spec"]["nodeSelector"] == {
        "pool": "system",
        "zone": "edge",
    }


# ---- TLS ----------------------------------------------------------------------------------------------


def _secret_pem(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def _check_chain(leaf_pem: bytes, ca_pem: bytes, names: set[str]) -> None:
    leaf = x509.load_pem_x509_certificate(leaf_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= names


def test_generated_certificates_chain_to_the_ca_in_both_webhook_configurations() -> None:
    docs = render("--set", "router.tls.hosts[0]=models.example.com")
    ca_secret = find(docs, "Secret", f"{FULLNAME}-ca")
    ca_pem = _secret_pem(ca_secret, "tls.crt")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        assert base64.b64decode(find(docs, kind)["webhooks"][0]["clientConfig"]["caBundle"]) == ca_pem, kind
    webhook_secret = find(docs, "Secret", f"{FULLNAME}-webhook-tls")
    assert _secret_pem(webhook_secret, "ca.crt") == ca_pem
    svc = f"{FULLNAME}-webhook"
    _check_chain(_secret_pem(webhook_secret, "tls.crt"), ca_pem, {f"{svc}.{NAMESPACE}.svc"})
    router_secret = find(docs, "Secret", f"{FULLNAME}-router-tls")
    _check_chain(
        _secret_pem(router_secret, "tls.crt"),
        ca_pem,
        {f"{FULLNAME}-router.{NAMESPACE}.svc", "models.example.com"},
    )
    mounted = find(docs, "Deployment", svc)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": webhook_secret["metadata"]["name"]}} in mounted


@pytest.mark.parametrize("value_set", ["cert-manager", "cert-manager-detected"])
def test_cert_manager_issues_the_certificates_and_injects_the_ca(value_set: str) -> None:
    docs = render(*VALUE_SETS[value_set])
    assert not [d for d in docs if d["kind"] == "Secret"], "helm must not generate keys next to cert-manager"
    certificates = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Certificate"}
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = find(docs, kind)
        assert "caBundle" not in config["webhooks"][0]["clientConfig"]
        namespace, name = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].split("/")
        assert namespace == NAMESPACE
        serving = certificates[name]
        assert f"{FULLNAME}-webhook.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    mounted = find(docs, "Deployment", f"{FULLNAME}-webhook")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": serving["spec"]["secretName"]}} in mounted
    # The serving certificates come from the chart's CA issuer, itself from a self-signed root.
    issuers = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Issuer"}
    assert issuers[serving["spec"]["issuerRef"]["name"]] == {"ca": {"secretName": f"{FULLNAME}-cm-ca"}}
    assert certificates[f"{FULLNAME}-ca"]["spec"]["isCA"] is True


def test_cert_manager_with_an_existing_issuer_creates_no_ca() -> None:
    docs = render(
        "--set", "certManager.enabled=true", "--set", "certManager.issuerRef.name=corp-ca",
        "--set", "certManager.issuerRef.kind=ClusterIssuer",
    )  # fmt: skip
    assert "Issuer" not in kinds(docs)
    for cert in (d for d in docs if d["kind"] == "Certificate"):
        assert cert["spec"]["issuerRef"]["name"] == "corp-ca"
        assert cert["spec"]["issuerRef"]["kind"] == "ClusterIssuer"


# ---- RBAC -------------------------------------------------------------------------------------------


def _rules(docs: list[dict[str, Any]], kind: str, name: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted(
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in find(docs, kind, name)["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    )


def test_rbac_grants_only_what_each_component_reads_or_changes() -> None:
    docs = render("--set", "scheduler.enabled=true")
    for doc in docs:
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"wildcard in {doc['kind']} {doc['metadata']['name']}"
    read = ("get", "list", "watch")
    watch = ("list", "watch")
    assert _rules(docs, "ClusterRole", f"{FULLNAME}-webhook") == [
        ("", "configmaps", read),
        ("ml.example", "instancetypes", read),
    ]
    assert _rules(docs, "ClusterRole", f"{FULLNAME}-router") == [
        ("", "pods", watch),
        ("", "secrets", read),
        ("apps", "deployments", ("get",)),
        ("apps", "deployments/scale", ("get", "patch")),
    ]
    extender = _rules(docs, "ClusterRole", f"{FULLNAME}-scheduler-extender")
    assert extender == [("", "nodes", watch), ("", "pods", watch)]
    # The scheduler may create leases in its namespace but renew only its own.
    rules = find(docs, "Role", f"{FULLNAME}-scheduler-lease")["rules"]
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]} in rules
    assert {
        "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
        "resourceNames": ["inferplane-scheduler"], "verbs": ["get", "update"],
    } in rules  # fmt: skip
    # Router replicas each publish a Lease named after their pod (and delete it on the way out):
    # no resourceNames possible.
    assert _rules(docs, "Role", f"{FULLNAME}-router-lease") == [
        ("coordination.k8s.io", "leases", ("create", "delete", "get", "list", "patch", "update", "watch"))
    ]
    bound = {
        d["roleRef"]["name"]
        for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["subjects"][0]["name"] == f"{FULLNAME}-scheduler"
    }
    assert bound == {"system:kube-scheduler", "system:volume-scheduler", f"{FULLNAME}-scheduler-extender"}


def test_router_limited_to_namespaces_gets_a_role_in_each_not_a_cluster_role() -> None:
    docs = render("--set", "router.watchNamespaces={team-a,team-b}")
    mine = [d for d in docs if d["metadata"]["name"] == f"{FULLNAME}-router"]
    assert not [d for d in mine if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for kind in ("Role", "RoleBinding"):
        assert sorted(d["metadata"]["namespace"] for d in mine if d["kind"] == kind) == ["team-a", "team-b"]
    bindings = [d for d in mine if d["kind"] == "RoleBinding"]
    subjects = {(s["name"], s["namespace"]) for b in bindings for s in b["subjects"]}
    assert subjects == {(f"{FULLNAME}-router", NAMESPACE)}
    args = container(docs, f"{FULLNAME}-router", "router")["args"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]
    # The single namespace of earlier releases still counts (an upgrade with --reuse-values).
    old = render("--set", "router.watchNamespace=team-c")
    assert find(old, "Role", f"{FULLNAME}-router")["metadata"]["namespace"] == "team-c"
    assert flag(container(old, f"{FULLNAME}-router", "router")["args"], "namespace") == "team-c"


def test_router_leases_are_named_after_the_release() -> None:
    args = container(render(), f"{FULLNAME}-router", "router")["args"]
    assert flag(args, "lease-prefix") == f"{FULLNAME}-router"
    other = render("--set", "fullnameOverride=models-b")
    assert flag(container(other, "models-b-router", "router")["args"], "lease-prefix") == "models-b-router"


def test_router_mirror_body_limit_reaches_the_flag() -> None:
    for extra, expected in (((), "1048576"), (("--set", "router.mirrorMaxBodyBytes=8388608"), "8388608")):
        args = container(render(*extra), f"{FULLNAME}-router", "router")["args"]
        assert flag(args, "mirror-max-body-bytes") == expected


def test_router_without_autoscale_cannot_scale_anything() -> None:
    docs = render("--set", "router.autoscale=false")
    assert "--no-autoscale" in container(docs, f"{FULLNAME}-router", "router")["args"]
    assert not [r for r in _rules(docs, "ClusterRole", f"{FULLNAME}-router") if "scale" in r[1]]
    # The load Leases stay: the replicas still divide each pod's concurrency limit among them.
    assert find(docs, "Role", f"{FULLNAME}-router-lease")["metadata"]["namespace"] == NAMESPACE


def test_scheduler_configuration_agrees_with_the_webhook_and_the_sidecar() -> None:
    docs = render(
        "--set",
        "scheduler.enabled=true",
        "--set",
        "scheduler.name=gpu-sched",
        "--set",
        "scheduler.extender.port=9999",
    )
    config = yaml.safe_load(find(docs, "ConfigMap", f"{FULLNAME}-scheduler")["data"]["config.yaml"])
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert [p["schedulerName"] for p in config["profiles"]] == ["gpu-sched"]
    assert config["leaderElection"] == {
        "leaderElect": True, "resourceLock": "leases", "resourceNamespace": NAMESPACE,
        "resourceName": "gpu-sched",
    }  # fmt: skip
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:9999"
    assert (extender["filterVerb"], extender["prioritizeVerb"]) == ("filter", "prioritize")
    assert extender["nodeCacheCapable"] is True
    assert extender["ignorable"] is False
    assert extender["weight"] > 0
    sidecar = container(docs, f"{FULLNAME}-scheduler", "extender")
    assert sidecar["args"] == ["extender", "--port=9999", "--cpu-pods-on-gpu-nodes=allow"]
    assert flag(container(docs, f"{FULLNAME}-webhook", "webhook")["args"], "scheduler-name") == "gpu-sched"
    lease_role = find(docs, "Role", f"{FULLNAME}-scheduler-lease")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert ["gpu-sched"] in [r.get("resourceNames") for r in lease_role["rules"]]


def test_scheduler_configuration_is_the_shipped_one_with_this_release_names() -> None:
    shipped = yaml.safe_load((REPO / "examples" / "scheduler" / "inferplane-scheduler.yaml").read_text())
    docs = render("--set", "scheduler.enabled=true")
    config = yaml.safe_load(find(docs, "ConfigMap", f"{FULLNAME}-scheduler")["data"]["config.yaml"])
    assert config["leaderElection"]["resourceNamespace"] == NAMESPACE
    del config["leaderElection"], shipped["leaderElection"]
    assert config == shipped  # defaults change nothing else (same port, profile name, verbs, tuning)
    chosen = render(
        "--set", "scheduler.enabled=true", "--set", "scheduler.extender.weight=3",
        "--set", "scheduler.extender.httpTimeout=4s", "--set", "scheduler.extender.ignorable=true",
    )  # fmt: skip
    config = yaml.safe_load(find(chosen, "ConfigMap", f"{FULLNAME}-scheduler")["data"]["config.yaml"])
    (extender,) = config["extenders"]
    assert (extender["weight"], extender["httpTimeout"], extender["ignorable"]) == (3, "4s", True)
    assert extender["preemptVerb"] == shipped["extenders"][0]["preemptVerb"]


def test_marker_resources_are_passed_to_the_extender_and_the_scheduler() -> None:
    docs = render(
        "--set", "scheduler.enabled=true",
        "--set", "scheduler.extender.managedResources[0].name=ml.example/scheduled",
        "--set", "scheduler.extender.managedResources[0].ignoredByScheduler=true",
        "--set", "scheduler.extender.managedResources[1].name=nvidia.com/gpu",
    )  # fmt: skip
    config = yaml.safe_load(find(docs, "ConfigMap", f"{FULLNAME}-scheduler")["data"]["config.yaml"])
    assert config["extenders"][0]["managedResources"] == [
        {"name": "ml.example/scheduled", "ignoredByScheduler": True},
        {"name": "nvidia.com/gpu"},
    ]
    # Only the marker is hidden from the device count; a GPU stays a GPU.
    args = container(docs, f"{FULLNAME}-scheduler", "extender")["args"]
    assert [a for a in args if a.startswith("--marker-resource")] == [
        "--marker-resource=ml.example/scheduled"
    ]


def test_accelerators_and_the_metrics_listener_reach_the_extender_as_flags_it_accepts() -> None:
    from extender.resources import Accelerators
    from inferplane import cli

    default = container(render("--set", "scheduler.enabled=true"), f"{FULLNAME}-scheduler", "extender")
    assert "ports" not in default  # nothing listens off the pod unless asked
    docs = render(
        "--set", "scheduler.enabled=true", "--set", "scheduler.extender.metrics.enabled=true",
        "--set", "scheduler.extender.acceleratorResources[0]=xilinx.com/fpga-*",
        "--set", "scheduler.extender.acceleratorResources[1]=example.com/tpu",
    )  # fmt: skip
    sidecar = container(docs, f"{FULLNAME}-scheduler", "extender")
    assert sidecar["ports"] == [{"name": "metrics", "containerPort": 9891, "protocol": "TCP"}]
    # The probes still go to the loopback listener.
    assert "127.0.0.1:8890/readyz" in sidecar["readinessProbe"]["exec"]["command"][-1]
    args = cli.build_parser().parse_args(sidecar["args"])
    assert (args.port, args.metrics_port, args.metrics_host) == (8890, 9891, "0.0.0.0")
    assert args.accelerator_resource == ["xilinx.com/fpga-*", "example.com/tpu"]
    assert "xilinx.com/fpga-u200" in Accelerators(args.accelerator_resource)


def test_the_webhook_gets_the_default_instance_type_marker_and_global_node_selector() -> None:
    from webhook.config import InjectionConfig

    defaults = container(render(), f"{FULLNAME}-webhook", "webhook")["args"]
    config = InjectionConfig()  # the chart's defaults are the webhook's own
    assert (flag(defaults, "default-cpu"), flag(defaults, "default-memory")) == (
        config.default_cpu,
        config.default_memory,
    )
    assert flag(defaults, "scheduler-marker-resource") is None and flag(defaults, "node-selector") is None
    docs = render(
        "--set", "webhook.defaultInstanceType.cpu=250m", "--set", "webhook.defaultInstanceType.memory=768Mi",
        "--set", "scheduler.markerResource=ml.example/placement",
        "--set", "nodeSelector.pool=edge", "--set", "nodeSelector.kubernetes\\.io/os=linux",
    )  # fmt: skip
    args = container(docs, f"{FULLNAME}-webhook", "webhook")["args"]
    assert (flag(args, "default-cpu"), flag(args, "default-memory")) == ("250m", "768Mi")
    assert flag(args, "scheduler-marker-resource") == "ml.example/placement"
    # The same nodeSelector places our own pods and reaches every model pod through the webhook.
    assert [a for a in args if a.startswith("--node-selector=")] == [
        "--node-selector=kubernetes.io/os=linux",
        "--node-selector=pool=edge",
    ]
    webhook_pod = find(docs, "Deployment", f"{FULLNAME}-webhook")["spec"]["template"]["spec"]
    assert webhook_pod["nodeSelector"] == {"pool": "edge", "kubernetes.io/os": "linux"}


def test_without_the_scheduler_the_webhook_leaves_scheduler_name_alone() -> None:
    args = container(render(), f"{FULLNAME}-webhook", "webhook")["args"]
    assert flag(args, "scheduler-name") is None


def test_scheduler_image_follows_the_cluster_minor_version() -> None:
    docs = render("--set", "scheduler.enabled=true", "--kube-version", "v1.31.4")
    assert (
        container(docs, f"{FULLNAME}-scheduler", "kube-scheduler")["image"]
        == "registry.k8s.io/kube-scheduler:v1.31.0"
    )
    docs = render("--set", "scheduler.enabled=true", "--set", "scheduler.image.tag=v1.31.4")
    assert container(docs, f"{FULLNAME}-scheduler", "kube-scheduler")["image"].endswith(":v1.31.4")


# ---- router -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service_type", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_router_service_of_each_type(service_type: str) -> None:
    extra = ["--set", f"router.service.type={service_type}", "--set", "router.service.nodePort=30443"]
    extra += ["--set", "router.service.loadBalancerSourceRanges={10.0.0.0/8}"]
    service = find(render(*extra), "Service", f"{FULLNAME}-router")["spec"]
    assert service["type"] == service_type
    (port,) = service["ports"]
    assert (port["port"], port["targetPort"]) == (443, "https")
    assert ("nodePort" in port) == (service_type != "ClusterIP")
    assert ("loadBalancerSourceRanges" in service) == (service_type == "LoadBalancer")


def test_router_ha_runs_three_spread_replicas_and_one_without() -> None:
    docs = render()
    deployment = find(docs, "Deployment", f"{FULLNAME}-router")
    assert deployment["spec"]["replicas"] == 3
    # Soft spread: a 2-node cluster still runs all three (Azure's hard anti-affinity does not).
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert find(docs, "PodDisruptionBudget", f"{FULLNAME}-router")
    single = render("--set", "router.ha=false")
    assert find(single, "Deployment", f"{FULLNAME}-router")["spec"]["replicas"] == 1
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget" and "router" in d["metadata"]["name"]]


def test_router_plain_http_only_when_allowed() -> None:
    docs = render("--set", "router.allowInsecureConnections=true")
    router = container(docs, f"{FULLNAME}-router", "router")
    assert flag(router["args"], "tls-cert-file") is None
    assert router["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    (port,) = find(docs, "Service", f"{FULLNAME}-router")["spec"]["ports"]
    assert (port["name"], port["port"]) == ("http", 80)


def test_router_uses_an_azure_style_ssl_secret_as_is() -> None:
    docs = render(*VALUE_SETS["azure-ssl-secret"])
    volumes = find(docs, "Deployment", f"{FULLNAME}-router")["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    assert tls["secret"] == {
        "secretName": "azureml-ssl",
        "items": [{"key": "cert.pem", "path": "tls.crt"}, {"key": "key.pem", "path": "tls.key"}],
    }
    router = container(docs, f"{FULLNAME}-router", "router")
    assert flag(router["args"], "tls-cert-file") == "/etc/inferplane/tls/tls.crt"
    assert not [d for d in docs if d["kind"] == "Secret" and "router" in d["metadata"]["name"]]


def test_router_inline_pem_becomes_a_secret() -> None:
    docs = render("--set-string", "router.tls.certPem=CERT", "--set-string", "router.tls.keyPem=KEY")
    secret = find(docs, "Secret", f"{FULLNAME}-router-user-tls")
    assert base64.b64decode(secret["data"]["tls.crt"]) == b"CERT"
    assert base64.b64decode(secret["data"]["tls.key"]) == b"KEY"


# ---- CRD, labels, helm test -------------------------------------------------------------------------


def test_crd_is_the_projects_own_file() -> None:
    docs = render()
    crd = find(docs, "CustomResourceDefinition")
    source = yaml.safe_load((REPO / "instance_types" / "crd.yaml").read_text())
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "CustomResourceDefinition" not in kinds(render("--set", "crds.install=false"))
    assert (
        "annotations" not in find(render("--set", "crds.keep=false"), "CustomResourceDefinition")["metadata"]
    )


def test_every_object_carries_the_recommended_labels() -> None:
    for doc in render("--set", "scheduler.enabled=true"):
        labels = doc["metadata"]["labels"]
        where = f"{doc['kind']} {doc['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "inferplane", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["helm.sh/chart"] == "inferplane-0.1.0", where
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert "app.kubernetes.io/version" not in selector and "helm.sh/chart" not in selector, where


def test_helm_test_pod_calls_each_enabled_server_with_the_ca_only() -> None:
    docs = render()
    pod = find(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    (probe,) = spec["containers"]
    assert probe["command"] == ["python", "/etc/inferplane/test/probe.py"]
    assert probe["args"] == [
        f"https://{FULLNAME}-webhook.{NAMESPACE}.svc:443", "/etc/inferplane/webhook-ca/ca.crt",
        f"https://{FULLNAME}-router.{NAMESPACE}.svc:443", "/etc/inferplane/router-ca/ca.crt",
    ]  # fmt: skip
    for volume in spec["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], volume["name"]
    script = find(docs, "ConfigMap", f"{FULLNAME}-test")["data"]["probe.py"]
    assert script == (CHART / "files" / "helm_test_probe.py").read_text()
    assert "Pod" not in kinds(render("--set", "tests.enabled=false"))


def test_kind_values_render_and_match_the_kind_cluster() -> None:
    """hack/kind cannot run here (no Docker engine); what it relies on can still be checked."""
    kind = REPO / "hack" / "kind"
    docs = render("--values", str(kind / "values.yaml"))
    router = find(docs, "Service", f"{FULLNAME}-router")["spec"]
    cluster = yaml.safe_load((kind / "cluster.yaml").read_text())
    mapped = {
        m["containerPort"]: m["hostPort"] for n in cluster["nodes"] for m in n.get("extraPortMappings", [])
    }
    assert router["type"] == "NodePort"
    assert mapped[router["ports"][0]["nodePort"]] == 8443  # https://localhost:8443, as e2e.sh calls it
    for _, spec in pod_specs(docs):
        for c in spec["containers"]:
            if c["image"].startswith("inferplane"):
                assert (c["image"], c["imagePullPolicy"]) == (
                    "inferplane:dev",
                    "Never",
                )  # kind load, never pulled
    e2e = (kind / "e2e.sh").read_text()
    assert "https://localhost:8443/api/v1/endpoint/" in e2e
    # The release is named inferplane there, so its generated router Secret is inferplane-router-tls.
    assert (
        "secret inferplane-router-tls" in e2e
        and "upgrade --install inferplane charts/inferplane" in (kind / "up.sh").read_text()
    )
    workers = [n for n in cluster["nodes"] if n["role"] == "worker"]
    storage = (REPO / "examples" / "models" / "storage.yaml").read_text()
    volume = next(d for d in yaml.safe_load_all(storage) if d and d["kind"] == "PersistentVolume")
    local_path = volume["spec"]["local"]["path"]
    assert all(m["containerPath"] == local_path for n in workers for m in n["extraMounts"])


def test_a_local_run_registers_the_charts_webhooks_calling_its_own_url() -> None:
    """`inferplane demo` and the e2e tests register what `helm install` would, except where the
    apiserver calls: a URL on loopback with its CA instead of the chart's Service."""
    from demo.webhooks import point_at_loopback, render_chart_webhooks, webhook_configurations

    applied = webhook_configurations(helm_path(), "https://127.0.0.1:9443", b"PEM")["items"]
    for config in applied:
        chart = find(render(), config["kind"])
        for ours, theirs in zip(config["webhooks"], chart["webhooks"], strict=True):
            assert ours["clientConfig"] == {
                "url": "https://127.0.0.1:9443" + theirs["clientConfig"]["service"]["path"],
                "caBundle": base64.b64encode(b"PEM").decode(),
            }
            assert {**ours, "clientConfig": None} == {**theirs, "clientConfig": None}
        assert config["metadata"]["name"] == "inferplane-demo"
    scoped = point_at_loopback(
        render_chart_webhooks(helm_path(), RELEASE)[0], name="e2e", base_url="https://x", ca_pem=b"",
        scope={"e2e-run": "1"},
    )  # fmt: skip
    selector = scoped["webhooks"][0]["namespaceSelector"]
    assert selector["matchLabels"] == {"e2e-run": "1"}
    assert selector["matchExpressions"]  # the chart's exclusions (kube-system, its own namespace) kept
