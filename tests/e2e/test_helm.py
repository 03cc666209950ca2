"""The pinned helm works against the loopback apiserver.

The chart is rendered by the real helm and its output applied to the real
apiserver; this checks that pairing on helm's own starter chart before our
chart relies on it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from inferplane.localcluster import build
from inferplane.localcluster.controlplane import ControlPlane

pytestmark = pytest.mark.e2e


def _helm(helm: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(helm), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_helm_reports_the_pinned_version(helm_binary: Path, tmp_path: Path) -> None:
    out = _helm(helm_binary, "version", "--template", "{{ .Version }}", cwd=tmp_path)
    assert out.strip() == build.HELM.version()


def test_rendered_chart_passes_server_side_dry_run(
    helm_binary: Path, control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path
) -> None:
    _helm(helm_binary, "create", "starter", cwd=tmp_path)
    _helm(helm_binary, "lint", "starter", cwd=tmp_path)
    rendered = _helm(
        helm_binary, "template", "smoke", "starter", "--namespace", fresh_namespace, cwd=tmp_path
    )
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", fresh_namespace, "-o", "json", "-f", "-", input=rendered
    )
    kinds = sorted(item["kind"] for item in json.loads(result.stdout)["items"])
    assert {"Deployment", "Service", "ServiceAccount"} <= set(kinds)
