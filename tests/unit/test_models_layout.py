"""model-init's layout: where files land, checksums, progress logs, one-line failures, and reruns."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from models import layout
from models.init import load, run
from models.layout import PARTIAL_SUFFIX, LayoutError, lay_out
from models.mounted import find_registrations, read_keys, write_mounted
from models.registration import FileSpec, InvalidRegistration, Registration, StorageSource

PVC = StorageSource("pvc", {"claimName": "models", "subPath": "iris/3"})
MODEL = b"\x80\x04pickled iris model" * 100


class Logs(list):
    def __call__(self, record: Any) -> None:
        json.dumps(record)  # every record must be JSON
        self.append(dict(record))

    def msgs(self) -> list[str]:
        return [r["msg"] for r in self]


def reg(*files: FileSpec, code: tuple[FileSpec, ...] = (), entry: str | None = None) -> Registration:
    return Registration("iris", "3", "iris-3", "default", PVC, files, code, entry)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "mnt" / "models" / "iris" / "3"
    (root / "outputs").mkdir(parents=True)
    (root / "outputs" / "model.pkl").write_bytes(MODEL)
    (root / "src").mkdir()
    (root / "src" / "score.py").write_text("def run(x):\n    return x\n")
    return root


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_files_and_code_land_where_the_scoring_server_looks(source: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    logs = Logs()
    outcome = lay_out(
        reg(
            FileSpec("outputs/model.pkl", "model.pkl", sha256=sha(MODEL)),
            FileSpec("outputs/model.pkl", "copies/again.pkl"),
            code=(FileSpec("src/score.py", "score.py"),),
            entry="score.py",
        ),
        source,
        app,
        log=logs,
    )
    assert (app / "azureml-models/iris/3/model.pkl").read_bytes() == MODEL
    assert (app / "azureml-models/iris/3/copies/again.pkl").read_bytes() == MODEL
    assert (app / "score.py").read_text().startswith("def run")
    assert (outcome.model, outcome.skipped, outcome.files, outcome.bytes) == (
        "iris:3",
        False,
        3,
        2 * len(MODEL) + 25,
    )
    assert logs.msgs() == ["laid out", "laid out", "laid out", "model ready"]
    assert logs[0]["sha256"] == sha(MODEL)
    assert not list(app.rglob(f"*{PARTIAL_SUFFIX}"))


def test_missing_file_is_one_line_naming_the_storage(source: Path, tmp_path: Path) -> None:
    (source / "outputs" / "model.pkl").unlink()
    with pytest.raises(LayoutError) as info:
        lay_out(reg(FileSpec("outputs/model.pkl", "model.pkl")), source, tmp_path / "app", log=Logs())
    assert str(info.value) == (
        f"model iris:3: outputs/model.pkl not found in {source} (storage pvc models, subPath iris/3)"
    )


def test_checksum_mismatch_refuses_the_file(source: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    wrong = "0" * 64
    with pytest.raises(LayoutError) as info:
        lay_out(reg(FileSpec("outputs/model.pkl", "model.pkl", sha256=wrong)), source, app, log=Logs())
    message = str(info.value)
    assert message.startswith("model iris:3: outputs/model.pkl: sha256 mismatch")
    assert sha(MODEL) in message and wrong in message and "\n" not in message
    assert not (app / "azureml-models/iris/3/model.pkl").exists()
    assert not list(app.rglob(f"*{PARTIAL_SUFFIX}"))
    assert not (app / ".inferplane/models/iris/3.json").exists()


def test_checksum_of_archive_is_the_archive_file(source: Path, tmp_path: Path) -> None:
    archive = tar_bytes({"w.bin": MODEL}, "w:gz")
    (source / "w.tar.gz").write_bytes(archive)
    app = tmp_path / "app"
    lay_out(reg(FileSpec("w.tar.gz", ".", "tar", sha(archive))), source, app, log=Logs())
    assert (app / "azureml-models/iris/3/w.bin").read_bytes() == MODEL
    with pytest.raises(LayoutError, match="sha256 mismatch"):
        lay_out(reg(FileSpec("w.tar.gz", "again", "tar", sha(MODEL))), source, tmp_path / "app2", log=Logs())
    assert not (tmp_path / "app2/azureml-models/iris/3/again").exists()


def test_progress_is_logged_every_n_bytes(source: Path, tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 512 * 1024)
    (source / "big.bin").write_bytes(big)
    logs = Logs()
    lay_out(
        reg(FileSpec("big.bin", "big.bin")), source, tmp_path / "app", log=logs, progress_every=1024 * 1024
    )
    progress = [r for r in logs if r["msg"] == "copying"]
    assert [r["bytes"] for r in progress] == [1024 * 1024, 2 * 1024 * 1024, 3 * 1024 * 1024]
    assert all(r["file"] == "big.bin" and r["total"] == len(big) and r["level"] == "info" for r in progress)


def test_rerun_with_same_registration_does_nothing(source: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    registration = reg(FileSpec("outputs/model.pkl", "model.pkl"))
    lay_out(registration, source, app, log=Logs())
    (source / "outputs" / "model.pkl").unlink()  # a rerun that copied would now fail
    logs = Logs()
    outcome = lay_out(registration, source, app, log=logs)
    assert outcome.skipped and logs.msgs() == ["already laid out"]
    assert (app / "azureml-models/iris/3/model.pkl").read_bytes() == MODEL


def test_changed_registration_lays_out_again_and_drops_stale_files(source: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    lay_out(reg(FileSpec("outputs/model.pkl", "old.pkl")), source, app, log=Logs())
    outcome = lay_out(reg(FileSpec("outputs/model.pkl", "new.pkl")), source, app, log=Logs())
    assert not outcome.skipped
    assert sorted(p.name for p in (app / "azureml-models/iris/3").iterdir()) == ["new.pkl"]


def test_rerun_after_a_crash_that_left_a_partial_file(source: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    model_dir = app / "azureml-models/iris/3"
    model_dir.mkdir(parents=True)
    (model_dir / f".model.pkl{PARTIAL_SUFFIX}").write_bytes(MODEL[:10])  # the crash was mid-copy
    (app / f".score.py{PARTIAL_SUFFIX}").write_bytes(b"def ru")
    lay_out(
        reg(FileSpec("outputs/model.pkl", "model.pkl"), code=(FileSpec("src/score.py", "score.py"),)),
        source,
        app,
        log=Logs(),
    )
    assert (model_dir / "model.pkl").read_bytes() == MODEL
    assert not list(app.rglob(f"*{PARTIAL_SUFFIX}"))


def test_interrupted_copy_leaves_no_file_and_the_rerun_completes(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app"
    registration = reg(FileSpec("outputs/model.pkl", "model.pkl"))

    def copy_half_then_fail(src: Any, dst: Any, length: int = 0) -> None:
        dst.write(src.read(len(MODEL) // 2))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layout.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(LayoutError) as info:
        lay_out(registration, source, app, log=Logs())
    assert "No space left on device" in str(info.value)
    assert str(info.value).startswith("model iris:3: outputs/model.pkl: cannot write under")
    assert not (app / "azureml-models/iris/3/model.pkl").exists()
    assert not (app / ".inferplane/models/iris/3.json").exists()
    monkeypatch.undo()
    assert not lay_out(registration, source, app, log=Logs()).skipped
    assert (app / "azureml-models/iris/3/model.pkl").read_bytes() == MODEL


def test_source_link_out_of_the_storage_is_refused(source: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("token")
    (source / "outputs" / "leak").symlink_to(secret)
    with pytest.raises(LayoutError, match=r"outputs/leak: is a link to .*secret, outside"):
        lay_out(reg(FileSpec("outputs/leak", "leak")), source, tmp_path / "app", log=Logs())


def test_entry_script_must_exist_after_the_code_is_laid_out(source: Path, tmp_path: Path) -> None:
    (source / "code.tar").write_bytes(tar_bytes({"main.py": b""}))
    registration = reg(
        FileSpec("outputs/model.pkl", "m.pkl"), code=(FileSpec("code.tar", ".", "tar"),), entry="score.py"
    )
    with pytest.raises(LayoutError, match=r"entryScript score\.py is not a file under"):
        lay_out(registration, source, tmp_path / "app", log=Logs())


def test_code_archive_may_not_overwrite_the_models(source: Path, tmp_path: Path) -> None:
    (source / "code.tar").write_bytes(tar_bytes({"azureml-models/iris/3/model.pkl": b""}))
    app = tmp_path / "app"
    registration = reg(FileSpec("outputs/model.pkl", "model.pkl"), code=(FileSpec("code.tar", ".", "tar"),))
    with pytest.raises(LayoutError, match="holds azureml-models/, which model-init owns"):
        lay_out(registration, source, app, log=Logs())
    assert (app / "azureml-models/iris/3/model.pkl").read_bytes() == MODEL


MANIFEST = "storage: {pvc: {claimName: models, subPath: iris/3}}\nfiles: [{path: outputs/model.pkl}]\n"


def test_mounted_configmap_reads_only_regular_keys(tmp_path: Path) -> None:
    write_mounted(tmp_path / "cm", {"model.yaml": MANIFEST})
    (tmp_path / "outside").write_text("not a key")
    (tmp_path / "cm" / "escape").symlink_to(tmp_path / "outside")
    assert read_keys(tmp_path / "cm") == {"model.yaml": MANIFEST}


def test_several_models_from_config_and_source_trees(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    write_mounted(config / "iris" / "3", {"model.yaml": MANIFEST})
    wine_manifest = (
        "storage: {nfs: {server: n, path: /w}}\nfiles: [{path: w.json, containerPath: weights.json}]\n"
    )
    write_mounted(config / "wine" / "1", {"model.yaml": wine_manifest})
    wine = tmp_path / "mnt" / "models" / "wine" / "1"
    wine.mkdir(parents=True)
    (wine / "w.json").write_text("{}")
    app = tmp_path / "app"
    outcomes = run(config, tmp_path / "mnt" / "models", app, log=Logs())
    assert [o.model for o in outcomes] == ["iris:3", "wine:1"]
    assert (app / "azureml-models/iris/3/model.pkl").read_bytes() == MODEL
    assert (app / "azureml-models/wine/1/weights.json").read_text() == "{}"
    assert not (app / ".inferplane/staging").exists()


def test_single_registration_needs_the_model_named(source: Path, tmp_path: Path) -> None:
    write_mounted(tmp_path / "cm", {"model.yaml": MANIFEST})
    with pytest.raises(InvalidRegistration, match="--model NAME:VERSION"):
        find_registrations(tmp_path / "cm")
    [(registration, storage)] = load(tmp_path / "cm", source, model="iris:3")
    assert (registration.model, storage) == ("iris:3", source)


def test_bad_registration_in_a_tree_is_named_and_nothing_is_written(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    write_mounted(config / "iris" / "3", {"model.yaml": MANIFEST})
    write_mounted(config / "wine" / "1", {"model.yaml": "storage: {}\nfiles: []"})
    app = tmp_path / "app"
    with pytest.raises(InvalidRegistration) as info:
        run(config, tmp_path / "mnt" / "models", app, log=Logs())
    assert str(info.value).startswith(
        f"{config / 'wine' / '1'}: registration wine:1, key model.yaml, field storage"
    )
    assert not app.exists()


def test_missing_storage_mount_and_code_clash(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    write_mounted(config / "wine" / "1", {"model.yaml": MANIFEST})
    with pytest.raises(LayoutError, match=r"model wine:1: its storage is not mounted at .*wine/1"):
        load(config, tmp_path / "mnt" / "models")
    both = MANIFEST + "code: [{path: src/score.py}]\n"
    clash = tmp_path / "etc2"
    write_mounted(clash / "iris" / "3", {"model.yaml": both})
    write_mounted(clash / "iris" / "4", {"model.yaml": both})
    (tmp_path / "mnt" / "models" / "iris" / "4").mkdir()
    with pytest.raises(LayoutError, match=r"models iris:3 and iris:4 both deliver code to score\.py"):
        load(clash, tmp_path / "mnt" / "models")
