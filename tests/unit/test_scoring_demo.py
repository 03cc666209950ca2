"""The demo's pure parts: how the kubelet stand-in maps a pod onto local processes, how the outcome is
judged, and what is kept of the extender's answers. (Named test_scoring_* to sit with this issue's
tests; `inferplane demo` itself runs in tests/e2e/test_demo.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from demo.decisions import Decision, record
from demo.podspec import (
    Mount,
    Unrunnable,
    build_root,
    command_line,
    container_env,
    expand,
    launch,
    mounts_for,
    rewrite,
)
from demo.report import Answer, binomial_bounds, summarise
from demo.show import describe_pod, shares

ROOT = Path(__file__).resolve().parents[2]


def injected_pod(example: str) -> dict:
    """A pod of examples/endpoint/<example> as the webhook leaves it, with a name and an address."""
    from instance_types.default import builtin_default
    from webhook.catalog import Catalog
    from webhook.config import InjectionConfig
    from webhook.workload import check_object

    config = InjectionConfig(scheduler_name="inferplane-scheduler")
    catalog = Catalog.from_dir(
        str(ROOT / "examples" / "catalog"), default=builtin_default(config.default_cpu, config.default_memory)
    )
    deployment = yaml.safe_load((ROOT / "examples" / "endpoint" / example).read_text())
    template = check_object(deployment, namespace="default", catalog=catalog, config=config).obj["spec"][
        "template"
    ]
    name = deployment["metadata"]["name"]
    meta = {**template["metadata"], "name": f"{name}-abc-x1", "namespace": "default", "uid": "u-1"}
    meta["labels"] = {**meta.get("labels", {}), "pod-template-hash": "abc"}
    meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": f"{name}-abc"}]
    return {
        "metadata": meta,
        "spec": {**template["spec"], "nodeName": "cpu-1"},
        "status": {"podIP": "127.0.10.7"},
    }


MOUNTS = [
    Mount("/var/azureml-app", Path("/v/app")),
    Mount("/etc/inferplane/models/iris/3", Path("/v/config")),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/var/azureml-app", "/r/var/azureml-app"),
        ("/var/azureml-app/azureml-models/iris/3", "/r/var/azureml-app/azureml-models/iris/3"),
        ("/etc/inferplane/models", "/r/etc/inferplane/models"),  # holds a mount: rooted too
        ("/var/azureml-apple", "/var/azureml-apple"),
        ("/usr/bin/python", "/usr/bin/python"),
        ("score.py", "score.py"),
    ],
)
def test_paths_under_or_above_a_mount_are_rooted(value: str, expected: str) -> None:
    assert rewrite(value, MOUNTS, Path("/r")) == expected


def test_dollar_expansion_follows_kubernetes() -> None:
    env = {"POD_IP": "127.0.10.7"}
    assert expand("--host=$(POD_IP)", env) == "--host=127.0.10.7"
    assert expand("$$(POD_IP) $(UNSET)", env) == "$(POD_IP) $(UNSET)"


def test_env_values_field_refs_and_references_to_earlier_values() -> None:
    container = {"env": [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SLOT", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['slot']"}}},
        {"name": "URL", "value": "http://$(IP):5001"},
    ]}  # fmt: skip
    pod = {"metadata": {"name": "p", "labels": {"slot": "blue"}}, "spec": {}}
    assert container_env(container, pod, "127.0.10.9") == {
        "IP": "127.0.10.9", "SLOT": "blue", "URL": "http://127.0.10.9:5001",
    }  # fmt: skip
    with pytest.raises(Unrunnable, match="secretKeyRef"):
        container_env({"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}, pod, "")


def test_only_the_inferplane_image_runs() -> None:
    ours = ["/venv/bin/inferplane"]
    container = {"image": "registry.local:5000/team/inferplane:0.1.0", "args": ["serve", "--port", "$(PORT)"]}
    assert command_line(container, {"PORT": "5001"}, ours) == [
        "/venv/bin/inferplane",
        "serve",
        "--port",
        "5001",
    ]
    with pytest.raises(Unrunnable, match="only the inferplane image"):
        command_line({"image": "python:3.11", "command": ["python"]}, {}, ours)
    with pytest.raises(Unrunnable, match=r"only `inferplane \.\.\.` commands"):
        command_line({"image": "inferplane:1", "command": ["sh", "-c", "x"]}, {}, ours)


def test_the_injected_pod_becomes_model_init_then_serve_in_local_roots(tmp_path: Path) -> None:
    pod = injected_pod("blue.yaml")
    volumes = {v["name"]: tmp_path / "volumes" / v["name"] for v in pod["spec"]["volumes"]}
    init = pod["spec"]["initContainers"][0]
    root = tmp_path / "init"
    build_root(root, mounts_for(init, volumes))
    plan = launch(init, pod, "127.0.10.7", volumes, root, ["inferplane"], {"PATH": "/bin"})
    assert plan.argv == [
        "inferplane", "model-init", "--config", f"{root}/etc/inferplane/models",
        "--source", f"{root}/mnt/models", "--app-root", f"{root}/var/azureml-app",
    ]  # fmt: skip
    assert (root / "var/azureml-app").resolve() == (tmp_path / "volumes/inferplane-app").resolve()
    assert (root / "mnt/models/iris/3").resolve() == (
        tmp_path / "volumes/inferplane-model-iris-3/iris/3"
    ).resolve()
    score = pod["spec"]["containers"][0]
    root = tmp_path / "score"
    build_root(root, mounts_for(score, volumes))
    plan = launch(score, pod, "127.0.10.7", volumes, root, ["inferplane"], {"PATH": "/bin"})
    assert plan.argv == ["inferplane", "serve"]
    assert plan.env["AZUREML_MODEL_DIR"] == f"{root}/var/azureml-app/azureml-models/iris/3"
    assert plan.env["AZUREML_ENTRY_SCRIPT"] == "score.py"
    assert plan.env["TMPDIR"] == f"{root}/tmp"


def test_what_the_demo_shows_of_a_pod() -> None:
    shown = describe_pod(injected_pod("shadow.yaml"))
    assert shown["deployment"] == "iris-shadow"
    assert shown["models"] == ["iris:4"] and shown["instance_type"] == "gpu-t4"
    assert shown["node_selector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert (
        shown["resources"]["limits"]["nvidia.com/gpu"] == 1
        or shown["resources"]["limits"]["nvidia.com/gpu"] == "1"
    )
    assert shown["scheduler"] == "inferplane-scheduler"
    assert (shown["ip"], shown["port"]) == ("127.0.10.7", 5001)


def test_the_live_remainder_goes_to_the_default_deployment() -> None:
    pods = {
        "iris-blue": {"annotations": {"ml.example/traffic": "80"}},
        "iris-green": {"annotations": {"ml.example/traffic": "10"}},
        "iris-shadow": {"annotations": {"ml.example/mirror": "5"}},
    }
    assert shares(pods) == ({"iris-blue": 90, "iris-green": 10}, {"iris-shadow": 5})


def test_binomial_bounds() -> None:
    bounds = binomial_bounds(200, 10)
    assert bounds.expected == 20
    assert (bounds.low, bounds.high) == (0, 40)  # 20 ± 4.5·√18
    assert binomial_bounds(100, 100) == binomial_bounds(100, 100.0)
    assert (binomial_bounds(100, 100).low, binomial_bounds(100, 100).high) == (100, 100)


def answers(blue: int, green: int, wrong: int = 0) -> list[Answer]:
    out = [Answer("iris-blue", 200, True, 1.0)] * blue + [Answer("iris-green", 200, True, 2.0)] * green
    return out + [Answer("iris-blue", 500, False, 3.0)] * wrong


def test_an_outcome_as_annotated_is_ok() -> None:
    outcome = summarise(
        answers(182, 18), {"iris-blue": 90, "iris-green": 10}, {"iris-shadow": 5}, {"iris-shadow": 9}
    )
    assert outcome.ok, outcome.problems
    assert outcome.to_json()["ok"] is True
    assert outcome.split == {"iris-blue": 182, "iris-green": 18}


@pytest.mark.parametrize(
    ("given", "mirrored", "problem"),
    [
        (answers(100, 100), 10, "iris-blue answered 100 of 200; expected 160..200"),
        (answers(180, 20), 60, "iris-shadow got 60 mirrored copies of 200"),
        (answers(178, 20, wrong=2), 10, "2 of 200 answers were wrong or failed"),
        (
            [Answer("iris-shadow", 200, True, 1.0)] * 200,
            10,
            "from iris-shadow, which should take no live traffic",
        ),
    ],
)
def test_a_wrong_outcome_names_what_is_wrong(given: list[Answer], mirrored: int, problem: str) -> None:
    outcome = summarise(
        given, {"iris-blue": 90, "iris-green": 10}, {"iris-shadow": 5}, {"iris-shadow": mirrored}
    )
    assert not outcome.ok
    assert any(problem in line for line in outcome.problems), outcome.problems


def test_the_extenders_answers_are_kept_per_pod() -> None:
    decisions: dict[str, Decision] = {}
    pod = {"Pod": {"metadata": {"namespace": "default", "name": "iris-blue-1"}}}
    record(
        decisions,
        "filter",
        pod,
        {"NodeNames": ["cpu-1", "cpu-2"], "FailedNodes": {"gpu-1": "kept for GPU pods"}},
    )
    record(decisions, "prioritize", pod, [{"Host": "cpu-1", "Score": 10}, {"Host": "cpu-2", "Score": 7}])
    assert decisions["default/iris-blue-1"] == Decision(
        passed=["cpu-1", "cpu-2"], refused={"gpu-1": "kept for GPU pods"}, scores={"cpu-1": 10, "cpu-2": 7}
    )
