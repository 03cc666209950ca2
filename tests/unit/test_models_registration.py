"""The registration parser: every storage shape, and every mistake refused with a message that helps."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.registration import (
    NAME_LABEL,
    VERSION_LABEL,
    FileSpec,
    InvalidRegistration,
    StorageSource,
    parse_registration,
    parse_registration_data,
    registration_id,
)
from models.storage import describe, volume_source


def configmap(manifest: str, *, name: str = "iris", version: object = "3", **extra: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "iris-3",
            "namespace": "default",
            "labels": {NAME_LABEL: name, VERSION_LABEL: version},
        },
        "data": {"model.yaml": manifest},
        **extra,
    }


def parse(manifest: str) -> object:
    return parse_registration(configmap(manifest))


def refused(manifest: str) -> str:
    with pytest.raises(InvalidRegistration) as info:
        parse(manifest)
    return str(info.value)


FILES = "files: [{path: outputs/model.pkl}]\n"


@pytest.mark.parametrize(
    ("storage", "kind", "spec"),
    [
        ("pvc: {claimName: models, subPath: iris/3}", "pvc", {"claimName": "models", "subPath": "iris/3"}),
        (
            "csi: {driver: blob.csi.azure.com, volumeAttributes: {containerName: models},"
            " nodePublishSecretRef: {name: blob-creds}}",
            "csi",
            {
                "driver": "blob.csi.azure.com",
                "volumeAttributes": {"containerName": "models"},
                "nodePublishSecretRef": {"name": "blob-creds"},
            },
        ),
        (
            "flexVolume: {driver: azure/blobfuse, options: {container: azureml}, secretRef: {name: bf}}",
            "flexVolume",
            {"driver": "azure/blobfuse", "options": {"container": "azureml"}, "secretRef": {"name": "bf"}},
        ),
        (
            "nfs: {server: 10.0.0.4, path: /exports/iris/3}",
            "nfs",
            {"server": "10.0.0.4", "path": "/exports/iris/3"},
        ),
        (
            "hostPath: {path: /var/lib/inferplane/models/iris/3}",
            "hostPath",
            {"path": "/var/lib/inferplane/models/iris/3"},
        ),
        (
            "image: {reference: registry.example/iris:3, pullPolicy: IfNotPresent}",
            "image",
            {"reference": "registry.example/iris:3", "pullPolicy": "IfNotPresent"},
        ),
    ],
    ids=["pvc", "csi", "flexVolume", "nfs", "hostPath", "image"],
)
def test_each_storage_shape_parses(storage: str, kind: str, spec: dict) -> None:
    reg = parse(f"storage: {{{storage}}}\n{FILES}")
    assert reg.storage == StorageSource(kind, spec)
    assert reg.files == (FileSpec("outputs/model.pkl", "model.pkl"),)
    assert (reg.name, reg.version, reg.configmap, reg.namespace) == ("iris", "3", "iris-3", "default")


def test_full_manifest() -> None:
    reg = parse(
        "storage: {pvc: {claimName: models}}\n"
        "files:\n"
        f"  - {{path: outputs/model.pkl, containerPath: sub/m.pkl, sha256: '{'A' * 64}'}}\n"
        "  - {path: outputs/weights.tar.gz, unpack: tar}\n"
        "code:\n"
        "  - {path: src/score.zip, containerPath: ., unpack: zip}\n"
        "entryScript: score.py\n"
    )
    assert reg.files == (
        FileSpec("outputs/model.pkl", "sub/m.pkl", "none", "a" * 64),
        FileSpec("outputs/weights.tar.gz", ".", "tar"),
    )
    assert reg.code == (FileSpec("src/score.zip", ".", "zip"),)
    assert reg.entry_script == "score.py"
    assert reg.model == "iris:3"


def test_storage_description_and_volume() -> None:
    reg = parse(f"storage: {{pvc: {{claimName: models, subPath: iris/3}}}}\n{FILES}")
    assert describe(reg.storage) == "pvc models, subPath iris/3"
    assert volume_source(reg.storage) == {"persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    host = parse(f"storage: {{hostPath: {{path: /srv/m}}}}\n{FILES}")
    assert volume_source(host.storage) == {"hostPath": {"path": "/srv/m", "type": "Directory"}}


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        (f"storage: {{}}\n{FILES}", ["field storage", "exactly one storage kind, found none"]),
        (
            f"storage: {{pvc: {{claimName: a}}, nfs: {{server: s, path: /p}}}}\n{FILES}",
            ["found pvc, nfs", "keep one of"],
        ),
        (f"storage: {{pvc: {{subPath: x}}}}\n{FILES}", ["storage.pvc.claimName: missing"]),
        (f"storage: {{nfs: {{server: s}}}}\n{FILES}", ["storage.nfs.path: missing"]),
        (
            f"storage: {{nfs: {{server: s, path: rel}}}}\n{FILES}",
            ["storage.nfs.path", "not an absolute path"],
        ),
        (f"storage: {{hostPath: {{}}}}\n{FILES}", ["storage.hostPath.path: missing"]),
        (f"storage: {{csi: {{volumeAttributes: {{}}}}}}\n{FILES}", ["storage.csi.driver: missing"]),
        (f"storage: {{flexVolume: {{options: {{}}}}}}\n{FILES}", ["storage.flexVolume.driver: missing"]),
        (f"storage: {{image: {{pullPolicy: Always}}}}\n{FILES}", ["storage.image.reference: missing"]),
        (f"storage: {{s3: {{bucket: b}}}}\n{FILES}", ["storage.s3: unknown key"]),
        (
            f"storage: {{pvc: {{claimNam: models}}}}\n{FILES}",
            ["storage.pvc.claimNam", "did you mean claimName?"],
        ),
        (
            f"storage: {{csi: {{driver: d, volumeAttributes: {{readOnly: true}}}}}}\n{FILES}",
            ["volumeAttributes.readOnly", "quote the value"],
        ),
        ("storage: {pvc: {claimName: m}}\nfiles: []", ["field files", "non-empty list"]),
        ("storage: {pvc: {claimName: m}}", ["field files: missing"]),
        ("storage: {pvc: {claimName: m}}\nfiles: [{path: /etc/passwd}]", ["files[0].path", "absolute"]),
        ("storage: {pvc: {claimName: m}}\nfiles: [{path: a/../../b}]", ["files[0].path", "'..'"]),
        (
            "storage: {pvc: {claimName: m}}\nfiles: [{path: a, containerPath: /abs}]",
            ["files[0].containerPath", "absolute"],
        ),
        (
            "storage: {pvc: {claimName: m}}\nfiles: [{path: a, containerPath: ../up}]",
            ["containerPath", "'..'"],
        ),
        ("storage: {pvc: {claimName: m}}\nfiles: [{path: a, containerPath: .}]", ["plain file cannot"]),
        (
            "storage: {pvc: {claimName: m}}\nfiles: [{path: a, unpack: rar}]",
            ["files[0].unpack", "none, tar, zip"],
        ),
        ("storage: {pvc: {claimName: m}}\nfiles: [{path: a, sha256: abc}]", ["files[0].sha256", "64 hex"]),
        (
            "storage: {pvc: {claimName: m}}\nfiles: [{path: a, sha: abc}]",
            ["files[0].sha", "did you mean sha256?"],
        ),
        ("storage: {pvc: {claimName: m}}\nfiles: [{path: a}, {path: b/a}]", ["files[1]", "files[0] does"]),
        (f"storage: {{pvc: {{claimName: m}}}}\n{FILES}entryScript: score.py", ["entryScript", "no code"]),
        (
            f"storage: {{pvc: {{claimName: m}}}}\n{FILES}code: [{{path: src/x.py}}]\nentryScript: score.py",
            ["entryScript", "not among the code files"],
        ),
        (
            f"storage: {{pvc: {{claimName: m}}}}\n{FILES}"
            "code: [{path: c.tar, containerPath: azureml-models/x, unpack: tar}]",
            ["code[0]", "model-init owns"],
        ),
        (f"storage: {{pvc: {{claimName: m}}}}\n{FILES}extra: 1", ["field extra: unknown key"]),
    ],
)
def test_mistakes_are_refused_with_the_field_and_fix(manifest: str, words: list[str]) -> None:
    message = refused(manifest)
    assert message.startswith("ConfigMap default/iris-3, key model.yaml")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        ("[1, 2]", ["expected a mapping, got a list"]),
        ("42", ["expected a mapping, got a number (42)"]),
        ("", ["expected a mapping, got empty (null)"]),
        ("storage: {pvc: {claimName: m}}\n  files: [", ["does not parse as YAML: line 2"]),
        ("a: 1\na: 2", ["duplicate key 'a'", "line 2"]),
        ("a: &x [1]\nb: *x", ["aliases", "line 2"]),
        ("x" * (10 * 1024 * 1024), ["10485760 bytes", "1 MiB"]),
        ("[" * 100_000 + "]" * 100_000, ["nested more than 32 levels"]),
        ("!!python/object:os.system {}", ["does not parse as YAML"]),
    ],
    ids=["list", "number", "empty", "bad-yaml", "duplicate", "alias", "10MB", "deep", "python-tag"],
)
def test_hostile_manifests_give_a_message_not_a_traceback(manifest: str, words: list[str]) -> None:
    message = refused(manifest)
    for word in words:
        assert word in message


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    with contextlib.suppress(InvalidRegistration):
        parse(text)


def test_configmap_level_mistakes() -> None:
    ok = f"storage: {{pvc: {{claimName: m}}}}\n{FILES}"
    cases = [
        (configmap(ok, version=3), 'quote it, e.g. "3"'),
        (configmap(ok, name="Iris/x"), "not a valid model name"),
        ({**configmap(ok), "data": {"model.yml": ok}}, "did you mean model.yaml?"),
        ({**configmap(ok), "data": {}}, "holds no registration"),
        ({**configmap(ok), "data": {"model.yaml": ok, "InitContainerConfig": "{}"}}, "keep one"),
        ({**configmap(ok), "data": {"model.yaml": 5}}, "expected text"),
        ({**configmap(ok), "kind": "Secret"}, "a registration is a kind: ConfigMap"),
        ({**configmap(ok), "data": None, "binaryData": {"model.yaml": "eA=="}}, "put the registration text"),
    ]
    for obj, words in cases:
        with pytest.raises(InvalidRegistration, match="ConfigMap default/iris-3") as info:
            parse_registration(obj)
        assert words in str(info.value)
    no_label = configmap(ok)
    del no_label["metadata"]["labels"][VERSION_LABEL]
    with pytest.raises(InvalidRegistration, match=r"labels\[ml.example/model-version\]: missing"):
        parse_registration(no_label)
    with pytest.raises(InvalidRegistration, match="must be a ConfigMap object"):
        parse_registration(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_registration_id() -> None:
    ok = f"storage: {{pvc: {{claimName: m}}}}\n{FILES}"
    assert registration_id(configmap(ok)) == ("iris", "3")
    assert registration_id(configmap(ok, version=3)) == ("iris", "3")
    assert registration_id({"metadata": {"labels": {NAME_LABEL: "iris"}}}) is None
    assert registration_id({"metadata": {"name": "x"}}) is None
    assert registration_id({"metadata": None}) is None


def test_data_without_configmap_names_the_model() -> None:
    with pytest.raises(InvalidRegistration, match=r"^registration iris:3, key model.yaml"):
        parse_registration_data({"model.yaml": "[]"}, name="iris", version="3")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    metadata=st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "name": _json | st.just("iris-3"),
                "namespace": _json | st.just("default"),
                "labels": _json
                | st.fixed_dictionaries({NAME_LABEL: _json | st.just("iris"), VERSION_LABEL: _json}),
            }
        ),
    ),
    data=st.one_of(
        _json, st.dictionaries(st.sampled_from(["model.yaml", "InitContainerConfig", "storage.yaml"]), _json)
    ),
    binary=_json,
)
def test_any_configmap_shape_parses_or_is_refused_cleanly(
    metadata: object, data: object, binary: object
) -> None:
    obj = {"kind": "ConfigMap", "metadata": metadata, "data": data, "binaryData": binary}
    registration_id(obj)
    with contextlib.suppress(InvalidRegistration):
        parse_registration(obj)
