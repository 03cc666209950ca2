"""Issue 3's webhook scenarios, each through the real kube-apiserver and kube-controller-manager.

Our webhook runs on loopback in cluster mode (it lists and watches InstanceTypes and registration
ConfigMaps through the control plane), registered by the chart's own webhook configurations as helm
renders them (see webhook_fixtures). Everything is asserted on what a user sees: the pod as the
apiserver stored it, kubectl's output and exit code, a ReplicaSet's ReplicaFailure condition.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from inferplane.localcluster.controlplane import ControlPlane

from .webhook_fixtures import (
    INIT_IMAGE,
    INJECTED,
    INSTANCE_TYPE,
    MODEL,
    MUTATING_WEBHOOK,
    SIDECAR,
    SIDECAR_ENV,
    SIDECAR_VOLUME,
    VALIDATING_WEBHOOK,
    SidecarWebhook,
    WebhookEnv,
    as_list,
    example_deployment,
    injection_gaps,
    model_pod,
    pod_tolerations,
    serve_sidecar,
)

pytestmark = pytest.mark.e2e

DEFINED_TYPES = ("cpu-large", "cpu-small", "gpu-a100", "gpu-t4")  # examples/catalog/instancetypes.yaml
T4_SELECTOR = {"nvidia.com/gpu.product": "Tesla-T4"}
GPU_TOLERATION = ("nvidia.com/gpu", "Exists", "", "NoSchedule", "")
# What DefaultTolerationSeconds gives every pod before the webhooks run.
DEFAULT_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "Exists", "", "NoExecute", "300"),
    ("node.kubernetes.io/unreachable", "Exists", "", "NoExecute", "300"),
]
APP_ROOT = "/var/azureml-app"
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def env(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    helm_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookEnv]:
    """CRD + example InstanceTypes, our webhook, and the chart's configurations pointed at it."""
    request.getfixturevalue("crd")
    shared = WebhookEnv(control_plane, helm_binary, tmp_path_factory.mktemp("webhook-e2e"))
    try:
        shared.start()
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def ns(env: WebhookEnv, fresh_namespace: str) -> str:
    """A fresh namespace our webhooks serve, with iris:3 registered and mutation seen working."""
    return env.admit(fresh_namespace)


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


# ---- 1. Deployment -> ReplicaSet -> injected pods ---------------------------------------------------


def test_deployment_pods_carry_exactly_the_injection(env: WebhookEnv, ns: str) -> None:
    template = {MODEL: "iris:3", INSTANCE_TYPE: "gpu-t4", "ml.example/endpoint": "iris"}
    deployment = example_deployment("iris-gpu", ns, template, replicas=2)
    mutated = env.webhook.reviews("mutated")
    env.cp.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    pods = env.wait_for_pods(ns, "iris-gpu", 2)
    # One change per pod. The apiserver calls us again after its own plugins touch our output
    # (reinvocationPolicy IfNeeded); that second pass must be an empty patch.
    assert env.webhook.reviews("mutated") - mutated == 2

    for pod in pods:
        spec, metadata = pod["spec"], pod["metadata"]
        # Created by the Deployment's ReplicaSet, not by anything of ours.
        (owner,) = metadata["ownerReferences"]
        assert owner["kind"] == "ReplicaSet" and owner["name"].startswith("iris-gpu-")

        volumes = {v["name"]: v for v in spec["volumes"]}
        service_account = [n for n in volumes if n.startswith("kube-api-access-")]
        assert len(service_account) == 1, volumes  # the ServiceAccount plugin's, untouched
        assert sorted(volumes) == sorted(
            [*service_account, "inferplane-app", "inferplane-config-iris-3", "inferplane-model-iris-3"]
        )
        assert volumes["inferplane-app"] == {"name": "inferplane-app", "emptyDir": {}}
        assert volumes["inferplane-config-iris-3"]["configMap"] == {"name": "iris-3", "defaultMode": 420}
        assert volumes["inferplane-model-iris-3"]["persistentVolumeClaim"] == {
            "claimName": "inferplane-models",
            "readOnly": True,
        }

        (init,) = spec["initContainers"]
        assert init["name"] == "model-init" and init["image"] == INIT_IMAGE
        assert init["command"][:2] == ["inferplane", "model-init"]
        assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]} == {
            "inferplane-app": APP_ROOT,
            "inferplane-config-iris-3": "/etc/inferplane/models/iris/3",
            "inferplane-model-iris-3": "/mnt/models/iris/3",
            # The ServiceAccount plugin mounts its token into every container; it runs again
            # after our patch and we must not strip that from model-init on our second pass.
            **{name: SERVICE_ACCOUNT_MOUNT for name in service_account},
        }
        assert init["securityContext"]["runAsNonRoot"] is True
        assert init["securityContext"]["capabilities"] == {"drop": ["ALL"]}

        (scorer,) = spec["containers"]  # the user's container: still the only one
        assert scorer["name"] == "scorer"
        assert scorer["env"] == [
            {"name": "AZUREML_MODEL_DIR", "value": f"{APP_ROOT}/azureml-models/iris/3"},
            {"name": "AML_APP_ROOT", "value": APP_ROOT},
            {"name": "AZUREML_ENTRY_SCRIPT", "value": "score.py"},
        ]
        mounts = [m for m in scorer["volumeMounts"] if not m["name"].startswith("kube-api-access-")]
        assert mounts == [{"name": "inferplane-app", "mountPath": APP_ROOT, "readOnly": True}]
        # gpu-t4's resources. The GPU is a limit only in the InstanceType; the request beside it
        # is the apiserver's defaulting, which runs again after our patch.
        assert scorer["resources"] == {
            "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        }
        assert spec["nodeSelector"] == T4_SELECTOR
        assert sorted(pod_tolerations(pod)) == sorted([*DEFAULT_TOLERATIONS, GPU_TOLERATION])

        assert metadata["labels"][INSTANCE_TYPE] == "gpu-t4"
        assert metadata["labels"]["ml.example/endpoint"] == "iris"
        status = json.loads(metadata["annotations"][INJECTED])
        assert (status["instanceType"], status["models"]) == ("gpu-t4", ["iris:3"])
        assert injection_gaps(pod) == []


# ---- 2. webhook down: fail closed for model pods only, and recovery ----------------------------------


def test_outage_refuses_only_model_pods_and_the_replicaset_recovers(env: WebhookEnv, ns: str) -> None:
    cp, core = env.cp, k8s.CoreV1Api(env.cp.api())
    since = core.list_namespaced_pod(ns).metadata.resource_version
    env.webhook.stop()
    try:
        # The workload check is advice only (failurePolicy Ignore): the apply goes through.
        model = example_deployment("iris-down", ns, {MODEL: "iris:3", INSTANCE_TYPE: "cpu-small"})
        plain = example_deployment("plain", ns, {}, replicas=1)
        cp.kubectl("apply", "-f", "-", input=as_list([model, plain]))
        env.wait_for_pods(ns, "plain", 1)  # never sent to the webhook (matchConditions)

        refused = cp.kubectl(
            "create", "-f", "-", input=json.dumps(model_pod("bare", ns, {MODEL: "iris:3"})), check=False
        )
        assert refused.returncode != 0
        assert f'failed calling webhook "{MUTATING_WEBHOOK}"' in refused.stderr, refused.stderr

        failure = cp.wait_for(
            lambda: env.replica_failure(ns, "iris-down"), 30, "the ReplicaSet to report the outage"
        )
        assert MUTATING_WEBHOOK in failure, failure
        assert env.pods(ns, "iris-down") == []
    finally:
        env.webhook.start()

    # The ReplicaSet controller retries on its own; nobody touches the Deployment.
    pods = env.wait_for_pods(ns, "iris-down", 2, timeout=90)
    assert all(injection_gaps(p) == [] for p in pods)

    # Every pod that ever existed in the namespace since the outage began, from the apiserver's
    # own history: each model pod was complete from its first appearance.
    first_seen: dict[str, dict[str, Any]] = {}
    stream = watch.Watch().stream(
        core.list_namespaced_pod, ns, resource_version=since, timeout_seconds=2, _request_timeout=10
    )
    for event in stream:
        pod = cp.api().sanitize_for_serialization(event["object"])
        first_seen.setdefault(pod["metadata"]["name"], pod)
    model_pods = {n: p for n, p in first_seen.items() if MODEL in (p["metadata"].get("annotations") or {})}
    assert len(model_pods) == 2, sorted(first_seen)
    assert {n: injection_gaps(p) for n, p in model_pods.items()} == {n: [] for n in model_pods}
    plain_pods = [p for p in first_seen.values() if p["metadata"]["labels"].get("app") == "plain"]
    assert len(plain_pods) == 1 and "initContainers" not in plain_pods[0]["spec"]


# ---- 3. apply-time validation of workloads ------------------------------------------------------------


def test_apply_denies_an_unknown_instance_type_naming_the_defined_ones(env: WebhookEnv, ns: str) -> None:
    deployment = example_deployment("iris-h100", ns, {MODEL: "iris:3", INSTANCE_TYPE: "gpu-h100"})
    result = env.cp.kubectl("apply", "-f", "-", input=json.dumps(deployment), check=False)
    assert result.returncode != 0
    assert f'admission webhook "{VALIDATING_WEBHOOK}" denied the request' in result.stderr, result.stderr
    assert 'instance type "gpu-h100" not found; defined:' in result.stderr
    assert all(name in result.stderr for name in DEFINED_TYPES), result.stderr
    assert env.cp.kubectl("get", "deployment", "iris-h100", "-n", ns, check=False).returncode != 0


def test_apply_warns_about_annotations_on_the_deployment_itself(env: WebhookEnv, ns: str) -> None:
    deployment = example_deployment("misplaced", ns, {}, metadata_annotations={MODEL: "iris:3"}, replicas=1)
    result = env.cp.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    assert (
        "Warning: ml.example/model is on the Deployment, not on its pod template; "
        "move it to spec.template.metadata.annotations"
    ) in result.stderr, result.stderr
    # As warned: the pods carry no model, so our webhook leaves them alone.
    (pod,) = env.wait_for_pods(ns, "misplaced", 1)
    assert "initContainers" not in pod["spec"]


def test_warn_mode_admits_the_deployment_and_its_pods_are_still_refused(env: WebhookEnv, ns: str) -> None:
    env.webhook.start("--unknown-reference", "warn")
    try:
        deployment = example_deployment("iris-h100", ns, {MODEL: "iris:3", INSTANCE_TYPE: "gpu-h100"})
        result = env.cp.kubectl("apply", "-f", "-", input=json.dumps(deployment))
        assert 'Warning: instance type "gpu-h100" not found; defined:' in result.stderr, result.stderr
        assert "deployment.apps/iris-h100 created" in result.stdout
        # The pod webhook is the gate: `kubectl describe rs` says why no pod appears.
        failure = env.cp.wait_for(
            lambda: env.replica_failure(ns, "iris-h100"), 30, "the ReplicaSet to report the denial"
        )
        assert f'admission webhook "{MUTATING_WEBHOOK}" denied the request' in failure, failure
        assert 'instance type "gpu-h100" not found; defined:' in failure
        assert all(name in failure for name in DEFINED_TYPES), failure
        assert env.pods(ns, "iris-h100") == []
    finally:
        env.webhook.start()


# ---- 4. reinvocation beside another mutating webhook -------------------------------------------------


@pytest.fixture(params=["before", "after"])
def sidecar(request: pytest.FixtureRequest, env: WebhookEnv, ns: str) -> Iterator[SidecarWebhook]:
    """A sidecar injector whose configuration sorts before or after ours (the apiserver calls
    configurations in name order)."""
    prefix = "a" if request.param == "before" else "z"
    assert (f"{prefix}-" < env.config_name) == (request.param == "before")
    yield from serve_sidecar(env.cp, env, f"{prefix}-mesh-{env.run}")


def test_reinvocation_beside_a_sidecar_injector_duplicates_nothing(
    env: WebhookEnv, ns: str, sidecar: SidecarWebhook, request: pytest.FixtureRequest
) -> None:
    order = request.node.callspec.params["sidecar"]
    probe = model_pod("probe", ns, {MODEL: "iris:3"})
    env.cp.wait_for(
        lambda: (pod := env.dry_run(probe)[0]) is not None and SIDECAR in _names(pod["spec"]["containers"]),
        30,
        "the sidecar webhook to be called",
    )
    sidecar.calls.clear()
    mutated, unchanged = env.webhook.reviews("mutated"), env.webhook.reviews("unchanged")

    annotations = {MODEL: "iris:3", INSTANCE_TYPE: "gpu-t4"}
    created = env.cp.kubectl(
        "create", "-o", "json", "-f", "-", input=json.dumps(model_pod("m", ns, annotations))
    )
    stored = env.cp.api().sanitize_for_serialization(
        k8s.CoreV1Api(env.cp.api()).read_namespaced_pod(json.loads(created.stdout)["metadata"]["name"], ns)
    )
    spec = stored["spec"]

    # Nothing twice: volumes, containers, init containers, env, tolerations.
    for what, names in {
        "volumes": _names(spec["volumes"]),
        "containers": _names(spec["containers"]),
        "initContainers": _names(spec["initContainers"]),
        "env": _names(spec["containers"][0]["env"]),
        "tolerations": pod_tolerations(stored),
    }.items():
        duplicated = [n for n, count in Counter(names).items() if count > 1]
        assert duplicated == [], f"{what} duplicated: {duplicated}"

    # Both injections intact.
    assert injection_gaps(stored) == []
    assert _names(spec["containers"]) == ["score", SIDECAR]
    assert _names(spec["initContainers"]) == ["model-init"]
    assert SIDECAR_VOLUME in _names(spec["volumes"])
    assert SIDECAR_ENV in spec["containers"][0]["env"]
    assert spec["nodeSelector"] == T4_SELECTOR
    assert sorted(pod_tolerations(stored)) == sorted([*DEFAULT_TOLERATIONS, GPU_TOLERATION])
    assert spec["containers"][0]["resources"]["limits"] == {
        "cpu": "4",
        "memory": "16Gi",
        "nvidia.com/gpu": "1",
    }
    # Ours changed the pod exactly once, whatever the order.
    assert env.webhook.reviews("mutated") - mutated == 1
    # The configuration order held: the sidecar's first call came before or after ours.
    assert sidecar.calls and sidecar.calls[0].saw_model_init == (order == "after"), sidecar.calls
    if order == "after":
        # The sidecar changed the pod after us: the apiserver called us again, and our second
        # pass over our own output (plus the sidecar's) was an empty patch.
        assert env.webhook.reviews("unchanged") - unchanged >= 1
    else:
        # We changed the pod after the sidecar: it was called again, saw us, and added nothing.
        assert len(sidecar.calls) >= 2, sidecar.calls
        assert sidecar.calls[-1].saw_model_init and not sidecar.calls[-1].patched


# ---- 5. server-side dry run ---------------------------------------------------------------------------


def test_dry_run_returns_the_injected_pod_and_persists_nothing(env: WebhookEnv, ns: str) -> None:
    pod = model_pod("dry", ns, {MODEL: "iris:3", INSTANCE_TYPE: "gpu-t4"})
    result = env.cp.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod))
    admitted = json.loads(result.stdout)
    assert injection_gaps(admitted) == []
    assert admitted["spec"]["nodeSelector"] == T4_SELECTOR
    assert admitted["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"

    assert env.pods(ns) == []
    assert env.cp.kubectl("get", "pod", "dry", "-n", ns, check=False).returncode != 0
    # Nothing was reserved either: the same name is free for a real create.
    env.cp.kubectl("create", "-f", "-", input=json.dumps(pod))
    assert [p["metadata"]["name"] for p in env.pods(ns)] == ["dry"]


# ---- 6. denials as kubectl prints them -----------------------------------------------------------------

BROKEN_REGISTRATION = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "broken-1",
        "labels": {"ml.example/model-name": "broken", "ml.example/model-version": "1"},
    },
    "data": {"model.yaml": "storage:\n  pvc: {claimName: models\nfiles: [\n"},
}

DENIALS: dict[str, tuple[dict[str, str], dict[str, str] | None, list[str]]] = {
    # case: (annotations, nodeSelector, what the message must say)
    "unknown-model": (
        {MODEL: "iris:9"},
        None,
        ['model "iris:9" not found in namespace "{ns}"; registered: iris:3'],
    ),
    "invalid-registration": (
        {MODEL: "broken:1"},
        None,
        [
            'registration of model "broken:1" is invalid',
            "ConfigMap {ns}/broken-1, key model.yaml: does not parse as YAML: line 3",
        ],
    ),
    "node-selector-conflict": (
        {MODEL: "iris:3", INSTANCE_TYPE: "gpu-t4"},
        {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        [
            "nodeSelector nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB conflicts with instance type "
            '"gpu-t4", which needs nvidia.com/gpu.product=Tesla-T4',
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(DENIALS))
def test_denial_names_the_problem_and_what_exists(env: WebhookEnv, ns: str, case: str) -> None:
    annotations, node_selector, fragments = DENIALS[case]
    pod = model_pod("denied", ns, annotations, node_selector)
    if case == "invalid-registration":
        env.cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(BROKEN_REGISTRATION))
        # Wait until the webhook's watch has delivered the ConfigMap.
        env.wait_for_denial(pod, fragments[0].format(ns=ns))

    result = env.cp.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    message = result.stderr
    assert f'admission webhook "{MUTATING_WEBHOOK}" denied the request: ' in message, message
    for fragment in fragments:
        assert fragment.format(ns=ns) in message, message
    assert env.pods(ns) == []
