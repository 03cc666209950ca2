"""The values a registration is made of, shared by the parser, model-init and `model register`.

They live apart from the parser so the storage and Azure modules can build them without importing
the parser back; `models.registration` re-exports every name here, which is where callers take
them from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferplane.errors import UserError

NAME_LABEL = "ml.example/model-name"
VERSION_LABEL = "ml.example/model-version"
MANIFEST_KEY = "model.yaml"
AZURE_CONFIG_KEY = "InitContainerConfig"
AZURE_STORAGE_KEY = "storage.yaml"
STORAGE_KINDS = ("pvc", "csi", "flexVolume", "nfs", "hostPath", "image")
UNPACK_KINDS = ("none", "tar", "zip")

# Where model-init puts things under the app root. A code file may not land in either.
MODELS_DIR = "azureml-models"
STATE_DIR = ".inferplane"


class InvalidRegistration(UserError):
    """A registration that does not parse; the message names the ConfigMap and the problem."""


@dataclass(frozen=True)
class StorageSource:
    kind: str  # one of STORAGE_KINDS
    spec: Mapping[str, Any]  # the block under that key, as written (validated; treat as read-only)


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative path in the storage source
    container_path: str  # relative path under the model's (or for code, the app root's) directory
    unpack: str = "none"  # one of UNPACK_KINDS
    sha256: str | None = None


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    configmap: str  # the ConfigMap's name ("" when read from a directory without one)
    namespace: str
    storage: StorageSource
    files: tuple[FileSpec, ...]
    code: tuple[FileSpec, ...] = ()
    entry_script: str | None = None

    @property
    def model(self) -> str:
        """`name:version`, as the annotation and every message spell a model."""
        return f"{self.name}:{self.version}"
