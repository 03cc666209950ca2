"""What one injection step reports back besides its edits."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

_NONE: Mapping[str, tuple[str, ...]] = MappingProxyType({})


class Done(NamedTuple):
    """A tuple, not a frozen dataclass: seven are made per review, each ~40 % cheaper to make."""

    warnings: tuple[str, ...] = ()
    # Status field -> the names this step now owns (see webhook.inject.status.Status).
    owned: Mapping[str, tuple[str, ...]] = _NONE
