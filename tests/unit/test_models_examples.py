"""The shipped example registrations parse, lay out from examples/models, and serve predictions."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from models.layout import lay_out
from models.register import StorageFlag, build
from models.registration import parse_registration, registration_id

ROOT = Path(__file__).resolve().parents[2]
REGISTRATIONS = ROOT / "examples" / "catalog" / "registrations.yaml"
IRIS = ROOT / "examples" / "models" / "iris" / "3"


def configmaps() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(REGISTRATIONS.read_text()) if doc]


def test_example_registrations_parse() -> None:
    regs = [parse_registration(cm) for cm in configmaps()]
    assert [registration_id(cm) for cm in configmaps()] == [
        ("iris", "3"),
        ("iris-edge", "3"),
        ("iris-azure", "3"),
    ]
    assert [r.storage.kind for r in regs] == ["pvc", "hostPath", "pvc"]
    assert all(r.namespace == "default" and r.entry_script == "score.py" for r in regs)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["iris", "iris-edge", "iris-azure"])
def test_example_lays_out_and_scores(tmp_path: Path, index: int) -> None:
    reg = parse_registration(configmaps()[index])
    app = tmp_path / "app"
    lay_out(reg, IRIS, app, log=lambda record: None)  # checks the pinned sha256s too
    model_dir = app / "azureml-models" / reg.name / reg.version
    spec = importlib.util.spec_from_file_location(f"score_{index}", app / reg.entry_script)
    assert spec is not None and spec.loader is not None
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZUREML_MODEL_DIR", str(model_dir))
        score.init()
    rows = {"data": [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]}
    assert score.run(json.dumps(rows)) == {"predictions": ["setosa", "versicolor", "virginica"]}
    assert "error" in score.run('{"data": [[1, 2]]}')


def test_register_command_in_the_comment_reproduces_iris_3() -> None:
    _, reg = build(
        "iris:3",
        StorageFlag("pvc", "inferplane-models:iris/3"),
        files=["outputs/model.json"],
        code=["src/code.tar.gz@tar"],
        entry_script="score.py",
        configmap="iris-3",
        sha256_from=IRIS,
    )
    assert reg == parse_registration(configmaps()[0])


def test_code_archive_holds_the_current_score_py() -> None:
    with tarfile.open(IRIS / "src" / "code.tar.gz") as tar:
        assert tar.getnames() == ["score.py"]
        packed = tar.extractfile("score.py")
        assert packed is not None and packed.read() == (IRIS / "src" / "score.py").read_bytes()
