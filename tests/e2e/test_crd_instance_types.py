"""The InstanceType CRD on a real kube-apiserver: accepted, and refusing bad objects in our words.

Every case of instance_types/testdata/cases.yaml is sent with `kubectl apply --dry-run=server`,
which runs the full admission and validation path (schema, CEL) without storing anything; a CEL
rule's refusal must carry the same sentence `inferplane lint` prints offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inferplane.localcluster.controlplane import ControlPlane
from instance_types.cases import Case, load_cases
from instance_types.rules import RULES_BY_ID, Enforcer

pytestmark = pytest.mark.e2e

CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog" / "instancetypes.yaml"
INVALID_CASES, VALID_CASES = load_cases()


def dry_run(cp: ControlPlane, obj: dict[str, object]) -> tuple[int, str]:
    result = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    return result.returncode, result.stderr


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda case: case.name)
def test_valid_instance_types_are_accepted(crd: ControlPlane, case: Case) -> None:
    code, stderr = dry_run(crd, case.obj)
    assert code == 0, stderr


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda case: case.name)
def test_invalid_instance_types_are_refused_in_our_words(crd: ControlPlane, case: Case) -> None:
    code, stderr = dry_run(crd, case.obj)
    assert code != 0, f"{case.name} was accepted"
    if case.pruned_by_apiserver:
        # The apiserver would drop the field; kubectl's strict field validation refuses it.
        assert "unknown field" in stderr, stderr
    elif RULES_BY_ID[case.rule].enforcer is Enforcer.CEL:
        assert f'The InstanceType "{case.name}" is invalid' in stderr
        for sentence in case.cel_sentences():
            assert sentence in stderr, stderr


def test_catalog_applies_as_a_list_and_prints_its_columns(crd: ControlPlane) -> None:
    items = yaml.safe_load(CATALOG.read_text())["items"]
    names = [item["metadata"]["name"] for item in items]
    try:
        applied = crd.kubectl("apply", "-f", str(CATALOG))
        for name in names:
            assert f"instancetype.ml.example/{name} created" in applied.stdout
        table = crd.kubectl("get", "mlit", "gpu-a100").stdout.split("\n")
        assert table[0].split() == ["NAME", "CPU", "MEMORY", "GPU", "NODESELECTOR", "AGE"]
        assert table[1].split()[:4] == ["gpu-a100", "12", "96Gi", "2"]
        assert "NVIDIA-A100-SXM4-80GB" in table[1]
    finally:
        crd.kubectl("delete", "-f", str(CATALOG), "--ignore-not-found")


def test_kubectl_applies_an_instancetypelist_as_azure_writes_it(crd: ControlPlane) -> None:
    """design.md expected kubectl to refuse a CRD's list kind; kubectl 1.35 (and 1.32) flatten it,
    giving items without apiVersion/kind the list's ones. We still show `kind: List`, the form
    every kubectl and tool knows, and our own loaders read both."""
    items = yaml.safe_load(CATALOG.read_text())["items"]
    seed_style = [{"metadata": item["metadata"], "spec": item["spec"]} for item in items[:2]]
    document = {"apiVersion": "ml.example/v1alpha1", "kind": "InstanceTypeList", "items": seed_style}
    result = crd.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(document))
    assert "instancetype.ml.example/cpu-small created (server dry run)" in result.stdout
    assert "instancetype.ml.example/cpu-large created (server dry run)" in result.stdout
