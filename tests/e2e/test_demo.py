"""`inferplane demo` end to end, as a user runs it: one command, exit 0, and an outcome that holds
up (the split and the mirror within binomial bounds, every answer right, each pod where its
instance type says), with nothing left running afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REQUESTS = 300


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    where = tmp_path_factory.mktemp("demo")
    workdir, report = where / "work", where / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "inferplane.cli", "demo", "--requests", str(REQUESTS),
         "--json-report", str(report), "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert report.exists(), (
        f"no report; exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result, json.loads(report.read_text()), workdir


def test_the_demo_succeeds(demo) -> None:
    result, report, _ = demo
    assert result.returncode == 0, f"{report.get('error')}\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    assert report["ok"] is True
    assert [step["ok"] for step in report["steps"]] == [True] * len(report["steps"])


def test_every_answer_is_right(demo) -> None:
    outcome = demo[1]["outcome"]
    assert outcome["requests"] == REQUESTS
    assert outcome["statuses"] == {"200": REQUESTS}
    assert outcome["answers_correct"] == REQUESTS


def test_the_split_and_the_mirror_are_as_annotated(demo) -> None:
    outcome = demo[1]["outcome"]
    assert set(outcome["split"]) == {"iris-blue", "iris-green"}
    for name, count in outcome["split"].items():
        bounds = outcome["expected"][name]
        assert bounds["low"] <= count <= bounds["high"], (name, count, bounds)
    assert outcome["expected"]["iris-blue"]["expected"] == 0.9 * REQUESTS
    shadow = outcome["mirrored"]["iris-shadow"]
    bounds = outcome["expected_mirror"]["iris-shadow"]
    assert shadow > 0 and bounds["low"] <= shadow <= bounds["high"], (shadow, bounds)


def test_pods_were_injected_and_placed_by_their_instance_type(demo) -> None:
    pods = demo[1]["pods"]
    assert sorted(p["deployment"] for p in pods) == ["iris-blue", "iris-blue", "iris-green", "iris-shadow"]
    for pod in pods:
        assert pod["scheduler"] == "inferplane-scheduler"
        assert pod["init_containers"][0].startswith("inferplane model-init")
        assert pod["env"]["AZUREML_ENTRY_SCRIPT"] == "score.py"
        if pod["deployment"] == "iris-shadow":
            assert pod["node"] == "gpu-1"
            assert pod["resources"]["limits"]["nvidia.com/gpu"] == "1"
        else:
            assert pod["node"] in ("cpu-1", "cpu-2")
            assert "gpu-1" in pod["extender"]["refused"]  # the extender kept it off the GPU node
    blue_nodes = {p["node"] for p in pods if p["deployment"] == "iris-blue"}
    assert blue_nodes == {"cpu-1", "cpu-2"}  # replicas spread


def test_nothing_is_left_running(demo) -> None:
    workdir = demo[2]
    assert processes_mentioning(str(workdir)) == []
