"""What the webhook knows: InstanceTypes and model registrations, read without touching the network.

The server feeds it from list+watch threads while request threads read it, so the state is an
immutable snapshot replaced whole under a lock by writers and read with a single attribute load by
readers: a request sees one consistent catalog, never half of an update (`view()` hands a request
that snapshot, to read it all from one). Each snapshot carries a memo for what requests derive
from it (the resolved models and instance type, the pieces injected for them): a new snapshot
starts with an empty memo, so nothing derived from an older catalog is ever served. `from_dir`
fills one from files for the offline CLI. Registrations are parsed lazily (most ConfigMaps are
never asked for) and the parse, or its error, is kept with the ConfigMap's resourceVersion.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inferplane.errors import Denied, UserError
from instance_types.default import DEFAULT_NAME, builtin_default
from instance_types.instance_type import KIND as INSTANCE_TYPE_KIND
from instance_types.instance_type import LIST_KIND as INSTANCE_TYPE_LIST_KIND
from instance_types.instance_type import InstanceType, InvalidInstanceType
from instance_types.resolve import resolve
from models.registration import InvalidRegistration, Registration, parse_registration, registration_id
from webhook.config import InjectionConfig
from webhook.inject.problems import quote
from webhook.manifests import Document, read_documents

CONFIGMAP_KIND = "ConfigMap"
LIST_KINDS = ("List", INSTANCE_TYPE_LIST_KIND)


class _Entry:
    """One registration ConfigMap and, once asked for, its parse result (kept per resourceVersion)."""

    __slots__ = ("_result", "model", "name", "namespace", "obj", "origin", "resource_version")

    def __init__(self, obj: Mapping[str, Any], model: tuple[str, str], origin: str) -> None:
        metadata = obj.get("metadata") or {}
        self.obj = obj
        self.model = model
        self.origin = origin
        self.name: str = metadata.get("name") or ""
        self.namespace: str = metadata.get("namespace") or ""
        self.resource_version: str | None = metadata.get("resourceVersion")
        self._result: Registration | InvalidRegistration | None = None

    def registration(self) -> Registration:
        # Two threads may parse at once; both get the same answer, so no lock is needed.
        if self._result is None:
            try:
                self._result = parse_registration(self.obj)
            except InvalidRegistration as exc:
                self._result = exc
        if isinstance(self._result, InvalidRegistration):
            raise self._result
        return self._result


# Entries a snapshot's memo holds before it starts over: far more than the distinct model and
# instance-type choices of a cluster, and a bound on what odd annotation spellings can make it keep.
MEMO_LIMIT = 1024


@dataclass(frozen=True)
class CatalogView:
    """One snapshot of the catalog, immutable: what a request reads all its lookups from."""

    default: InstanceType  # the built-in defaultinstancetype; a CR of that name overrides it
    instance_types: Mapping[str, InstanceType] = field(default_factory=dict)
    invalid_types: Mapping[str, str] = field(default_factory=dict)  # name -> why
    type_origins: Mapping[str, str] = field(default_factory=dict)
    configmaps: Mapping[tuple[str, str], _Entry] = field(default_factory=dict)  # (namespace, name)
    by_model: Mapping[tuple[str, str, str], tuple[_Entry, ...]] = field(default_factory=dict)
    # Not an init field, so `dataclasses.replace` gives every new snapshot an empty one.
    memo: dict[Hashable, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def remember(self, key: Hashable, value: Any) -> None:
        """Keep `value`, derived from this snapshot alone, under `key` (threads may race: both
        computed the same value)."""
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        self.memo[key] = value

    def instance_type(self, name: str | None) -> InstanceType:
        """The named InstanceType, or the default for None; raises Denied naming what exists."""
        wanted = name or DEFAULT_NAME
        if wanted in self.invalid_types:
            raise Denied(self.invalid_types[wanted])
        return resolve(name, self.instance_types, self.default)

    def registration(self, namespace: str, name: str, version: str) -> Registration:
        """Raises Denied naming the registrations that exist, or the ConfigMap and its parse error."""
        entries = self.by_model.get((namespace, name, version), ())
        model = f"{name}:{version}"
        if not entries:
            registered = ", ".join(self.registered(namespace)) or "none"
            raise Denied(
                f"model {quote(model)} not found in namespace {quote(namespace)}; registered: {registered}"
            )
        if len(entries) > 1:
            names = ", ".join(entry.name for entry in entries)
            raise Denied(
                f"model {quote(model)} in namespace {quote(namespace)} is registered by "
                f"{len(entries)} ConfigMaps ({names}); delete or relabel all but one"
            )
        try:
            return entries[0].registration()
        except InvalidRegistration as exc:
            raise Denied(f"registration of model {quote(model)} is invalid: {exc}") from exc

    def registered(self, namespace: str) -> list[str]:
        """`name:version` of every registration in `namespace`, sorted."""
        return sorted({f"{n}:{v}" for ns, n, v in self.by_model if ns == namespace})

    def instance_type_names(self) -> list[str]:
        return sorted({*self.instance_types, *self.invalid_types, DEFAULT_NAME})


def _index(configmaps: Mapping[tuple[str, str], _Entry]) -> dict[tuple[str, str, str], tuple[_Entry, ...]]:
    index: dict[tuple[str, str, str], list[_Entry]] = {}
    for (namespace, _), entry in sorted(configmaps.items()):
        index.setdefault((namespace, *entry.model), []).append(entry)
    return {key: tuple(entries) for key, entries in index.items()}


def _with_configmaps(snapshot: CatalogView, configmaps: dict[tuple[str, str], _Entry]) -> CatalogView:
    return replace(snapshot, configmaps=configmaps, by_model=_index(configmaps))


def _name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


@dataclass(frozen=True)
class CatalogProblem:
    """An invalid object the catalog holds, for `inferplane lint`."""

    origin: str  # "catalog/registrations.yaml document 8 (line 89)"
    message: str  # names the object itself


class Catalog:
    def __init__(self, default: InstanceType | None = None) -> None:
        """`default` is the built-in defaultinstancetype (from config); a CR of that name overrides it."""
        if default is None:
            config = InjectionConfig()
            default = builtin_default(config.default_cpu, config.default_memory)
        self.ready = False  # the server sets it once its caches have synced
        self._lock = threading.Lock()
        self._snapshot = CatalogView(default)

    @property
    def default(self) -> InstanceType:
        return self._snapshot.default

    def view(self) -> CatalogView:
        """The current snapshot: read every lookup of one request from it."""
        return self._snapshot

    # ---- writers (watch threads) -------------------------------------------------------------
    def put(self, obj: Mapping[str, Any], origin: str = "cluster") -> None:
        """Add or replace an InstanceType or a registration ConfigMap (other objects are ignored)."""
        with self._lock:
            self._snapshot = self._with(self._snapshot, obj, origin)

    def remove(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self._snapshot = self._without(self._snapshot, obj)

    def replace_all(self, kind: str, objs: list[Mapping[str, Any]]) -> None:
        """Replace every object of `kind` ("InstanceType" or "ConfigMap") at once (a relist)."""
        with self._lock:
            old = self._snapshot
            if kind == INSTANCE_TYPE_KIND:
                snapshot = replace(old, instance_types={}, invalid_types={}, type_origins={})
            elif kind == CONFIGMAP_KIND:
                snapshot = _with_configmaps(old, {})
            else:
                raise ValueError(f"replace_all takes {INSTANCE_TYPE_KIND} or {CONFIGMAP_KIND}, not {kind}")
            for obj in objs:
                snapshot = self._with(snapshot, obj, "cluster", old)
            self._snapshot = snapshot

    @staticmethod
    def _with(
        snapshot: CatalogView, obj: Mapping[str, Any], origin: str, previous: CatalogView | None = None
    ) -> CatalogView:
        kind = obj.get("kind")
        name = _name(obj)
        if kind == INSTANCE_TYPE_KIND:
            valid = dict(snapshot.instance_types)
            invalid = dict(snapshot.invalid_types)
            valid.pop(name, None)
            invalid.pop(name, None)
            try:
                valid[name] = InstanceType.from_object(obj)
            except InvalidInstanceType as exc:
                invalid[name] = str(exc)
            origins = {**snapshot.type_origins, name: origin}
            return replace(snapshot, instance_types=valid, invalid_types=invalid, type_origins=origins)
        if kind == CONFIGMAP_KIND:
            namespace = (obj.get("metadata") or {}).get("namespace") or ""
            key = (namespace, name)
            configmaps = dict(snapshot.configmaps)
            model = registration_id(obj)
            if model is None:
                if configmaps.pop(key, None) is None:
                    return snapshot  # not a registration, and never was
            else:
                before = (previous or snapshot).configmaps.get(key)
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if before is not None and version is not None and before.resource_version == version:
                    configmaps[key] = before  # unchanged: keep its parse
                else:
                    configmaps[key] = _Entry(obj, model, origin)
            return _with_configmaps(snapshot, configmaps)
        return snapshot

    @staticmethod
    def _without(snapshot: CatalogView, obj: Mapping[str, Any]) -> CatalogView:
        kind, name = obj.get("kind"), _name(obj)
        if kind == INSTANCE_TYPE_KIND:
            valid = {k: v for k, v in snapshot.instance_types.items() if k != name}
            invalid = {k: v for k, v in snapshot.invalid_types.items() if k != name}
            return replace(snapshot, instance_types=valid, invalid_types=invalid)
        if kind == CONFIGMAP_KIND:
            key = ((obj.get("metadata") or {}).get("namespace") or "", name)
            if key not in snapshot.configmaps:
                return snapshot
            return _with_configmaps(snapshot, {k: v for k, v in snapshot.configmaps.items() if k != key})
        return snapshot

    # ---- readers (request threads) -----------------------------------------------------------
    def instance_type(self, name: str | None) -> InstanceType:
        """The named InstanceType, or the default for None; raises Denied naming what exists."""
        return self._snapshot.instance_type(name)

    def registration(self, namespace: str, name: str, version: str) -> Registration:
        """Raises Denied naming the registrations that exist, or the ConfigMap and its parse error."""
        return self._snapshot.registration(namespace, name, version)

    def registered(self, namespace: str) -> list[str]:
        """`name:version` of every registration in `namespace`, sorted."""
        return self._snapshot.registered(namespace)

    def instance_type_names(self) -> list[str]:
        return self._snapshot.instance_type_names()

    def problems(self) -> list[CatalogProblem]:
        """Every invalid InstanceType, invalid registration and doubly registered model."""
        snapshot = self._snapshot
        found = [
            CatalogProblem(snapshot.type_origins.get(name, ""), message)
            for name, message in sorted(snapshot.invalid_types.items())
        ]
        for (namespace, name, version), entries in sorted(snapshot.by_model.items()):
            if len(entries) > 1:
                others = ", ".join(entry.name for entry in entries[:-1])
                found.append(
                    CatalogProblem(
                        entries[-1].origin,
                        f"ConfigMap {namespace}/{entries[-1].name} registers {name}:{version} again "
                        f"(also {others}); delete or relabel all but one",
                    )
                )
            for entry in entries:
                try:
                    entry.registration()
                except InvalidRegistration as exc:
                    found.append(CatalogProblem(entry.origin, str(exc)))
        return found

    # ---- files -----------------------------------------------------------------------------------
    @classmethod
    def from_dir(
        cls, path: str, *, default: InstanceType | None = None, namespace: str = "default"
    ) -> Catalog:
        """Every YAML file in `path`; raises UserError naming the file and document that is bad.

        ConfigMaps without a namespace belong to `namespace`, as `kubectl apply -n` would place them.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise UserError(
                f"catalog {path}: not a directory; pass the folder holding InstanceTypes and registrations"
            )
        catalog = cls(default)
        files = sorted(
            p for p in directory.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
        for document in (doc for file in files for doc in read_documents(str(file))):
            for obj, origin in catalog_objects(document, namespace):
                catalog.put(obj, origin)
        catalog.ready = True
        return catalog


def catalog_objects(document: Document, namespace: str) -> Iterable[tuple[Mapping[str, Any], str]]:
    """InstanceTypes and ConfigMaps of a document with where each came from, Lists unwrapped.

    A ConfigMap without a namespace gets `namespace`; a nameless object is an error.
    """
    obj = document.obj
    if obj.get("kind") in LIST_KINDS:
        items = obj.get("items") or []
        if not isinstance(items, list):
            raise UserError(f"{document.where}: items must be a list")
        for index, item in enumerate(items):
            where = f"{document.where}, items[{index}]"
            if not isinstance(item, dict):
                raise UserError(f"{where}: not a Kubernetes object (expected a map)")
            if obj["kind"] == INSTANCE_TYPE_LIST_KIND and "kind" not in item:
                item = {"apiVersion": obj.get("apiVersion"), "kind": INSTANCE_TYPE_KIND, **item}
            yield from catalog_objects(Document(item, where, document.line), namespace)
        return
    if obj.get("kind") in (INSTANCE_TYPE_KIND, CONFIGMAP_KIND):
        if not _name(obj):
            raise UserError(f"{document.where}: {obj['kind']} has no metadata.name; give it a name")
        if obj["kind"] == CONFIGMAP_KIND and not (obj.get("metadata") or {}).get("namespace"):
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        yield obj, document.where
