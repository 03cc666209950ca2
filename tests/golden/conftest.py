"""Golden cases: an AdmissionReview in, the answer, the patch and the patched object out.

Regenerate after an intended change with `pytest --update-golden` (or `UPDATE_GOLDEN=1 pytest`),
then read the diff of the `.out.yaml` files before committing it.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden")) or os.environ.get("UPDATE_GOLDEN") == "1"
