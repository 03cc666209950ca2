"""The example scikit-learn model (iris:4): built reproducibly, laid out by its registration, served
by the scoring server with the answers a botanist would expect; and the endpoint's Deployments."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path
from types import ModuleType

import orjson
import pytest
import yaml

from models.layout import lay_out
from models.registration import parse_registration
from router.settings import parse_settings
from scoring.app import AppSettings, Request, Scorer
from scoring.script import call_init, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ONE_OF_EACH = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]


def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_build", EXAMPLES / "models" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    assert build_script().main(["--out", str(out)]) == 0
    return out


def test_the_build_is_reproducible_and_matches_the_committed_files(storage: Path, tmp_path: Path) -> None:
    build_script().main(["--out", str(tmp_path)])
    for relative in ("iris/4/outputs/model.pkl", "iris/4/src/code.tar.gz", "iris/3/src/code.tar.gz"):
        assert (storage / relative).read_bytes() == (tmp_path / relative).read_bytes(), relative
    for relative in ("iris/3/outputs/model.json", "iris/3/src/code.tar.gz", "iris/4/src/code.tar.gz"):
        committed = EXAMPLES / "models" / relative
        assert (storage / relative).read_bytes() == committed.read_bytes(), f"{relative}: rebuild and commit"
    with tarfile.open(storage / "iris/4/src/code.tar.gz") as tar:
        packed = tar.extractfile("score.py")
        assert packed is not None
        assert packed.read() == (EXAMPLES / "models/iris/4/src/score.py").read_bytes()


@pytest.fixture(scope="module")
def scorer(storage: Path, tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    registration = parse_registration(yaml.safe_load((EXAMPLES / "catalog" / "iris-4.yaml").read_text()))
    app = tmp_path_factory.mktemp("app")
    lay_out(registration, storage / "iris" / "4", app, log=lambda record: None)  # checks the code's sha256
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZUREML_MODEL_DIR", str(app / "azureml-models" / "iris" / "4"))
        script = load(app / registration.entry_script)
        call_init(script)
    made = Scorer(AppSettings())
    made.attach(script)
    return made


def test_iris_4_names_one_flower_of_each_species(scorer: Scorer) -> None:
    reply, _ = scorer.handle(Request("POST", "/score", body=orjson.dumps({"data": ONE_OF_EACH})))
    assert reply.status == 200
    answer = orjson.loads(reply.body)
    assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    assert answer["model"] == "iris:4"
    assert all(abs(sum(row) - 1) < 1e-3 for row in answer["probabilities"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": [[1, 2]]}, "data[0]: expected 4 numbers"),
        ({"rows": []}, 'send {"data"'),
        ([1], 'send {"data"'),
    ],
)
def test_iris_4_answers_a_bad_request_with_400(scorer: Scorer, body: object, message: str) -> None:
    reply, _ = scorer.handle(Request("POST", "/score", body=orjson.dumps(body)))
    assert reply.status == 400
    assert message in orjson.loads(reply.body)["error"]


def test_iris_4_publishes_its_samples_in_swagger(scorer: Scorer) -> None:
    reply, _ = scorer.handle(Request("GET", "/swagger.json"))
    doc = orjson.loads(reply.body)
    assert doc["paths"]["/score"]["post"]["parameters"][0]["schema"]["example"] == {
        "data": [[5.1, 3.5, 1.4, 0.2]]
    }


def deployments() -> dict[str, dict]:
    found = {}
    for path in sorted((EXAMPLES / "endpoint").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                found[doc["metadata"]["name"]] = doc
    return found


def test_the_endpoint_splits_90_10_and_mirrors_5_to_a_gpu_shadow() -> None:
    found = deployments()
    assert sorted(found) == ["iris-blue", "iris-green", "iris-shadow"]
    notes = {name: doc["spec"]["template"]["metadata"]["annotations"] for name, doc in found.items()}
    assert {n["ml.example/endpoint"] for n in notes.values()} == {"iris"}
    settings = {name: parse_settings(annotations) for name, annotations in notes.items()}
    assert (
        settings["iris-blue"].traffic,
        settings["iris-green"].traffic,
        settings["iris-shadow"].traffic,
    ) == (
        90,
        10,
        0,
    )
    assert settings["iris-shadow"].mirror == 5
    assert notes["iris-shadow"]["ml.example/instance-type"] == "gpu-t4"
    assert [notes[n]["ml.example/model"] for n in ("iris-blue", "iris-green")] == ["iris:3", "iris:4"]


def test_the_endpoint_pods_pass_the_webhook_and_pod_security_restricted_fields() -> None:
    from instance_types.default import builtin_default
    from webhook.catalog import Catalog
    from webhook.config import InjectionConfig
    from webhook.workload import check_object

    config = InjectionConfig()
    catalog = Catalog.from_dir(
        str(EXAMPLES / "catalog"), default=builtin_default(config.default_cpu, config.default_memory)
    )
    for name, doc in deployments().items():
        checked = check_object(doc, namespace="default", catalog=catalog, config=config)
        assert [f.line() for f in checked.findings] == [], name
        spec = checked.obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"] + spec["initContainers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
