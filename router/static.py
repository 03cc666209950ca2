"""`--routes FILE`: the route table from YAML, for tests and the offline local stack (no cluster).

The per-deployment keys are the annotation names without the `ml.example/` prefix, so one vocabulary
serves both modes:

    endpoints:
      iris:
        auth: key                      # or none
        keys: {primary: k1, secondary: k2}
        deployments:                   # in creation order: the first is the default
          blue:
            traffic: 90
            backends: ["127.0.0.2:5001"]
          green:
            traffic: 10
            max-concurrent-requests-per-pod: 2
            backends: ["127.0.0.3:5001", "127.0.0.4:5001"]
      team-b/iris:                     # namespace/name: another endpoint of the same name
        deployments: {...}

An endpoint's namespace is `namespace/` in its key, else its `namespace:` field, else `default`, as
if its pods ran there: the same names and URLs as in cluster mode (see `router.table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inferplane.errors import UserError
from router.settings import DEFAULT_DEPLOYMENT, PREFIX, parse_auth, parse_settings
from router.table import Backend, Deployment, Endpoint, RouteTable, make_endpoint

_NOT_SETTINGS = {"backends"}


def _backend(raw: object, where: str) -> Backend:
    host, sep, port = str(raw).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"{where}: backend {raw!r} must be HOST:PORT")
    return Backend(pod=f"{host}:{port}", host=host.strip("[]"), port=int(port))


def _deployment(name: str, raw: Any, namespace: str, where: str) -> Deployment:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: must be a mapping of settings and 'backends'")
    if "namespace" in raw:
        raise UserError(f"{where}: 'namespace' belongs to the endpoint (its deployments share it)")
    values = {
        PREFIX + (k if k != "default" else DEFAULT_DEPLOYMENT.removeprefix(PREFIX)): v
        for k, v in raw.items()
        if k not in _NOT_SETTINGS
    }
    try:
        settings = parse_settings(values)
    except UserError as exc:
        raise UserError(f"{where}: {str(exc).removeprefix(PREFIX)}") from None
    backends = raw.get("backends") or []
    if not isinstance(backends, list):
        raise UserError(f"{where}: 'backends' must be a list of HOST:PORT")
    return Deployment(name, namespace, settings, tuple(_backend(b, where) for b in backends))


def _keys(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        return tuple(str(raw[k]) for k in ("primary", "secondary") if raw.get(k))
    if isinstance(raw, list):
        return tuple(str(k) for k in raw if k)
    raise UserError(f"{where}: 'keys' must be {{primary: ..., secondary: ...}} or a list")


def parse_routes(document: Any, source: str = "routes") -> RouteTable:
    if not isinstance(document, dict) or not isinstance(document.get("endpoints"), dict):
        raise UserError(f"{source}: expected a mapping with 'endpoints:'")
    endpoints: dict[str, Endpoint] = {}
    for key, raw in document["endpoints"].items():
        where = f"{source}: endpoint {key}"
        if not isinstance(raw, dict) or not isinstance(raw.get("deployments"), dict):
            raise UserError(f"{where}: expected a mapping with 'deployments:'")
        namespace, name = _qualified(str(key), raw.get("namespace"), where)
        deployments = [
            _deployment(str(d), v, namespace, f"{where}, deployment {d}")
            for d, v in raw["deployments"].items()
        ]
        try:
            auth = parse_auth(raw.get("auth"))
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        endpoint = make_endpoint(name, deployments, auth, _keys(raw.get("keys"), where), namespace)
        if endpoint.key in endpoints:
            raise UserError(f"{where}: endpoint {endpoint.key} is defined twice")
        endpoints[endpoint.key] = endpoint
    return RouteTable(endpoints)


def _qualified(key: str, field: object, where: str) -> tuple[str, str]:
    """(namespace, name) from a key `name` or `namespace/name` and an optional `namespace:` field."""
    namespace, slash, name = key.rpartition("/")
    if not slash:
        return str(field or "default"), name
    if not namespace or not name or "/" in namespace:
        raise UserError(f"{where}: write the key as NAME or NAMESPACE/NAME")
    if field is not None and str(field) != namespace:
        raise UserError(f"{where}: the key says namespace {namespace!r} but 'namespace' says {field!r}")
    return namespace, name


def load_routes(path: str | Path) -> RouteTable:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read routes file {path}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    return parse_routes(document, str(path))
