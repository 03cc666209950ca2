"""Fixtures for the e2e suite: one real control plane per test session.

Starting etcd + apiserver + controller-manager costs seconds, so the cluster
is shared by the whole session and tests isolate themselves with
``fresh_namespace``. When the binaries cannot be built the tests fail with the
build's message: a skipped e2e suite would report green while proving nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client as k8s

from inferplane.localcluster import build
from inferplane.localcluster.controlplane import ControlPlane
from instance_types.crd import CRD_PATH, load_crd

T = TypeVar("T")
_CONTROL_PLANE = pytest.StashKey[ControlPlane]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs against the real Kubernetes control plane built from Go modules"
    )


def _built(request: pytest.FixtureRequest, ensure: Callable[[], T], what: str) -> T:
    """Run a build step with output capture off, so a first build shows its progress."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    error = None
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        try:
            return ensure()
        except build.BuildError as err:
            error = err
    pytest.fail(f"cannot build {what} for the e2e tests:\n{error}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, stopped at session end."""
    binaries = _built(request, build.ensure_kubernetes, "the Kubernetes binaries")
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), binaries)
    request.config.stash[_CONTROL_PLANE] = cp
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        del request.config.stash[_CONTROL_PLANE]


@pytest.fixture(scope="session")
def helm_binary(request: pytest.FixtureRequest) -> Path:
    """The pinned helm, built from its Go module on first use."""
    return _built(request, build.ensure_helm, "helm")


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


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The InstanceType CRD applied and Established; removed afterwards unless it was there before
    (the chart's)."""
    name = load_crd()["metadata"]["name"]
    existed = control_plane.kubectl("get", "crd", name, check=False).returncode == 0
    control_plane.kubectl("apply", "-f", str(CRD_PATH))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    # Discovery lags Established by a moment; kubectl needs it to map the kind.
    control_plane.wait_for(
        lambda: control_plane.kubectl("get", "instancetypes", check=False).returncode == 0 or None,
        timeout=30,
        message="instancetypes in discovery",
    )
    yield control_plane
    if not existed:
        control_plane.kubectl("delete", "crd", name, "--wait=false")


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
