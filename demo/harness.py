"""What `inferplane demo` runs from: the example files of a source checkout, and this very inferplane.

The control plane itself is product code (`inferplane.localcluster`) and ships in the wheel; the
example endpoint, catalog and model sources it applies live in the repository's examples/, which a
wheel does not carry, so the demo still needs a checkout and says so when it has none.
"""

from __future__ import annotations

from pathlib import Path

from inferplane.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def require_checkout() -> Path:
    """The repository root, or UserError saying what is missing."""
    needed = [
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
