"""Fixtures for the e2e suite: one real control plane per test session.

Starting etcd + apiserver + controller-manager costs seconds, so the cluster
is shared by the whole session and tests isolate themselves with
``fresh_namespace``. When the binaries cannot be built the tests fail with the
build's message: a skipped e2e suite would report green while proving nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from .controlplane import ControlPlane
from .tools import build

_CONTROL_PLANE = pytest.StashKey[ControlPlane]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs against the real Kubernetes control plane built from Go modules"
    )


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, stopped at session end."""
    try:
        binaries = build.ensure_kubernetes()
    except build.BuildError as err:
        pytest.fail(f"cannot build the Kubernetes binaries for the e2e tests:\n{err}", pytrace=False)
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), binaries)
    request.config.stash[_CONTROL_PLANE] = cp
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        del request.config.stash[_CONTROL_PLANE]


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """The pinned helm, built from its Go module on first use."""
    try:
        return build.ensure_helm()
    except build.BuildError as err:
        pytest.fail(f"cannot build helm for the e2e tests:\n{err}", pytrace=False)


@pytest.fixture
def fresh_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A new namespace, ready for pods (its default ServiceAccount exists), deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(control_plane.api())
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # Pods are refused until the serviceaccount controller has created `default`.
    control_plane.wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        message=f"ServiceAccount default in {name}",
    )
    yield name
    core.delete_namespace(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of every component log to a failed test's report."""
    report = yield
    cp = item.config.stash.get(_CONTROL_PLANE, None)
    if cp is not None and report.failed:
        report.sections.append(("control plane logs (last lines)", cp.log_tails()))
    return report
