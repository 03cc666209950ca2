"""Model registrations: ConfigMaps labelled with a model name and version.

The same parser serves the webhook (is the model the pod names registered, and valid?), the offline
CLI and model-init inside the pod, so a registration the webhook accepted is one model-init can lay
out. It is strict on purpose: a typo in a hand-written manifest must be refused with the ConfigMap,
key, field and fix named, never ignored.

A registration's `data` holds either

- `model.yaml`, our manifest:

      storage: {pvc: {claimName: models, subPath: iris/3}}    # exactly one kind, see models.storage
      files:                                                  # non-empty
        - {path: outputs/model.pkl, containerPath: model.pkl, unpack: none, sha256: <64 hex>}
      code:                                                   # optional, under the app root
        - {path: src/score.tar.gz, containerPath: ., unpack: tar}
      entryScript: score.py                                   # optional

  `containerPath` defaults to the file's base name, or to `.` (the directory itself) for an archive;
- or `InitContainerConfig`, Azure's JSON as is (see models.azure), with `storage.yaml` holding
  `storage:` and optionally `entryScript:`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from inferplane.wording import describe
from models import fields
from models.azure import files_from_azure
from models.documents import load_json, load_yaml
from models.fields import Where
from models.storage import parse_storage
from models.values import (
    AZURE_CONFIG_KEY,
    AZURE_STORAGE_KEY,
    MANIFEST_KEY,
    MODELS_DIR,
    NAME_LABEL,
    STATE_DIR,
    STORAGE_KINDS,
    UNPACK_KINDS,
    VERSION_LABEL,
    FileSpec,
    InvalidRegistration,
    Registration,
    StorageSource,
)

__all__ = [
    "AZURE_CONFIG_KEY",
    "AZURE_STORAGE_KEY",
    "MANIFEST_KEY",
    "NAME_LABEL",
    "STORAGE_KINDS",
    "UNPACK_KINDS",
    "VERSION_LABEL",
    "FileSpec",
    "InvalidRegistration",
    "Registration",
    "StorageSource",
    "parse_registration",
    "parse_registration_data",
    "registration_id",
]

_MANIFEST_EXAMPLE = "{storage: {pvc: {claimName: models}}, files: [{path: outputs/model.pkl}]}"
_FILE_EXAMPLE = "{path: outputs/model.pkl, containerPath: model.pkl}"
_KEY_CHOICES = f"{MANIFEST_KEY}, or {AZURE_CONFIG_KEY} with {AZURE_STORAGE_KEY}"


def registration_id(configmap: Mapping[str, Any]) -> tuple[str, str] | None:
    """(model name, version) from a ConfigMap's labels, or None when it is not a registration.

    Both labels must be there. Their values are returned as text even when an offline YAML file
    left the version unquoted, so the catalog still finds the ConfigMap and `parse_registration`
    can tell the user to quote it.
    """
    metadata = configmap.get("metadata") if isinstance(configmap, Mapping) else None
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if not isinstance(labels, Mapping) or NAME_LABEL not in labels or VERSION_LABEL not in labels:
        return None
    return str(labels[NAME_LABEL]), str(labels[VERSION_LABEL])


def parse_registration(configmap: Mapping[str, Any]) -> Registration:
    """Parse a registration ConfigMap; raises InvalidRegistration naming the ConfigMap."""
    if not isinstance(configmap, Mapping):
        raise InvalidRegistration(f"a registration must be a ConfigMap object, got {describe(configmap)}")
    metadata = configmap.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    cm_name = metadata.get("name")
    namespace = metadata.get("namespace") or ""
    where = Where(f"ConfigMap {namespace}/{cm_name}" if namespace else f"ConfigMap {cm_name}")
    if configmap.get("kind", "ConfigMap") != "ConfigMap":
        where.fail("kind", f"is {configmap.get('kind')!r}", "a registration is a kind: ConfigMap")
    if not isinstance(cm_name, str) or not cm_name:
        where.fail("metadata.name", "missing", "give the ConfigMap a name")
    if not isinstance(namespace, str):
        where.fail("metadata.namespace", f"expected a string, got {describe(namespace)}", "fix it")
    labels = metadata.get("labels")
    if not isinstance(labels, Mapping):
        labels = {}
    label_field = "metadata.labels"
    for label in (NAME_LABEL, VERSION_LABEL):
        if label not in labels:
            where.fail(
                f"{label_field}[{label}]",
                "missing",
                f'label the ConfigMap {NAME_LABEL}: <name>, {VERSION_LABEL}: "<version>"',
            )
    binary = configmap.get("binaryData") or {}
    if not isinstance(binary, Mapping):
        where.fail("binaryData", f"expected a mapping, got {describe(binary)}", "remove it")
    for key in binary:
        if key in (MANIFEST_KEY, AZURE_CONFIG_KEY, AZURE_STORAGE_KEY):
            where.fail(f"binaryData.{key}", "is binary data", "put the registration text under data:")
    return parse_registration_data(
        configmap.get("data") or {},
        name=labels[NAME_LABEL],
        version=labels[VERSION_LABEL],
        configmap=cm_name,
        namespace=namespace,
    )


def parse_registration_data(
    data: Mapping[str, str], *, name: str, version: str, configmap: str = "", namespace: str = ""
) -> Registration:
    """Parse a registration from its data keys (a ConfigMap's `data`, or files of a mounted one)."""
    if configmap:
        origin = f"ConfigMap {namespace}/{configmap}" if namespace else f"ConfigMap {configmap}"
    else:
        origin = f"registration {name}:{version}"
    where = Where(origin)
    fields.label_value(name, where, f"metadata.labels[{NAME_LABEL}]", what="model name")
    fields.label_value(version, where, f"metadata.labels[{VERSION_LABEL}]", what="model version")
    if not isinstance(data, Mapping):
        where.fail("data", f"expected a mapping, got {describe(data)}", f"hold {_KEY_CHOICES}")
    for key, value in data.items():
        if key not in (MANIFEST_KEY, AZURE_CONFIG_KEY, AZURE_STORAGE_KEY):
            fields.mapping(
                {key: None},
                where,
                "data",
                allowed=(MANIFEST_KEY, AZURE_CONFIG_KEY, AZURE_STORAGE_KEY),
                example=f"data: {{{MANIFEST_KEY}: ...}}",
            )
        if not isinstance(value, str):
            where.fail(
                f"data.{key}",
                f"expected text, got {describe(value)}",
                "write the text as a | block string",
            )

    if MANIFEST_KEY in data:
        if AZURE_CONFIG_KEY in data or AZURE_STORAGE_KEY in data:
            where.fail("data", f"holds both {MANIFEST_KEY} and the Azure keys", f"keep one: {_KEY_CHOICES}")
        return _from_manifest(data[MANIFEST_KEY], where.at(MANIFEST_KEY), name, version, configmap, namespace)
    if AZURE_CONFIG_KEY in data:
        return _from_azure(data, where, name, version, configmap, namespace)
    if AZURE_STORAGE_KEY in data:
        where.fail("data", f"has {AZURE_STORAGE_KEY} but no {AZURE_CONFIG_KEY}", f"hold {_KEY_CHOICES}")
    where.fail("data", "holds no registration", f"add {_KEY_CHOICES}")


def _from_manifest(
    text: str, where: Where, name: str, version: str, configmap: str, namespace: str
) -> Registration:
    doc = fields.mapping(
        load_yaml(text, where),
        where,
        "",
        allowed=("storage", "files", "code", "entryScript"),
        required=("storage", "files"),
        example=_MANIFEST_EXAMPLE,
    )
    storage = parse_storage(doc["storage"], where)
    files = _file_list(doc["files"], where, "files", required=True)
    code = _file_list(doc.get("code"), where, "code", required=False) if "code" in doc else ()
    entry = _entry_script(doc.get("entryScript"), where, "entryScript")
    reg = Registration(name, version, configmap, namespace, storage, files, code, entry)
    _check_layout(reg, where, ("files", "code"), where)
    return reg


def _from_azure(
    data: Mapping[str, str], where: Where, name: str, version: str, configmap: str, namespace: str
) -> Registration:
    azure_where = where.at(AZURE_CONFIG_KEY)
    files, code = files_from_azure(
        load_json(data[AZURE_CONFIG_KEY], azure_where), azure_where, name=name, version=version
    )
    if AZURE_STORAGE_KEY not in data:
        where.fail(
            "data",
            f"{AZURE_CONFIG_KEY} needs {AZURE_STORAGE_KEY} beside it",
            f"add {AZURE_STORAGE_KEY} with the storage block, e.g. storage: {{pvc: {{claimName: models}}}}",
        )
    storage_where = where.at(AZURE_STORAGE_KEY)
    doc = fields.mapping(
        load_yaml(data[AZURE_STORAGE_KEY], storage_where),
        storage_where,
        "",
        allowed=("storage", "entryScript"),
        required=("storage",),
        example="storage: {pvc: {claimName: models}}",
    )
    storage = parse_storage(doc["storage"], storage_where)
    entry = _entry_script(doc.get("entryScript"), storage_where, "entryScript")
    reg = Registration(name, version, configmap, namespace, storage, files, code, entry)
    _check_layout(reg, azure_where, (f"Models[{name}:{version}]", "Dependency"), storage_where)
    return reg


def _file_list(value: Any, where: Where, field: str, *, required: bool) -> tuple[FileSpec, ...]:
    if not isinstance(value, list) or (required and not value):
        got = "an empty list" if isinstance(value, list) else describe(value)
        where.fail(field, f"expected a non-empty list of files, got {got}", f"write e.g. [{_FILE_EXAMPLE}]")
    return tuple(_file(item, where, f"{field}[{index}]") for index, item in enumerate(value))


def _file(value: Any, where: Where, field: str) -> FileSpec:
    entry = fields.mapping(
        value,
        where,
        field,
        allowed=("path", "containerPath", "unpack", "sha256"),
        required=("path",),
        example=_FILE_EXAMPLE,
    )
    path = fields.relative_path(
        entry["path"], where, f"{field}.path", allow_dot=False, example="outputs/model.pkl"
    )
    unpack = fields.choice(entry.get("unpack", "none"), where, f"{field}.unpack", choices=UNPACK_KINDS)
    if "containerPath" in entry:
        container = fields.relative_path(
            entry["containerPath"], where, f"{field}.containerPath", allow_dot=True, example="model.pkl"
        )
    else:
        container = posixpath.basename(path) if unpack == "none" else "."
    digest = fields.sha256(entry["sha256"], where, f"{field}.sha256") if "sha256" in entry else None
    return FileSpec(path, container, unpack, digest)


def _entry_script(value: Any, where: Where, field: str) -> str | None:
    if value is None:
        return None
    return fields.relative_path(value, where, field, allow_dot=False, example="score.py")


def _check_layout(reg: Registration, where: Where, lists: tuple[str, str], entry_where: Where) -> None:
    """Rules on where things land that hold for both formats; `lists` names the files' and code's fields."""
    for specs, list_field, is_code in ((reg.files, lists[0], False), (reg.code, lists[1], True)):
        taken: dict[str, str] = {}
        for index, spec in enumerate(specs):
            field = f"{list_field}[{index}]"
            target = spec.container_path
            if target == "." and spec.unpack == "none":
                where.fail(
                    field,
                    "a plain file cannot be laid out as the directory itself",
                    "name the file's containerPath, e.g. model.pkl, or set unpack: tar or zip",
                )
            top = target.split("/")[0]
            if is_code and top in (MODELS_DIR, STATE_DIR):
                where.fail(
                    field,
                    f"code may not land in {top}/, which model-init owns",
                    "choose another containerPath",
                )
            if spec.unpack != "none":
                continue
            for other, other_field in taken.items():
                if other == target or other.startswith(target + "/") or target.startswith(other + "/"):
                    where.fail(
                        field,
                        f"lands on {target!r}, as {other_field} does on {other!r}",
                        "give each file its own containerPath",
                    )
            taken[target] = field
    if reg.entry_script is not None:
        if not reg.code:
            entry_where.fail(
                "entryScript",
                f"names {reg.entry_script!r} but the registration delivers no code",
                "add code: with the script, or drop entryScript",
            )
        archives = any(spec.unpack != "none" for spec in reg.code)
        if not archives and reg.entry_script not in {spec.container_path for spec in reg.code}:
            entry_where.fail(
                "entryScript",
                f"{reg.entry_script!r} is not among the code files",
                "name the containerPath of one of the code files",
            )
