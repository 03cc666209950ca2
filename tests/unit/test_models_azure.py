"""Azure's InitContainerConfig, read as is: the seed 001 shape parses, lays out where Azure put it,
and its mistakes are refused by name."""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
from pathlib import Path

import pytest

from models.layout import lay_out
from models.registration import FileSpec, InvalidRegistration, parse_registration_data

STORAGE = (
    "storage: {flexVolume: {driver: azure/blobfuse, options: {container: azureml}}}\nentryScript: score.py\n"
)

# The shape seed 001 prints from a real Azure deployment (ids shortened), with the source tarball's
# entry filled in the way Azure's SDK uploads a source directory.
SEED_001 = {
    "Models": [
        {
            "iris:3": [
                {
                    "Path": "ExperimentRun/dcid.abc/outputs/model.pkl",
                    "Content": None,
                    "ContainerPath": "./azureml-models/iris/3/model.pkl",
                    "UnpackType": 0,
                }
            ]
        },
    ],
    "Dependency": [
        {"Path": "LocalUpload/u1/tmpmain.py", "Content": None, "ContainerPath": "/main.py", "UnpackType": 0},
        {"Path": "LocalUpload/u2/source.tar.gz", "Content": None, "ContainerPath": "/", "UnpackType": 1},
    ],
    "MountPath": "/var/azureml-app",
}


def azure(config: object, storage: str = STORAGE) -> object:
    text = config if isinstance(config, str) else json.dumps(config)
    return parse_registration_data(
        {"InitContainerConfig": text, "storage.yaml": storage},
        name="iris",
        version="3",
        configmap="iris-3",
        namespace="ml",
    )


def test_seed_001_shape_maps_onto_our_layout() -> None:
    reg = azure(SEED_001)
    assert reg.files == (FileSpec("ExperimentRun/dcid.abc/outputs/model.pkl", "model.pkl"),)
    assert reg.code == (
        FileSpec("LocalUpload/u1/tmpmain.py", "main.py"),
        FileSpec("LocalUpload/u2/source.tar.gz", ".", "tar"),
    )
    assert reg.storage.kind == "flexVolume"
    assert reg.entry_script == "score.py"


def test_seed_001_round_trip_lands_where_azure_put_each_file(tmp_path: Path) -> None:
    source, app = tmp_path / "blob", tmp_path / "app"
    files = {
        "ExperimentRun/dcid.abc/outputs/model.pkl": b"pickled model",
        "LocalUpload/u1/tmpmain.py": b"print('main')\n",
    }
    for rel, body in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(body)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("score.py")
        info.size = len(b"def run(x): return x\n")
        tar.addfile(info, io.BytesIO(b"def run(x): return x\n"))
    (source / "LocalUpload/u2").mkdir(parents=True)
    (source / "LocalUpload/u2/source.tar.gz").write_bytes(buffer.getvalue())

    lay_out(azure(SEED_001), source, app, log=lambda record: None)

    # Every Azure ContainerPath, read relative to MountPath, names the file there in our app root.
    entries = SEED_001["Models"][0]["iris:3"] + SEED_001["Dependency"][:1]
    for entry in entries:
        landed = app / posixpath.normpath(entry["ContainerPath"].lstrip("/"))
        assert landed.read_bytes() == files[entry["Path"]]
    assert (app / "score.py").read_text() == "def run(x): return x\n"


def test_models_as_a_mapping_and_paths_under_mount_path() -> None:
    reg = azure(
        {
            "Models": {
                "iris:3": [
                    {"Path": "w.tar", "ContainerPath": "/srv/app/azureml-models/iris/3", "UnpackType": 1},
                    {"Path": "v.zip", "ContainerPath": "azureml-models/iris/3/vocab", "UnpackType": 2},
                ]
            },
            "MountPath": "/srv/app",
        },
        storage="storage: {pvc: {claimName: models}}",
    )
    assert reg.files == (FileSpec("w.tar", ".", "tar"), FileSpec("v.zip", "vocab", "zip"))
    assert reg.code == ()


def test_top_level_unpack_type_is_the_default() -> None:
    reg = azure(
        {
            "Models": {"iris:3": [{"Path": "w.tar", "ContainerPath": "./azureml-models/iris/3"}]},
            "UnpackType": 1,
        },
        storage="storage: {pvc: {claimName: models}}",
    )
    assert reg.files[0].unpack == "tar"


def entry(**fields: object) -> dict:
    base = {
        "Path": "m.pkl",
        "Content": None,
        "ContainerPath": "./azureml-models/iris/3/m.pkl",
        "UnpackType": 0,
    }
    return {"Models": {"iris:3": [{**base, **fields}]}}


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (entry(Content="aGVsbG8="), ["Content", "inline Content is not supported"]),
        (entry(ContainerPath="./azureml-models/other/1/m.pkl"), ["outside ./azureml-models/iris/3/"]),
        (entry(ContainerPath="./azureml-models/iris/3/../../x"), ["'..'"]),
        (entry(UnpackType=7), ["UnpackType 7 is not known", "0 (plain file), 1 (tar) or 2 (zip)"]),
        (entry(UnpackType=True), ["is not known"]),
        (entry(Path="/abs/m.pkl"), ["Path", "absolute"]),
        (entry(Pth="x"), ["did you mean Path?"]),
        (entry(ContainerPath="./azureml-models/iris/3"), ["plain file cannot be laid out as the directory"]),
        ({"Models": {"iris:3": [], "wine:1": []}}, ["holds iris:3, wine:1", "one ConfigMap per model"]),
        ({"Models": {"wine:1": []}}, ["labels name iris:3"]),
        ({"Models": {"iris:3": []}}, ["non-empty list"]),
        ({**entry(), "MountPath": "app"}, ["MountPath", "not absolute"]),
        ({**entry(), "Dependency": {"Path": "x"}}, ["Dependency", "expected a list"]),
        ({**entry(), "Extra": 1}, ["field Extra: unknown key"]),
        ('{"Models": {"iris:3": [}', ["does not parse as JSON: line 1"]),
        ('{"Models": {}, "Models": {}}', ["duplicate key 'Models'"]),
        ("[]", ["expected a mapping, got a list"]),
    ],
)
def test_azure_mistakes_are_refused(config: object, words: list[str]) -> None:
    with pytest.raises(InvalidRegistration) as info:
        azure(config, storage="storage: {pvc: {claimName: models}}")
    message = str(info.value)
    assert message.startswith("ConfigMap ml/iris-3, key InitContainerConfig")
    for word in words:
        assert word in message


def test_entry_script_mistake_names_storage_yaml() -> None:
    with pytest.raises(InvalidRegistration, match=r"key storage.yaml, field entryScript: names 'score.py'"):
        azure(entry())


def test_storage_yaml_is_required_and_strict() -> None:
    with pytest.raises(InvalidRegistration, match=r"needs storage\.yaml beside it"):
        parse_registration_data({"InitContainerConfig": json.dumps(entry())}, name="iris", version="3")
    with pytest.raises(InvalidRegistration, match=r"key storage.yaml, field storage.pvc.claimName: missing"):
        azure(entry(), storage="storage: {pvc: {}}")
    with pytest.raises(InvalidRegistration, match=r"key storage.yaml, field files: unknown key"):
        azure(entry(), storage="storage: {pvc: {claimName: m}}\nfiles: []")
