"""The catalog: lookups that name what exists, snapshots that writers swap whole, files read strictly."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferplane.errors import Denied, UserError
from webhook.catalog import Catalog


def instance_type(name: str, cpu: str = "1") -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": "1Gi"}
    return {
        "apiVersion": "ml.example/v1alpha1",
        "kind": "InstanceType",
        "metadata": {"name": name},
        "spec": {"resources": {"requests": resources, "limits": resources}},
    }


def registration(
    name: str, model: str, version: str, *, rv: str = "1", claim: str = "models"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": rv,
            "labels": {"ml.example/model-name": model, "ml.example/model-version": version},
        },
        "data": {"model.yaml": f"storage: {{pvc: {{claimName: {claim}}}}}\nfiles: [{{path: m.pkl}}]\n"},
    }


def test_unknown_names_are_denied_listing_what_exists() -> None:
    catalog = Catalog()
    catalog.put(instance_type("cpu-small"))
    catalog.put(registration("iris-3", "iris", "3"))
    catalog.put(registration("resnet-1", "resnet", "1"))
    with pytest.raises(Denied) as unknown_model:
        catalog.registration("team-a", "iris", "4")
    assert (
        str(unknown_model.value)
        == 'model "iris:4" not found in namespace "team-a"; registered: iris:3, resnet:1'
    )
    with pytest.raises(Denied) as elsewhere:
        catalog.registration("team-b", "iris", "3")
    assert str(elsewhere.value).endswith("registered: none")
    with pytest.raises(Denied) as unknown_type:
        catalog.instance_type("gpu-l")
    assert (
        str(unknown_type.value) == 'instance type "gpu-l" not found; defined: cpu-small, defaultinstancetype'
    )
    assert catalog.instance_type(None).builtin


def test_a_defaultinstancetype_cr_replaces_the_builtin_and_removal_restores_it() -> None:
    catalog = Catalog()
    catalog.put(instance_type("defaultinstancetype", cpu="2"))
    assert catalog.instance_type(None).limits["cpu"] == "2"
    catalog.remove(instance_type("defaultinstancetype"))
    assert catalog.instance_type(None).limits["cpu"] == "600m"


def test_an_invalid_instance_type_is_remembered_with_its_error() -> None:
    catalog = Catalog()
    broken = instance_type("broken")
    broken["spec"]["resources"]["requests"] = {"cpu": "2", "memory": "1Gi"}
    catalog.put(broken)
    with pytest.raises(Denied) as invalid:
        catalog.instance_type("broken")
    assert str(invalid.value).startswith('InstanceType "broken" is invalid: spec.resources.requests.cpu')
    catalog.put(instance_type("broken"))  # fixed in place
    assert catalog.instance_type("broken").name == "broken"


def test_invalid_registration_names_the_configmap_and_two_claims_name_both() -> None:
    catalog = Catalog()
    catalog.put(registration("iris-3", "iris", "3", claim="[]"))
    with pytest.raises(Denied, match='registration of model "iris:3" is invalid: ConfigMap team-a/iris-3'):
        catalog.registration("team-a", "iris", "3")
    catalog.put(registration("iris-3", "iris", "3", rv="2"))
    catalog.put(registration("iris-3-copy", "iris", "3"))
    with pytest.raises(Denied, match=r"registered by 2 ConfigMaps \(iris-3, iris-3-copy\)"):
        catalog.registration("team-a", "iris", "3")


def test_parse_is_cached_per_resource_version() -> None:
    catalog = Catalog()
    catalog.put(registration("iris-3", "iris", "3"))
    first = catalog.registration("team-a", "iris", "3")
    catalog.put(registration("iris-3", "iris", "3"))  # a resync with the same resourceVersion
    assert catalog.registration("team-a", "iris", "3") is first
    catalog.put(registration("iris-3", "iris", "3", rv="2", claim="other"))
    assert catalog.registration("team-a", "iris", "3").storage.spec["claimName"] == "other"


def test_a_configmap_that_loses_its_labels_stops_being_a_registration() -> None:
    catalog = Catalog()
    catalog.put(registration("iris-3", "iris", "3"))
    unlabelled = registration("iris-3", "iris", "3", rv="2")
    del unlabelled["metadata"]["labels"]
    catalog.put(unlabelled)
    assert catalog.registered("team-a") == []


def test_replace_all_swaps_one_kind_and_keeps_the_other() -> None:
    catalog = Catalog()
    catalog.put(instance_type("cpu-small"))
    catalog.put(registration("old-1", "old", "1"))
    catalog.replace_all("ConfigMap", [registration("iris-3", "iris", "3")])
    assert catalog.registered("team-a") == ["iris:3"]
    assert catalog.instance_type("cpu-small").name == "cpu-small"
    with pytest.raises(ValueError, match="InstanceType or ConfigMap"):
        catalog.replace_all("Secret", [])


def test_readers_never_see_half_an_update() -> None:
    """Writers swap whole snapshots: a reader sees both models of a relist or neither."""
    catalog = Catalog()
    stop = threading.Event()
    seen: set[tuple[str, ...]] = set()

    def read() -> None:
        while not stop.is_set():
            seen.add(tuple(catalog.registered("team-a")))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for round_ in range(300):
        pair = [registration(f"a-{round_}", "a", str(round_)), registration(f"b-{round_}", "b", str(round_))]
        catalog.replace_all("ConfigMap", pair)
    stop.set()
    for reader in readers:
        reader.join()
    assert all(len(models) in (0, 2) for models in seen)


def test_from_dir_reads_lists_and_fills_namespaces(tmp_path: Path) -> None:
    (tmp_path / "types.yaml").write_text(
        "apiVersion: ml.example/v1alpha1\nkind: InstanceTypeList\nitems:\n"
        "- metadata: {name: cpu-small}\n"
        "  spec: {resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {cpu: '1', memory: 1Gi}}}\n"
    )
    cm = registration("iris-3", "iris", "3")
    del cm["metadata"]["namespace"]
    (tmp_path / "regs.yml").write_text(yaml.safe_dump(cm))
    (tmp_path / "notes.txt").write_text("ignored")
    catalog = Catalog.from_dir(str(tmp_path), namespace="team-b")
    assert catalog.ready
    assert catalog.instance_type("cpu-small").requests["cpu"] == "500m"
    assert catalog.registered("team-b") == ["iris:3"]


def test_from_dir_errors_name_the_file_and_document(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    with pytest.raises(UserError, match=r"a.yaml document 1 \(line 1\): ConfigMap has no metadata.name"):
        Catalog.from_dir(str(tmp_path))
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: List\nitems: [3]\n")
    with pytest.raises(UserError, match=r"a.yaml document 1 \(line 1\), items\[0\]: not a Kubernetes object"):
        Catalog.from_dir(str(tmp_path))


def _injected(catalog: Catalog, annotations: dict[str, str]) -> dict[str, Any]:
    from webhook.config import InjectionConfig
    from webhook.mutate import mutate

    pod = {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "c"}]}}
    result = mutate(pod, namespace="team-a", catalog=catalog, config=InjectionConfig())
    assert result is not None
    return result.pod


def test_a_review_after_a_catalog_change_sees_the_change_not_what_was_kept_for_the_last_pod() -> None:
    # What a pod's annotations resolve to is kept with the snapshot; every write makes a new one.
    catalog = Catalog()
    catalog.put(registration("iris-3", "iris", "3", rv="1", claim="old-claim"))
    catalog.put(instance_type("cpu-small", cpu="1"))
    annotations = {"ml.example/model": "iris:3", "ml.example/instance-type": "cpu-small"}
    first = _injected(catalog, annotations)
    assert _injected(catalog, annotations) == first  # the kept choice serves the next pod alike

    catalog.put(registration("iris-3", "iris", "3", rv="2", claim="new-claim"))
    catalog.put(instance_type("cpu-small", cpu="2"))
    second = _injected(catalog, annotations)
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in second["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["new-claim"]
    assert second["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"

    catalog.remove(registration("iris-3", "iris", "3"))
    with pytest.raises(Denied, match='model "iris:3" not found'):
        _injected(catalog, annotations)


def test_pods_do_not_share_the_injected_maps() -> None:
    # A caller editing the pod it got back must not change what the next pod gets.
    catalog = Catalog()
    catalog.put(registration("iris-3", "iris", "3"))
    first = _injected(catalog, {"ml.example/model": "iris:3"})
    first["spec"]["initContainers"][0]["image"] = "edited"
    first["spec"]["volumes"][0]["name"] = "edited"
    second = _injected(catalog, {"ml.example/model": "iris:3"})
    assert second["spec"]["initContainers"][0]["image"] != "edited"
    assert second["spec"]["volumes"][0]["name"] == "inferplane-app"
