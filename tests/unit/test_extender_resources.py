"""A pod's effective requests as kube-scheduler counts them: init containers, native sidecars,
overhead (wire.md C.4), and which extended resources count as devices."""

from __future__ import annotations

from fractions import Fraction

from extender import fixtures as fx
from extender.config import MARKER_RESOURCE
from extender.parse import bound_pod_from, pod_from
from extender.resources import effective_requests, gpu_counts


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


def test_the_marker_resource_is_no_device():
    requests = {"nvidia.com/gpu": Fraction(1), MARKER_RESOURCE: Fraction(1), "amd.com/gpu": Fraction(0)}
    assert gpu_counts(requests, frozenset({MARKER_RESOURCE})) == (("nvidia.com/gpu", 1),)
    marked = fx.pod("p", node_name="n1")
    marked["spec"]["containers"][0]["resources"]["limits"][MARKER_RESOURCE] = "1"
    assert bound_pod_from(marked, frozenset({MARKER_RESOURCE})).gpus == ()
    assert pod_from(marked, frozenset({MARKER_RESOURCE})).demand.gpus == ()


def test_pod_demand_reads_init_containers_too():
    pod = fx.pod("p", gpus=1)
    pod["spec"]["initContainers"] = [container("warm-gpu", "1", gpus=3)]
    assert pod_from(pod).demand.gpus == (("nvidia.com/gpu", 3),)
    bound = fx.pod("b", node_name="n1")
    bound["spec"]["initContainers"] = [container("warm-gpu", "1", gpus=3)]
    assert bound_pod_from(bound).gpus == (("nvidia.com/gpu", 3),)
