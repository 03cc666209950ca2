"""Options every test folder shares. pytest reads `pytest_addoption` only from conftests it loads at
start, so options live here, at the root, rather than beside the tests that use them."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/cases/*.out.yaml from the current behaviour",
    )
