"""What several e2e modules share: the chart and the pinned helm, ServiceAccount kubeconfigs, and the
example registration and model pod they apply.

Kept here rather than imported from one test module into another: a test module then stays free to
rename, split or drop its own private helpers without breaking a neighbour, and no module loads
another's test data just to reach a function. The shared fixtures live in conftest.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from inferplane.localcluster.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferplane"


def helm(helm_binary: Path, cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm against ``cp`` from the repository root; fail the test with its output."""
    result = subprocess.run(
        [str(helm_binary), f"--kubeconfig={cp.kubeconfig}", *args],
        capture_output=True, text=True, timeout=180, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def token_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with one of the chart's ServiceAccounts: the RBAC under test."""
    token = cp.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    cluster = {"server": cp.server, "certificate-authority": str(cp.ca_file)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": account}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config))
    return path


def iris_registration(namespace: str) -> str:
    """The example iris:3 registration (examples/catalog), moved to `namespace`, as JSON."""
    docs = yaml.safe_load_all((REPO / "examples" / "catalog" / "registrations.yaml").read_text())
    (iris,) = [d for d in docs if d and d["metadata"]["labels"].get("ml.example/model-name") == "iris"]
    iris["metadata"]["namespace"] = namespace
    return json.dumps(iris)


def bare_pod(name: str, namespace: str, annotations: dict[str, str]) -> str:
    """A one-container Pod with `annotations` and nothing else, as JSON (what the webhook sees bare)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"containers": [{"name": "score", "image": "example.invalid/score:1"}]},
        }
    )
