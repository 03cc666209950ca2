"""`inferplane model-init` as the kubelet runs it: a real process, mounted-ConfigMap directories, JSON
logs on stderr, exit 1 with one line on failure, and no write outside the app root."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from inferplane.localcluster.process import inferplane_argv
from models.mounted import write_mounted

SCORE = b"def init():\n    pass\n\ndef run(data):\n    return data\n"
MODEL = os.urandom(3 * 1024 * 1024)


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in root.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        info = path.lstat()
        out[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return out


@pytest.fixture
def pod(tmp_path: Path) -> dict[str, Path]:
    """The init container's view: /etc/inferplane/models, /mnt/models, the app root, a scratch HOME/TMPDIR."""
    storage = tmp_path / "mnt" / "models" / "iris" / "3"
    (storage / "outputs").mkdir(parents=True)
    (storage / "outputs" / "model.bin").write_bytes(MODEL)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("score.py")
        info.size = len(SCORE)
        tar.addfile(info, io.BytesIO(SCORE))
    (storage / "code.tar.gz").write_bytes(buffer.getvalue())
    manifest = (
        "storage: {pvc: {claimName: models, subPath: iris/3}}\n"
        f"files: [{{path: outputs/model.bin, sha256: {hashlib.sha256(MODEL).hexdigest()}}}]\n"
        "code: [{path: code.tar.gz, containerPath: ., unpack: tar}]\n"
        "entryScript: score.py\n"
    )
    write_mounted(tmp_path / "etc" / "inferplane" / "models" / "iris" / "3", {"model.yaml": manifest})
    (tmp_path / "scratch").mkdir()
    (tmp_path / "app" / "var-azureml-app").mkdir(parents=True)  # the emptyDir, there before model-init
    return {
        "root": tmp_path,
        "config": tmp_path / "etc" / "inferplane" / "models",
        "source": tmp_path / "mnt" / "models",
        "app": tmp_path / "app" / "var-azureml-app",
        "scratch": tmp_path / "scratch",
    }


def model_init(pod: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(pod["scratch"]), "HOME": str(pod["scratch"])}
    argv = [*inferplane_argv(), "model-init", "--config", str(pod["config"]), "--source", str(pod["source"])]
    return subprocess.run(
        [*argv, "--app-root", str(pod["app"]), "--progress-mib", "1", *extra],
        cwd=pod["config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_model_init_lays_out_and_writes_only_under_the_app_root(pod: dict[str, Path]) -> None:
    before = snapshot(pod["root"], skip=pod["app"])
    done = model_init(pod)
    assert done.returncode == 0, done.stderr
    assert (pod["app"] / "azureml-models/iris/3/model.bin").read_bytes() == MODEL
    assert (pod["app"] / "score.py").read_bytes() == SCORE
    assert snapshot(pod["root"], skip=pod["app"]) == before
    assert list(pod["scratch"].iterdir()) == []

    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["bytes"] for r in records if r["msg"] == "copying"] == [
        1024 * 1024,
        2 * 1024 * 1024,
        3 * 1024 * 1024,
    ]
    assert records[-1]["msg"] == "model ready" and records[-1]["model"] == "iris:3"

    again = model_init(pod)
    assert again.returncode == 0
    assert [json.loads(line)["msg"] for line in again.stderr.splitlines()] == ["already laid out"]


def test_model_init_failure_is_exit_1_and_one_line(pod: dict[str, Path]) -> None:
    (pod["source"] / "iris" / "3" / "outputs" / "model.bin").write_bytes(b"tampered")
    done = model_init(pod)
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last.startswith("inferplane model-init: model iris:3: outputs/model.bin: sha256 mismatch")
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [last]
    assert not (pod["app"] / "azureml-models/iris/3/model.bin").exists()


def test_model_init_bad_registration_is_exit_1(pod: dict[str, Path]) -> None:
    broken = pod["config"] / "iris" / "3" / "..data" / "model.yaml"
    broken.write_text("storage: {pvc: {claimName: models}}\nfiles: [{path: outputs/model.bin, unpak: tar}]\n")
    done = model_init(pod)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "field files[0].unpak: unknown key; did you mean unpack? (typos are not ignored)"
    )
    assert list(pod["app"].iterdir()) == []
