"""What one injection step reports back besides its edits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Done:
    warnings: tuple[str, ...] = ()
    # Status field -> the names this step now owns (see webhook.inject.status.Status).
    owned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
