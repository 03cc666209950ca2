"""Where `inferplane demo` gets its real Kubernetes control plane: the e2e harness.

The harness (tests/e2e/controlplane.py, tests/e2e/tools/build.py) builds etcd's companions from
pinned Go modules and runs them on loopback. It lives under tests/ today, so the demo runs from a
source checkout and imports it from there; the honest fix is to move it into the product (e.g.
`inferplane/localcluster/`), after which this module shrinks to two imports.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from inferplane.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def require_checkout() -> Path:
    """The repository root, or UserError saying what is missing."""
    needed = [
        REPO / "tests" / "e2e" / "controlplane.py",
        REPO / "tests" / "e2e" / "tools" / "build.py",
        REPO / "examples" / "endpoint",
        REPO / "examples" / "catalog",
        REPO / "instance_types" / "crd.yaml",
    ]
    missing = [str(path.relative_to(REPO)) for path in needed if not path.exists()]
    if missing:
        raise UserError(
            f"inferplane demo runs from a source checkout (with pip install -e .); not found under {REPO}: "
            + ", ".join(missing)
        )
    return REPO


def modules() -> tuple[ModuleType, ModuleType]:
    """(controlplane, build) from the harness."""
    root = str(require_checkout())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return (
            importlib.import_module("tests.e2e.controlplane"),
            importlib.import_module("tests.e2e.tools.build"),
        )
    except ModuleNotFoundError as exc:
        raise UserError(
            f"the local control plane needs {exc.name!r}: pip install -e '.[test]' (it brings cryptography "
            "and the other harness dependencies)"
        ) from exc
