"""The injection steps one rule at a time: names, annotations, resources, router labels, security."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inferplane.errors import UserError
from webhook.catalog import Catalog
from webhook.config import InjectionConfig
from webhook.inject.names import dns_label
from webhook.inject.problems import FieldDenied
from webhook.inject.refs import ModelRef, check_routing, parse_models, unknown_annotations
from webhook.inject.router import deployment_name
from webhook.inject.status import Status, parse_status
from webhook.mutate import mutate
from webhook.workload import check_object

CATALOG = Catalog.from_dir(str(Path(__file__).parents[1] / "golden" / "catalog"), namespace="team-a")


def pod(annotations: dict[str, str], **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": "app:1", **container}]},
    }


def inject(p: dict[str, Any], config: InjectionConfig | None = None) -> Any:
    return mutate(p, namespace="team-a", catalog=CATALOG, config=config or InjectionConfig())


def test_names_are_dns_labels_hashed_only_when_needed() -> None:
    assert dns_label("inferplane", "model", "iris", "3") == "inferplane-model-iris-3"
    lossy = dns_label("inferplane", "model", "Iris_V2", "3")
    assert (
        lossy.startswith("inferplane-model-iris-v2-3-")
        and len(lossy) == len("inferplane-model-iris-v2-3-") + 8
    )
    long = dns_label("inferplane", "model", "x" * 63, "1")
    assert len(long) == 63 and long[-9] == "-"
    assert dns_label("a", "B") != dns_label("a", "b")


def test_two_models_whose_readable_names_collide_get_distinct_volumes() -> None:
    catalog = Catalog()
    for index, (name, version) in enumerate((("a-b", "c"), ("a", "b-c"))):
        catalog.put(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"model-{index}",
                    "namespace": "team-a",
                    "labels": {"ml.example/model-name": name, "ml.example/model-version": version},
                },
                "data": {"model.yaml": "storage: {pvc: {claimName: m}}\nfiles: [{path: m.pkl}]\n"},
            }
        )
    result = mutate(
        pod({"ml.example/model": "a-b:c,a:b-c"}),
        namespace="team-a",
        catalog=catalog,
        config=InjectionConfig(),
    )
    names = [v["name"] for v in result.pod["spec"]["volumes"]]
    assert len(names) == len(set(names)) == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty; set it to name:version, e.g. iris:3"),
        ("iris:3,", "has an empty entry; remove the comma"),
        ("iris", 'model "iris" has no version; write name:version, e.g. iris:1'),
        ("ir is:3", 'model name "ir is" in "ir is:3" must be 1-63 letters'),
        ("iris:3,iris:3", "model iris:3 is listed twice"),
    ],
)
def test_model_annotation_mistakes_are_named_with_the_fix(value: str, message: str) -> None:
    with pytest.raises(FieldDenied) as denied:
        parse_models(value)
    assert message in denied.value.message
    assert denied.value.field == "metadata.annotations[ml.example/model]"


def test_models_keep_the_order_written() -> None:
    assert parse_models(" resnet:1 , iris:3") == (ModelRef("resnet", "1"), ModelRef("iris", "3"))


def test_routing_annotations() -> None:
    with pytest.raises(FieldDenied, match="must be a whole percentage 0-100"):
        check_routing({"ml.example/endpoint": "iris", "ml.example/traffic": "150"})
    with pytest.raises(FieldDenied, match="must be a DNS label"):
        check_routing({"ml.example/endpoint": "Iris Blue"})
    assert check_routing({"ml.example/mirror": "10"}) == [
        "annotation ml.example/mirror has no effect without ml.example/endpoint; add the endpoint it splits"
    ]
    assert unknown_annotations({"ml.example/instancetype": "x", "other/x": "y"}) == [
        "unknown annotation ml.example/instancetype; inferplane reads model, instance-type, container, "
        "endpoint, traffic, mirror"
    ]


def test_a_template_limit_below_the_instance_type_request_lowers_the_request_with_a_warning() -> None:
    # A template (no apiserver defaulting yet): the user's limit only.
    result = inject(
        pod(
            {"ml.example/model": "iris:3", "ml.example/instance-type": "cpu-small"},
            resources={"limits": {"cpu": "300m"}},
        )
    )
    resources = result.pod["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "300m", "memory": "2Gi"},
        "requests": {"cpu": "300m", "memory": "1Gi"},
    }
    assert any("requests.cpu lowered to its own limit 300m" in w for w in result.warnings)


def test_a_gpu_request_that_differs_from_the_limit_is_refused() -> None:
    with pytest.raises(FieldDenied) as denied:
        inject(
            pod(
                {"ml.example/model": "iris:3", "ml.example/instance-type": "gpu-a100"},
                resources={"requests": {"nvidia.com/gpu": "2"}},
            )
        )
    assert denied.value.field == "spec.containers[0].resources.requests[nvidia.com/gpu]"
    assert 'asks requests.nvidia.com/gpu 2, above instance type "gpu-a100" limit 1' in denied.value.message


def test_an_unparseable_user_quantity_is_refused_naming_it() -> None:
    with pytest.raises(FieldDenied) as denied:
        inject(pod({"ml.example/model": "iris:3"}, resources={"limits": {"cpu": "lots"}}))
    assert denied.value.field == "spec.containers[0].resources.limits[cpu]"
    assert '"lots" is not a quantity' in denied.value.message


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {
                "labels": {"pod-template-hash": "5d8f7c9b6d", "app": "x"},
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": "iris-blue-5d8f7c9b6d", "controller": True}
                ],
            },
            "iris-blue",
        ),
        ({"ownerReferences": [{"kind": "StatefulSet", "name": "iris-db", "controller": True}]}, "iris-db"),
        ({"labels": {"app": "iris"}, "generateName": "x-"}, "iris"),
        ({"generateName": "iris-green-"}, "iris-green"),
        ({}, None),
    ],
)
def test_the_deployment_name_is_recovered_from_the_pod(
    metadata: dict[str, Any], expected: str | None
) -> None:
    assert deployment_name({"metadata": metadata}) == expected


def test_an_unreadable_status_is_ignored_with_a_warning_and_rewritten() -> None:
    assert parse_status("{not json") == (
        Status(),
        ["ignored an unreadable ml.example/injected annotation; it is rewritten"],
    )
    assert parse_status(Status(models=("iris:3",), env=("A",)).to_annotation())[0].env == ("A",)
    result = inject(pod({"ml.example/model": "iris:3", "ml.example/injected": "garbage"}))
    assert result.pod["metadata"]["annotations"]["ml.example/injected"].startswith('{"container":"main"')


def _restricted_problems(container: dict[str, Any]) -> list[str]:
    """Pod Security `restricted` for one container whose pod sets nothing (kubernetes.io docs)."""
    context = container.get("securityContext") or {}
    problems = []
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation")
    if "ALL" not in (context.get("capabilities") or {}).get("drop", []):
        problems.append("capabilities.drop")
    if set((context.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append("capabilities.add")
    if context.get("runAsNonRoot") is not True or context.get("runAsUser") == 0:
        problems.append("runAsNonRoot")
    if (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("seccompProfile")
    if context.get("privileged"):
        problems.append("privileged")
    return problems


def test_model_init_passes_pod_security_restricted_and_pvc_csi_volumes_are_allowed() -> None:
    result = inject(pod({"ml.example/model": "iris:3,resnet:1"}))
    (init,) = result.pod["spec"]["initContainers"]
    assert _restricted_problems(init) == []
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    allowed = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in result.pod["spec"]["volumes"]:
        assert set(volume) - {"name"} <= allowed, volume


def test_a_bare_pod_and_a_cronjob_go_through_the_same_mutation() -> None:
    bare = check_object(
        pod({"ml.example/model": "iris:3"}), namespace="team-a", catalog=CATALOG, config=InjectionConfig()
    )
    assert bare.obj["spec"]["initContainers"][0]["name"] == "model-init"
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": pod({"ml.example/model": "iris:3"})["metadata"],
                        "spec": pod({})["spec"],
                    }
                }
            }
        },
    }
    checked = check_object(cron, namespace="team-a", catalog=CATALOG, config=InjectionConfig())
    template = checked.obj["spec"]["jobTemplate"]["spec"]["template"]
    assert template["spec"]["initContainers"][0]["name"] == "model-init"
    assert "initContainers" not in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # input untouched


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"app_root": "relative"}, "must be an absolute, normalised directory"),
        ({"app_root": "/a/../b"}, "must be an absolute, normalised directory"),
        ({"init_image_pull_policy": "Sometimes"}, "must be one of Always, IfNotPresent, Never"),
        ({"unknown_reference": "ignore"}, "must be 'deny' or 'warn'"),
        ({"scheduler_name": "Bad_Name"}, "must be a DNS subdomain"),
        ({"scheduler_marker_resource": "cpu"}, "must be an extended resource name"),
    ],
)
def test_bad_operator_settings_are_refused_at_start(settings: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        InjectionConfig(**settings)


def test_a_float_quantity_is_refused_even_after_the_same_integer_was_read() -> None:
    # The quantity caches are keyed by type: 1 == 1.0 in Python, but only 1 is a quantity.
    annotations = {"ml.example/model": "iris:3", "ml.example/instance-type": "cpu-small"}
    ok = inject(pod(annotations, resources={"limits": {"cpu": 1}}))
    assert ok.pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == 1
    with pytest.raises(FieldDenied, match="is not a quantity"):
        inject(pod(annotations, resources={"limits": {"cpu": 1.0}}))


def test_the_webhooks_node_selector_joins_the_instance_types_and_is_owned_like_it() -> None:
    config = InjectionConfig(node_selector=(("pool", "models"),))
    result = inject(pod({"ml.example/model": "iris:3", "ml.example/instance-type": "gpu-a100"}), config)
    selector = result.pod["spec"]["nodeSelector"]
    assert selector["pool"] == "models" and len(selector) == 2  # the instance type's key besides
    # Once the setting is gone, a later pass takes back what it put there, and only that.
    again = inject(result.pod, InjectionConfig())
    assert "pool" not in again.pod["spec"]["nodeSelector"]


def test_a_pod_asking_for_other_nodes_than_the_webhooks_setting_is_denied_naming_both() -> None:
    config = InjectionConfig(node_selector=(("pool", "models"),))
    with pytest.raises(FieldDenied) as denied:
        inject(pod({"ml.example/model": "iris:3"}) | {"spec": {"containers": [{"name": "main"}],
               "nodeSelector": {"pool": "batch"}}}, config)  # fmt: skip
    assert denied.value.field == "spec.nodeSelector[pool]"
    assert denied.value.message == (
        "nodeSelector pool=batch conflicts with the webhook's node selector, which places every model pod "
        "on pool=models; remove it from the pod"
    )


def test_an_instance_type_contradicting_the_webhooks_node_selector_is_denied_naming_both() -> None:
    gpu = CATALOG.instance_type("gpu-a100")
    ((key, value),) = gpu.node_selector.items()
    config = InjectionConfig(node_selector=((key, "other-gpu"),))
    with pytest.raises(FieldDenied) as denied:
        inject(pod({"ml.example/model": "iris:3", "ml.example/instance-type": "gpu-a100"}), config)
    assert denied.value.field == "metadata.annotations[ml.example/instance-type]"
    assert f"needs nodeSelector {key}={value}, but the webhook places every model pod on {key}=other-gpu" in (
        denied.value.message
    )
    assert not denied.value.reference  # not an unknown name: /validate-workload never only warns
