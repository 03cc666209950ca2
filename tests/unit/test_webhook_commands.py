"""`inferplane inject` and `inferplane lint` as a person runs them: files in, text and exit codes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inferplane.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLE = str(ROOT / "examples" / "deployment.yaml")
CATALOG = str(ROOT / "examples" / "catalog")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inject_the_example_shows_the_injected_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inject", "-f", EXAMPLE, "--catalog", CATALOG)
    assert code == 0, err
    (deployment,) = yaml.safe_load_all(out)
    template = deployment["spec"]["template"]
    assert [c["name"] for c in template["spec"]["initContainers"]] == ["model-init"]
    assert template["metadata"]["labels"]["ml.example/deployment"] == "iris-blue"
    env = {e["name"]: e["value"] for e in template["spec"]["containers"][0]["env"]}
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/iris/3"
    assert template["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_inject_is_idempotent_on_its_own_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, first, _ = run(capsys, "inject", "-f", EXAMPLE, "--catalog", CATALOG)
    (tmp_path / "injected.yaml").write_text(first)
    code, second, _ = run(capsys, "inject", "-f", str(tmp_path / "injected.yaml"), "--catalog", CATALOG)
    assert code == 0 and second == first


def test_inject_reads_lists_and_prints_json_leaving_other_kinds_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment = yaml.safe_load(Path(EXAMPLE).read_text())
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris"},
        "spec": {"ports": [{"port": 80}]},
    }
    listing = {"apiVersion": "v1", "kind": "List", "items": [service, deployment]}
    (tmp_path / "list.json").write_text(json.dumps(listing))
    code, out, err = run(
        capsys, "inject", "-f", str(tmp_path / "list.json"), "--catalog", CATALOG, "-o", "json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "List" and result["items"][0] == service
    assert "initContainers" in result["items"][1]["spec"]["template"]["spec"]


def test_inject_without_catalog_says_so_and_uses_registrations_in_the_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    registrations = (ROOT / "examples" / "catalog" / "registrations.yaml").read_text()
    deployment = Path(EXAMPLE).read_text().replace("ml.example/instance-type: cpu-small", "")
    (tmp_path / "all.yaml").write_text(f"{registrations}\n---\n{deployment}")
    code, out, err = run(capsys, "inject", "-f", str(tmp_path / "all.yaml"))
    assert code == 0, err
    assert "no --catalog" in err and "not consulted" in err
    injected = list(yaml.safe_load_all(out))[-1]
    assert (
        injected["spec"]["template"]["metadata"]["labels"]["ml.example/instance-type"]
        == "defaultinstancetype"
    )


def test_inject_refusal_names_object_and_field_and_prints_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "d.yaml").write_text(Path(EXAMPLE).read_text().replace("cpu-small", "gpu-l"))
    code, out, err = run(capsys, "inject", "-f", str(tmp_path / "d.yaml"), "--catalog", CATALOG)
    assert code == 1 and out == ""
    assert (
        "inferplane inject: denied: Deployment default/iris-blue: "
        'spec.template.metadata.annotations[ml.example/instance-type]: instance type "gpu-l" not found; '
        "defined: cpu-large, cpu-small, gpu-a100, gpu-t4, defaultinstancetype"
    ) in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Deployment\n  bad: indent", "line 2"),
        ("just a string", "not a Kubernetes object"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n"
            "    metadata: {annotations: {ml.example/model: iris:3}}\n    spec: {containers: nope}\n",
            "spec.template.spec.containers: expected a list",
        ),
    ],
)
def test_inject_bad_input_exits_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    code, out, err = run(capsys, "inject", "-f", str(tmp_path / "bad.yaml"), "--catalog", CATALOG)
    assert code == 2 and out == "" and message in err


def test_inject_missing_file_and_catalog(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "inject", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "inject", "-f", EXAMPLE, "--catalog", str(tmp_path / "nowhere"))
    assert code == 2 and "not a directory" in err


def test_lint_clean_example_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", "-f", EXAMPLE, "--catalog", CATALOG)
    assert code == 0 and out == ""
    assert "0 errors" in err


def test_lint_reports_catalog_problems_with_file_and_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "lint", "--catalog", str(ROOT / "tests" / "golden" / "catalog"), "-n", "team-a"
    )
    assert code == 1
    lines = out.splitlines()
    assert any(
        line.endswith(
            'instancetypes.yaml document 3 (line 25): InstanceType "upside-down" is invalid: '
            "spec.resources.requests.cpu (2) must not exceed spec.resources.limits.cpu (1)"
        )
        for line in lines
    )
    assert any(
        "ConfigMap team-a/broken-1, key model.yaml, field storage.pvc.claimName: missing" in line
        for line in lines
    )
    assert any("registers twice:1 again (also twice-1-a)" in line for line in lines)


def test_lint_annotation_on_the_deployment_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment = yaml.safe_load(Path(EXAMPLE).read_text())
    deployment["metadata"]["annotations"] = deployment["spec"]["template"]["metadata"].pop("annotations")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(deployment))
    code, out, _ = run(capsys, "lint", "-f", str(tmp_path / "d.yaml"), "--catalog", CATALOG)
    assert code == 1
    assert (
        "Deployment default/iris-blue: metadata.annotations[ml.example/model]: ml.example/model is on the "
        "Deployment, not on its pod template; move it to spec.template.metadata.annotations"
    ) in out.splitlines()


def test_lint_needs_something_to_lint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lint")
    assert code == 2 and "nothing to lint" in err


SETTINGS = ["--default-cpu", "250m", "--default-memory", "768Mi", "--node-selector", "pool=models",
            "--scheduler-marker-resource", "ml.example/placement"]  # fmt: skip


def test_inject_with_the_webhooks_settings_prints_what_the_webhook_patches(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import base64

    import jsonpatch
    import orjson

    from instance_types.default import builtin_default
    from webhook.catalog import Catalog
    from webhook.config import InjectionConfig
    from webhook.handlers import mutate_pod

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "iris", "namespace": "default", "annotations": {"ml.example/model": "iris:3"}},
        "spec": {"containers": [{"name": "score", "image": "registry.local/iris:1"}]},
    }
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    code, out, err = run(capsys, "inject", "-f", str(tmp_path / "pod.yaml"), "--catalog", CATALOG, *SETTINGS)
    assert code == 0, err
    offline = yaml.safe_load(out)

    # The server builds the same config and the same default from the same flags.
    config = InjectionConfig(
        default_cpu="250m", default_memory="768Mi", node_selector=(("pool", "models"),),
        scheduler_marker_resource="ml.example/placement",
    )  # fmt: skip
    catalog = Catalog.from_dir(CATALOG, default=builtin_default("250m", "768Mi"))
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "default", "object": pod}}  # fmt: skip
    answer = orjson.loads(mutate_pod(orjson.dumps(review), catalog, config).body)["response"]
    online = jsonpatch.apply_patch(pod, orjson.loads(base64.b64decode(answer["patch"])))
    assert offline == online
    assert offline["spec"]["nodeSelector"] == {"pool": "models"}
    assert offline["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "250m", "memory": "768Mi", "ml.example/placement": "1"
    }  # fmt: skip


def test_lint_names_an_instance_type_whose_node_selector_contradicts_the_webhooks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deployment = yaml.safe_load(Path(EXAMPLE).read_text())
    deployment["spec"]["template"]["metadata"]["annotations"]["ml.example/instance-type"] = "gpu-t4"
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(deployment))
    flags = ["--node-selector", "nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB"]
    code, out, _ = run(capsys, "lint", "-f", str(tmp_path / "d.yaml"), "--catalog", CATALOG, *flags)
    assert code == 1
    assert (
        'instance type "gpu-t4" needs nodeSelector nvidia.com/gpu.product=Tesla-T4, but the webhook places '
        "every model pod on nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB"
    ) in out


def test_bad_settings_are_refused_offline_as_by_the_webhook(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inject", "-f", EXAMPLE, "--catalog", CATALOG, "--default-cpu", "lots")
    assert code == 2
    assert 'default instance type cpu "lots" must be a quantity above zero' in err


def test_the_webhook_without_a_cluster_names_catalog_as_a_way_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferplane import kube
    from inferplane.localcluster.pki import CertificateAuthority

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setattr(kube.k8s_config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "absent"))
    creds = CertificateAuthority(tmp_path).issue_loopback_server("webhook", "webhook")
    code, _, err = run(
        capsys, "webhook", "--tls-cert-file", str(creds.cert_file), "--tls-key-file", str(creds.key_file)
    )
    assert code == 2
    assert err.startswith("inferplane webhook: cannot reach a cluster")
    assert err.rstrip().endswith("or serve a directory of manifests with --catalog DIR")
