"""Azure ML's `InitContainerConfig` JSON, read as is, mapped onto our files and code.

The shape (seen in a deployed Azure ConfigMap, seed 001):

    {"Models": {"iris:3": [{"Path": "ExperimentRun/.../outputs/model.pkl", "Content": null,
                            "ContainerPath": "./azureml-models/iris/3/model.pkl", "UnpackType": 0}]},
     "Dependency": [{"Path": "LocalUpload/.../main.py", "Content": null,
                     "ContainerPath": "/main.py", "UnpackType": 0}],
     "MountPath": "/var/azureml-app"}

`Models` is also accepted as a list of such single-key mappings, the form the seed prints.

The mapping, and why:
- `Path` is relative to the storage root (Azure's blob container) -> our `path`.
- `ContainerPath` is relative to `MountPath`, Azure's app root, even when it starts with `/`
  (`/main.py` lands in the app root). A leading `./` or `/`, or the `MountPath` itself, is stripped.
  A model's ContainerPath must then lie under `azureml-models/<name>/<version>/`, exactly where we lay
  a model out; the rest of it is our `containerPath`. A dependency's path is relative to the app root,
  our code `containerPath`.
- `MountPath` must be absolute; our app root is the operator's setting (default `/var/azureml-app`,
  Azure's value too), so it is used only to read ContainerPaths.
- `UnpackType`: Azure does not publish the enum. Every public sample shows 0 on a plain file, and
  Azure's SDK uploads a deployment's dependencies as a tar flagged `unpack: true`, so we read
  0 = none, 1 = tar (any compression), and 2 = zip as our own extension. A top-level `UnpackType` is
  the default for entries without one.
- `Content` (inline bytes) must be null: put the file in the storage source instead.
- The registration is one model: `Models` must hold exactly the model the ConfigMap's labels name.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from inferplane.wording import describe
from models import fields
from models.fields import Where
from models.values import MODELS_DIR, FileSpec

UNPACK_TYPES = {0: "none", 1: "tar", 2: "zip"}
DEFAULT_MOUNT_PATH = "/var/azureml-app"
_ENTRY_KEYS = ("Path", "Content", "ContainerPath", "UnpackType")
_EXAMPLE = '{"Models": {"iris:3": [{"Path": "outputs/model.pkl", "ContainerPath": "./azureml-models/iris/3/model.pkl", "UnpackType": 0}]}, "MountPath": "/var/azureml-app"}'  # noqa: E501


def _unpack_type(value: Any, where: Where, field: str) -> str:
    if isinstance(value, bool) or value not in UNPACK_TYPES:
        shown = repr(value) if isinstance(value, int | str) else describe(value)
        where.fail(field, f"UnpackType {shown} is not known", "use 0 (plain file), 1 (tar) or 2 (zip)")
    return UNPACK_TYPES[value]


def _app_relative(container_path: str, mount_path: str) -> str:
    """A ContainerPath made relative to the app root (Azure's MountPath)."""
    if container_path == mount_path or container_path.startswith(mount_path.rstrip("/") + "/"):
        container_path = container_path[len(mount_path) :]
    return posixpath.normpath(container_path.lstrip("/") or ".")


def _entry(
    value: Any, where: Where, field: str, *, mount_path: str, default_unpack: str
) -> tuple[str, str, str]:
    """(source path, app-relative container path, unpack) of one Azure file entry."""
    entry = fields.mapping(
        value, where, field, allowed=_ENTRY_KEYS, required=("Path", "ContainerPath"), example=_EXAMPLE
    )
    if entry.get("Content") is not None:
        where.fail(
            f"{field}.Content",
            "inline Content is not supported",
            "put the file in the storage source, name it in Path and set Content to null",
        )
    path = fields.relative_path(
        entry["Path"], where, f"{field}.Path", allow_dot=False, example="outputs/model.pkl"
    )
    raw = fields.string(entry["ContainerPath"], where, f"{field}.ContainerPath", example="/main.py")
    if ".." in raw.split("/"):
        where.fail(f"{field}.ContainerPath", f"{raw!r} contains '..'", "remove '..'")
    unpack = default_unpack
    if "UnpackType" in entry:
        unpack = _unpack_type(entry["UnpackType"], where, f"{field}.UnpackType")
    return path, _app_relative(raw, mount_path), unpack


def _model_entries(models: Any, where: Where, model: str) -> tuple[str, Any]:
    """The field name and entry list of the one model in `Models` (a mapping or a list of them)."""
    if isinstance(models, list):
        merged: dict[str, Any] = {}
        for index, item in enumerate(models):
            if not isinstance(item, Mapping):
                where.fail(f"Models[{index}]", f"expected a mapping, got {describe(item)}", _EXAMPLE)
            merged.update({k: (f"Models[{index}].{k}", v) for k, v in item.items()})
    elif isinstance(models, Mapping):
        merged = {k: (f"Models.{k}", v) for k, v in models.items()}
    else:
        where.fail("Models", f"expected a mapping, got {describe(models)}", f"write e.g. {_EXAMPLE}")
    if set(merged) != {model}:
        found = ", ".join(str(k) for k in merged) or "none"
        where.fail(
            "Models",
            f"holds {found}, but the ConfigMap's labels name {model}",
            f"keep only {model!r} under Models (register one ConfigMap per model)",
        )
    return merged[model]


def files_from_azure(
    config: Any, where: Where, *, name: str, version: str
) -> tuple[tuple[FileSpec, ...], tuple[FileSpec, ...]]:
    """(model files, code files) of an InitContainerConfig document."""
    top = fields.mapping(
        config,
        where,
        "",
        allowed=("Models", "Dependency", "MountPath", "UnpackType"),
        required=("Models",),
        example=_EXAMPLE,
    )
    mount_path = DEFAULT_MOUNT_PATH
    if top.get("MountPath") is not None:
        mount_path = fields.string(top["MountPath"], where, "MountPath", example=DEFAULT_MOUNT_PATH)
        if not mount_path.startswith("/"):
            where.fail("MountPath", f"{mount_path!r} is not absolute", f"write e.g. {DEFAULT_MOUNT_PATH}")
    default_unpack = "none"
    if "UnpackType" in top:
        default_unpack = _unpack_type(top["UnpackType"], where, "UnpackType")

    field, entries = _model_entries(top["Models"], where, f"{name}:{version}")
    if not isinstance(entries, list) or not entries:
        where.fail(field, "expected a non-empty list of files", f"write e.g. {_EXAMPLE}")
    model_dir = f"{MODELS_DIR}/{name}/{version}"
    files = []
    for index, value in enumerate(entries):
        at = f"{field}[{index}]"
        path, target, unpack = _entry(value, where, at, mount_path=mount_path, default_unpack=default_unpack)
        if target != model_dir and not target.startswith(model_dir + "/"):
            where.fail(
                f"{at}.ContainerPath",
                f"{target!r} lies outside ./{model_dir}/, where model {name}:{version}'s files go",
                f"write e.g. ./{model_dir}/{posixpath.basename(path)}",
            )
        files.append(FileSpec(path, posixpath.relpath(target, model_dir), unpack))

    dependencies = top.get("Dependency") or []
    if not isinstance(dependencies, list):
        where.fail("Dependency", f"expected a list, got {describe(dependencies)}", "write [] or a list")
    code = []
    for index, value in enumerate(dependencies):
        path, target, unpack = _entry(
            value, where, f"Dependency[{index}]", mount_path=mount_path, default_unpack=default_unpack
        )
        code.append(FileSpec(path, target, unpack))
    return tuple(files), tuple(code)
