"""Golden cases: an AdmissionReview in, the answer, the patch and the patched object out.

Regenerate after an intended change with `pytest tests/golden --update-golden` (or
`UPDATE_GOLDEN=1 pytest`), then read the diff of the `.out.yaml` files before committing it.
"""

from __future__ import annotations

import contextlib
import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    # pytest reads this hook only from conftests it loads at start: here when tests/golden is named on
    # the command line. A root conftest may register the same option for a bare `pytest --update-golden`.
    with contextlib.suppress(ValueError):  # already registered by a root conftest
        parser.addoption(
            "--update-golden",
            action="store_true",
            default=False,
            help="rewrite tests/golden/cases/*.out.yaml from the current behaviour",
        )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    try:
        flag = bool(request.config.getoption("--update-golden"))
    except ValueError:  # this conftest was not an initial one, so the option was never added
        flag = False
    return flag or os.environ.get("UPDATE_GOLDEN") == "1"
