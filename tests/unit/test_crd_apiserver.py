"""The CRD against the apiserver's own validation code, and against the Python rules.

tests/tools/crdcheck links k8s.io/apiextensions-apiserver: CRD validation with the CEL cost
estimator, pruning, the OpenAPI schema and the CEL rules, exactly as kube-apiserver runs them. It
is built once from the Go module cache (a few minutes cold, seconds after) and skipped when Go
cannot build it; the e2e suite repeats the key cases against a real control plane.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from instance_types.cases import Case, load_cases
from instance_types.crd import CRD_PATH
from instance_types.rules import RULES_BY_ID, Enforcer

CRDCHECK = Path(__file__).resolve().parents[1] / "tools" / "crdcheck"
CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog" / "instancetypes.yaml"
INVALID, VALID = load_cases()


@pytest.fixture(scope="module")
def crdcheck() -> Path:
    """The crdcheck binary, cached by the hash of its sources."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed; crdcheck cannot be built")
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((CRDCHECK / name).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inferplane" / "crdcheck"
    binary = cache / digest.hexdigest()[:16] / "crdcheck"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        built = subprocess.run(
            [go, "build", "-o", str(binary), "."], cwd=CRDCHECK, capture_output=True, text=True, timeout=1800
        )
        if built.returncode != 0:
            pytest.skip(f"crdcheck did not build (offline without the module cache?): {built.stderr[-500:]}")
    return binary


def run(binary: Path, objects: list[dict[str, Any]], crd: Path = CRD_PATH) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary), str(crd)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def verdicts(crdcheck: Path) -> dict[str, list[str]]:
    """Each case's errors from the apiserver code, by case name (one crdcheck run for all)."""
    cases = INVALID + VALID
    report = run(crdcheck, [case.obj for case in cases])
    assert report["crd"] == []
    return {case.name: outcome["errors"] for case, outcome in zip(cases, report["objects"], strict=True)}


def test_apiserver_accepts_the_crd(crdcheck: Path) -> None:
    """Structural schema, valid CEL, and within the CEL cost budget: the trap a real cluster hit."""
    assert run(crdcheck, [])["crd"] == []


def test_cost_trap_is_real(crdcheck: Path, tmp_path: Path) -> None:
    """The check can fail: the same CRD without its bounds is refused for estimated cost."""
    text = CRD_PATH.read_text().replace("maxProperties: 16", "maxProperties: 1000000")
    unbounded = tmp_path / "crd.yaml"
    unbounded.write_text(text.replace("maxLength: 64", "maxLength: 100000000"))
    errors = run(crdcheck, [], unbounded)["crd"]
    assert any("estimated rule cost" in error for error in errors), errors


@pytest.mark.parametrize("case", VALID, ids=lambda case: case.name)
def test_apiserver_accepts_valid_cases(verdicts: dict[str, list[str]], case: Case) -> None:
    assert verdicts[case.name] == []


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.name)
def test_apiserver_refuses_with_the_python_sentences(verdicts: dict[str, list[str]], case: Case) -> None:
    errors = verdicts[case.name]
    if case.pruned_by_apiserver:
        assert errors == []  # dropped silently; kubectl's strict field validation is what refuses it
        return
    assert errors, f"{case.name}: the apiserver accepted what Python refuses"
    if RULES_BY_ID[case.rule].enforcer is Enforcer.CEL:
        text = "\n".join(errors)
        for sentence in case.cel_sentences():
            assert sentence in text


def test_catalog_examples_pass_and_print(crdcheck: Path) -> None:
    items = yaml.safe_load(CATALOG.read_text())["items"]
    report = run(crdcheck, items)
    rows = {item["metadata"]["name"]: outcome for item, outcome in zip(items, report["objects"], strict=True)}
    assert all(outcome["errors"] == [] for outcome in rows.values()), rows
    # NAME, CPU, Memory, GPU (nvidia.com/gpu: the escaped dot in the jsonPath works), NodeSelector, Age
    name, cpu, memory, gpu, selector, _age = rows["gpu-a100"]["row"]
    assert (name, cpu, memory, gpu) == ("gpu-a100", "12", "96Gi", "2")
    assert "A100" in selector
    assert rows["cpu-small"]["row"][1:4] == ["1", "2Gi", None]
