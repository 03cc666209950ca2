"""The InstanceType CRD, read from crd.yaml: the one copy the chart, the tests and tools share."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CRD_PATH = Path(__file__).with_name("crd.yaml")


@cache
def _parsed() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def load_crd() -> dict[str, Any]:
    """A fresh copy each call, so no caller can change what the next one reads."""
    return copy.deepcopy(_parsed())
