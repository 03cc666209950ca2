"""A pod's effective requests as kube-scheduler counts them: init containers, native sidecars,
overhead (wire.md C.4), and which extended resources are accelerators (GPU pods, GPU nodes)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from extender import fixtures as fx
from extender.config import DEFAULT_ACCELERATORS, MARKER_RESOURCE
from extender.parse import bound_pod_from, node_from, pod_from
from extender.resources import DEFAULT, Accelerators, effective_requests, gpu_counts
from inferplane.errors import UserError


def container(name: str, cpu: str, gpus: int = 0, sidecar: bool = False, limits_only: bool = False) -> dict:
    amounts = {"cpu": cpu, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    resources = {"limits": amounts} if limits_only else {"requests": dict(amounts), "limits": amounts}
    out = {"name": name, "image": "x", "resources": resources}
    if sidecar:
        out["restartPolicy"] = "Always"
    return out


SPEC = {
    "initContainers": [
        container("fetch", "2"),
        container("proxy", "300m", sidecar=True),
        container("warm-gpu", "1500m", gpus=2),
    ],
    "containers": [container("score", "1", gpus=1), container("log", "500m")],
    "overhead": {"cpu": "100m"},
}


def test_the_busiest_init_step_or_the_steady_state_plus_overhead():
    requests = effective_requests(SPEC)
    # steady: 1 + 0.5 + sidecar 0.3 = 1.8; init steps: 2, 0.3, 0.3 + 1.5 = 1.8 -> 2; + 0.1 overhead
    assert requests["cpu"] == Fraction(21, 10)
    # the GPU warm-up init container needs 2 while the app needs 1
    assert requests["nvidia.com/gpu"] == 2


def test_a_sidecar_started_before_an_init_container_runs_beside_it():
    spec = {
        "initContainers": [container("proxy", "1", sidecar=True), container("migrate", "2")],
        "containers": [container("app", "500m")],
    }
    assert effective_requests(spec)["cpu"] == 3  # proxy keeps running while migrate runs


def test_a_limit_stands_in_for_a_missing_request():
    spec = {"containers": [container("app", "1", gpus=1, limits_only=True)]}
    assert effective_requests(spec) == {"cpu": 1, "nvidia.com/gpu": 1}


@pytest.mark.parametrize(
    "name",
    ["nvidia.com/gpu", "nvidia.com/gpu.shared", "nvidia.com/mig-1g.5gb", "amd.com/gpu", "gpu.intel.com/i915",
     "gpu.intel.com/xe", "habana.ai/gaudi", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore"],
)  # fmt: skip
def test_the_default_accelerators(name):
    assert name in DEFAULT


@pytest.mark.parametrize(
    "name",
    ["rdma/hca", "smarter-devices/fuse", "example.com/fpga", "nvidia.com/gpux",
     "cpu", "memory", "hugepages-2Mi", MARKER_RESOURCE],
)  # fmt: skip
def test_other_extended_resources_are_no_accelerators(name):
    assert name not in DEFAULT


def test_more_accelerators_by_name_or_prefix_and_markers_never():
    accelerators = Accelerators(
        [*DEFAULT_ACCELERATORS, "xilinx.com/fpga-*", "example.com/tpu", "ml.example/*"],
        markers=[MARKER_RESOURCE],
    )
    assert "xilinx.com/fpga-u200" in accelerators and "example.com/tpu" in accelerators
    assert "example.com/tpu-v4" not in accelerators  # a name without * is matched exactly
    assert "ml.example/other" in accelerators and MARKER_RESOURCE not in accelerators
    requests = {
        "nvidia.com/gpu": Fraction(1),
        MARKER_RESOURCE: Fraction(1),
        "xilinx.com/fpga-u200": Fraction(0),
    }
    assert gpu_counts(requests, accelerators) == (("nvidia.com/gpu", 1),)


@pytest.mark.parametrize(
    "pattern",
    ["*", "gpu", "nvidia.com/*gpu", "example.com/fpga**", "kubernetes.io/gpu", "example.com/", "/gpu*"],
)
def test_a_pattern_that_can_match_no_extended_resource_is_refused(pattern):
    with pytest.raises(UserError, match=r"--accelerator-resource .*: give an extended resource name"):
        Accelerators([pattern])


def test_a_pod_asking_for_other_extended_resources_only_is_a_cpu_pod():
    pod = fx.pod("p", node_name="n1")
    pod["spec"]["containers"][0]["resources"]["limits"].update({"rdma/hca": "1", MARKER_RESOURCE: "1"})
    assert bound_pod_from(pod).gpus == ()
    assert pod_from(pod).demand.gpus == ()
    pod["spec"]["containers"][0]["resources"]["limits"]["amd.com/gpu"] = "2"
    assert bound_pod_from(pod).gpus == (("amd.com/gpu", 2),)
    assert pod_from(pod).demand.gpus == (("amd.com/gpu", 2),)


def test_a_node_offering_other_extended_resources_only_is_no_gpu_node():
    rdma = fx.node("rdma-1", gpus=8, gpu_resource="rdma/hca")
    assert node_from(rdma).shape.is_gpu is False and node_from(rdma).shape.gpus == ()
    fpga = fx.node("fpga-1", gpus=2, gpu_resource="xilinx.com/fpga-u200")
    assert node_from(fpga).shape.is_gpu is False
    assert node_from(fpga, Accelerators([*DEFAULT_ACCELERATORS, "xilinx.com/fpga-*"])).shape.gpus == (
        ("xilinx.com/fpga-u200", 2),
    )


def test_pod_demand_reads_init_containers_too():
    pod = fx.pod("p", gpus=1)
    pod["spec"]["initContainers"] = [container("warm-gpu", "1", gpus=3)]
    assert pod_from(pod).demand.gpus == (("nvidia.com/gpu", 3),)
    bound = fx.pod("b", node_name="n1")
    bound["spec"]["initContainers"] = [container("warm-gpu", "1", gpus=3)]
    assert bound_pod_from(bound).gpus == (("nvidia.com/gpu", 3),)
