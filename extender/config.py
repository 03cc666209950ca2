"""Placement settings an operator chooses (chart values / `inferplane extender` flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CpuOnGpu = Literal["allow", "refuse"]


@dataclass(frozen=True)
class Settings:
    # A CPU-only pod when no CPU node can take it: place it on a GPU node, or keep it pending.
    cpu_pods_on_gpu_nodes: CpuOnGpu = "allow"
