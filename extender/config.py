"""Placement settings an operator chooses (chart values / `inferplane extender` flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CpuOnGpu = Literal["allow", "refuse"]

# The extended resource the webhook adds to model pods so a configured default scheduler calls the
# extender for them only (managedResources). It is no device: never counted as a GPU.
MARKER_RESOURCE = "ml.example/placement"

# Extended resources that are accelerators unless the operator adds more (--accelerator-resource):
# exact names, and prefixes written with a trailing `*`. A node offering one is a GPU node.
DEFAULT_ACCELERATORS = (
    "nvidia.com/gpu",
    "nvidia.com/gpu.shared",  # time-slicing or MPS with renameByDefault
    "nvidia.com/mig-*",  # MIG slices, e.g. nvidia.com/mig-1g.5gb
    "amd.com/gpu",
    "gpu.intel.com/*",  # i915, xe
    "habana.ai/gaudi",
    "aws.amazon.com/neuron*",  # neuron, neuroncore, neurondevice
)


@dataclass(frozen=True)
class Settings:
    # A CPU-only pod when no CPU node can take it: place it on a GPU node, or keep it pending.
    cpu_pods_on_gpu_nodes: CpuOnGpu = "allow"
