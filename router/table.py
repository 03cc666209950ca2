"""The route table: endpoints → deployments → pods, and the pure routing decisions made on it.

A table is an immutable value rebuilt whenever discovery (or a routes file) changes; the server swaps
one reference, so a request sees one consistent table from start to end and no locks are needed. The
split is precomputed into cumulative thresholds, so choosing a deployment is one pass over at most a
few entries with a random number the caller supplies (which keeps the choice testable).

An endpoint belongs to one namespace, as an Azure endpoint belongs to one workspace: the pods of
namespace `a` labelled `iris` and those of namespace `b` labelled `iris` are two endpoints, each
with its own split and keys. A request that names only `iris` reaches it while one namespace
defines it; once two do, `find` reports both and the caller must name the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from router.settings import AUTH_KEY, DeploymentSettings


@dataclass(frozen=True)
class Backend:
    """One ready pod: where its scoring server listens."""

    pod: str
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @cached_property
    def host_header(self) -> bytes:
        """The `Host` a request to this pod carries (built once, not per request)."""
        return b"%s:%d" % (self.host.encode(), self.port)


@dataclass(frozen=True)
class Deployment:
    name: str
    namespace: str
    settings: DeploymentSettings
    backends: tuple[Backend, ...] = ()
    endpoint: str = ""  # set by `make_endpoint`

    @cached_property
    def key(self) -> str:
        """Unique across the table; names the deployment's pool of pod slots (looked up per request)."""
        return f"{self.endpoint}/{self.namespace}/{self.name}"

    @cached_property
    def name_header(self) -> bytes:
        """The deployment's name as the `azureml-model-deployment` answer header carries it."""
        return self.name.encode()

    @cached_property
    def scoring_target(self) -> bytes:
        return self.settings.scoring_path.encode()


@dataclass(frozen=True)
class Endpoint:
    name: str
    deployments: tuple[Deployment, ...]
    auth: str = AUTH_KEY
    keys: tuple[str, ...] = ()
    namespace: str = "default"
    # Derived by `make_endpoint`: cumulative live split over [0, 100), mirror draws, the default.
    default: str = ""
    split: tuple[tuple[float, str], ...] = ()
    mirrors: tuple[tuple[float, str], ...] = ()
    problems: tuple[str, ...] = ()
    by_name: Mapping[str, Deployment] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        """`namespace/name`: unique across the table."""
        return f"{self.namespace}/{self.name}"

    @cached_property
    def key_bytes(self) -> tuple[bytes, ...]:
        """The keys as a request's header carries them, encoded once."""
        return tuple(k.encode() for k in self.keys)


@dataclass(frozen=True)
class RouteTable:
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)  # by `namespace/name`

    @classmethod
    def of(cls, endpoints: Iterable[Endpoint]) -> RouteTable:
        return cls({e.key: e for e in endpoints})

    def deployments(self) -> Iterable[Deployment]:
        for endpoint in self.endpoints.values():
            yield from endpoint.deployments

    @cached_property
    def named(self) -> Mapping[str, tuple[tuple[Endpoint, ...], tuple[str, ...]]]:
        """Endpoints by name alone, in namespace order (usually one each), with their namespaces."""
        index: dict[str, list[Endpoint]] = {}
        for endpoint in sorted(self.endpoints.values(), key=lambda e: e.namespace):
            index.setdefault(endpoint.name, []).append(endpoint)
        return {name: (tuple(found), tuple(e.namespace for e in found)) for name, found in index.items()}

    def find(self, name: str, namespace: str | None = None) -> tuple[Endpoint | None, tuple[str, ...]]:
        """The endpoint a request names, and every namespace that defines an endpoint of that name.

        Without a namespace the name must be unique: (None, (a, b)) means it is ambiguous,
        (None, ()) that no namespace defines it. With one, (None, (...)) means not there.
        """
        found, namespaces = self.named.get(name, ((), ()))
        if namespace is None:
            return (found[0] if len(found) == 1 else None), namespaces
        return next((e for e in found if e.namespace == namespace), None), namespaces


def make_endpoint(
    name: str,
    deployments: Iterable[Deployment],
    auth: str = AUTH_KEY,
    keys: Iterable[str] = (),
    namespace: str = "default",
) -> Endpoint:
    """Build an endpoint and its split from deployments given in creation order (all in `namespace`).

    The rule is azureml-fe's (v1 controlled rollout): each deployment gets its `traffic` percent and
    whatever is left of 100 goes to the default deployment, which is the one marked default or else
    the first. A total over 100 cannot be honoured as written, so it is scaled down proportionally and
    reported as a problem rather than refused: refusing would take the whole endpoint down.
    """
    ordered = tuple(replace(d, endpoint=name, namespace=namespace) for d in deployments)
    problems: list[str] = []
    if not ordered:
        return Endpoint(name, (), auth, tuple(keys), namespace, problems=("no deployments",))
    marked = [d.name for d in ordered if d.settings.is_default]
    default = marked[0] if marked else ordered[0].name
    if len(marked) > 1:
        problems.append(f"several deployments are marked default ({', '.join(marked)}); using {default}")
    total = sum(d.settings.traffic for d in ordered)
    weights = {d.name: float(d.settings.traffic) for d in ordered}
    if total > 100:
        problems.append(f"traffic adds up to {total}%, over 100%; scaled down proportionally")
        weights = {n: w * 100.0 / total for n, w in weights.items()}
    else:
        weights[default] += 100 - total
    split: list[tuple[float, str]] = []
    upto = 0.0
    for d in ordered:
        if weights[d.name] > 0:
            upto += weights[d.name]
            split.append((upto, d.name))
    mirrors = tuple((float(d.settings.mirror), d.name) for d in ordered if d.settings.mirror > 0)
    return Endpoint(
        name=name,
        deployments=ordered,
        auth=auth,
        keys=tuple(k for k in keys if k),
        namespace=namespace,
        default=default,
        split=tuple(split),
        mirrors=mirrors,
        problems=tuple(problems),
        by_name={d.name: d for d in ordered},
    )


def choose(endpoint: Endpoint, draw: float) -> Deployment:
    """The deployment for a live request; `draw` is uniform on [0, 100)."""
    for upto, name in endpoint.split:
        if draw < upto:
            return endpoint.by_name[name]
    return endpoint.by_name[endpoint.split[-1][1] if endpoint.split else endpoint.default]


def mirror_targets(endpoint: Endpoint, live: str, draws: Iterable[float]) -> list[Deployment]:
    """Deployments that get a copy of this request: each mirror draws on its own percent.

    A deployment never gets a mirror copy of a request it is already answering (as in Azure, a
    deployment takes live or mirrored traffic for a request, not both).
    """
    return [
        endpoint.by_name[name]
        for (percent, name), draw in zip(endpoint.mirrors, draws, strict=False)
        if draw < percent and name != live
    ]
