"""`inferplane model register`: what it prints parses back into the registration the flags describe."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from inferplane.cli import main
from inferplane.errors import UserError
from models.register import StorageFlag, build, dump
from models.registration import NAME_LABEL, VERSION_LABEL, FileSpec, StorageSource, parse_registration


def test_printed_configmap_parses_back_into_the_same_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    local = tmp_path / "copy"
    (local / "outputs").mkdir(parents=True)
    (local / "outputs" / "model.pkl").write_bytes(b"model bytes")
    (local / "src").mkdir()
    (local / "src" / "code.tar.gz").write_bytes(b"not really a tar, only hashed here")
    code = main(
        [
            "model",
            "register",
            "iris:3",
            "--storage-pvc",
            "models:iris/3",
            "--file",
            "outputs/model.pkl",
            "--file",
            "outputs/model.pkl=copies/m.pkl@none",
            "--code",
            "src/code.tar.gz=.@tar",
            "--entry-script",
            "score.py",
            "--namespace",
            "ml",
            "--sha256-from",
            str(local),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    obj = yaml.safe_load(printed)
    assert obj["metadata"] == {
        "name": "model-iris-3",
        "namespace": "ml",
        "labels": {NAME_LABEL: "iris", VERSION_LABEL: "3"},
    }
    assert "model.yaml: |" in printed  # a readable block, not an escaped one-liner
    reg = parse_registration(obj)
    model_sha = hashlib.sha256(b"model bytes").hexdigest()
    code_sha = hashlib.sha256(b"not really a tar, only hashed here").hexdigest()
    assert reg.storage == StorageSource("pvc", {"claimName": "models", "subPath": "iris/3"})
    assert reg.files == (
        FileSpec("outputs/model.pkl", "model.pkl", "none", model_sha),
        FileSpec("outputs/model.pkl", "copies/m.pkl", "none", model_sha),
    )
    assert reg.code == (FileSpec("src/code.tar.gz", ".", "tar", code_sha),)
    assert (reg.entry_script, reg.configmap, reg.namespace) == ("score.py", "model-iris-3", "ml")


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (StorageFlag("pvc", "models"), StorageSource("pvc", {"claimName": "models"})),
        (StorageFlag("hostPath", "/var/lib/m"), StorageSource("hostPath", {"path": "/var/lib/m"})),
        (
            StorageFlag("nfs", "nfs.internal:/exports/m"),
            StorageSource("nfs", {"server": "nfs.internal", "path": "/exports/m"}),
        ),
        (
            StorageFlag("image", "reg.example/iris:3", pull_policy="Always"),
            StorageSource("image", {"reference": "reg.example/iris:3", "pullPolicy": "Always"}),
        ),
        (
            StorageFlag("csi", "blob.csi.azure.com", ("containerName=models",), secret="creds"),
            StorageSource(
                "csi",
                {
                    "driver": "blob.csi.azure.com",
                    "volumeAttributes": {"containerName": "models"},
                    "nodePublishSecretRef": {"name": "creds"},
                },
            ),
        ),
        (
            StorageFlag("flexVolume", "azure/blobfuse", ("container=azureml",)),
            StorageSource("flexVolume", {"driver": "azure/blobfuse", "options": {"container": "azureml"}}),
        ),
    ],
    ids=lambda v: v.kind if isinstance(v, StorageFlag) else "",
)
def test_each_storage_flag(flag: StorageFlag, expected: StorageSource) -> None:
    obj, reg = build("iris:3", flag, files=["model.onnx"])
    assert reg.storage == expected
    assert parse_registration(yaml.safe_load(dump(obj))) == reg


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"model": "iris"}, "is not NAME:VERSION"),
        (
            {"storage": StorageFlag("nfs", "just-a-server")},
            "--storage-nfs 'just-a-server' is not SERVER:PATH",
        ),
        ({"files": ["m.tar@rar"]}, "unpack 'rar' is not one of none, tar, zip"),
        ({"files": ["m.pkl="]}, "is not PATH[=CONTAINERPATH][@UNPACK]"),
        ({"files": []}, "give the model's files with --file"),
        ({"files": ["../m.pkl"]}, "the flags make an invalid registration"),
        ({"storage": StorageFlag("hostPath", "relative/dir")}, "not an absolute path"),
        ({"storage": StorageFlag("csi", "d", ("novalue",))}, "--option 'novalue' is not KEY=VALUE"),
        ({"configmap": "Iris_3"}, "not a valid ConfigMap name"),
    ],
)
def test_bad_flags_name_the_flag_and_fix(kwargs: dict, words: str) -> None:
    args = {"model": "iris:3", "storage": StorageFlag("pvc", "models"), "files": ["m.pkl"], **kwargs}
    with pytest.raises(UserError) as info:
        build(args.pop("model"), args.pop("storage"), **args)
    assert words in str(info.value)


def test_missing_local_copy_for_checksums(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "model",
        "register",
        "iris:3",
        "--storage-pvc",
        "m",
        "--file",
        "m.pkl",
        "--sha256-from",
        str(tmp_path),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("inferplane model: --sha256-from")
    assert "cannot read m.pkl" in err


def test_exactly_one_storage_flag(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["model", "register", "iris:3", "--file", "m.pkl"])
    assert info.value.code == 2
    assert "one of the arguments --storage-pvc" in capsys.readouterr().err
