"""`inferplane extender` as kube-scheduler meets it: a real process under gunicorn on loopback,
watching a stand-in apiserver (tests/fake_apiserver.py) for nodes and pods, answering the
scheduler's CapitalCase JSON."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import ServerProcess, free_port
from fake_apiserver import FakeApiserver
from prometheus_client.parser import text_string_to_metric_families

from extender import fixtures as fx

NODES, PODS = "/api/v1/nodes", "/api/v1/pods"


class Bindings:
    """Answers the binder's POSTs as the apiserver's binding subresource does: 201 for a Binding,
    409 for a pod that was replaced (uid "stale-uid"), 404 for anything else; keeps what it bound."""

    def __init__(self) -> None:
        self.bound: list[dict[str, Any]] = []

    def __call__(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if method != "POST" or not path.endswith("/binding") or (body or {}).get("kind") != "Binding":
            return 404, {"kind": "Status", "code": 404, "message": "not found"}
        name = body["metadata"]["name"]
        if body["metadata"].get("uid") == "stale-uid":
            return 409, {"kind": "Status", "code": 409, "message": f"pod {name} was replaced"}
        self.bound.append(body)
        return 201, {"kind": "Status", "status": "Success", "code": 201}


def kubeconfig(directory: Path, server: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{server}"}}}}]
users: [{{name: nobody, user: {{}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: nobody}}}}]
current-context: fake
"""
    )
    return path


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    with FakeApiserver(watch_timeout=5.0) as fake:
        fake.write_handler = Bindings()
        fake.apply(NODES, fx.node("cpu-1"))
        fake.apply(NODES, fx.node("gpu-1", gpus=4))
        fake.apply(PODS, fx.pod("busy", gpus=3, node_name="gpu-1", instance_type="gpu-large"))
        yield fake


@pytest.fixture
def extender(
    apiserver: FakeApiserver, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> ServerProcess:
    config = kubeconfig(tmp_path, apiserver.url)
    return start_server(
        ["extender", "--kubeconfig", str(config)], tls=None, ready_path="/readyz", expect_status=200
    )


def args(pod: dict[str, Any], names: list[str]) -> bytes:
    """ExtenderArgs exactly as kube-scheduler marshals them with nodeCacheCapable: true."""
    return orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})


def call(server: ServerProcess, verb: str, body: bytes) -> Any:
    response = server.session.post(server.url(f"/{verb}?timeout=5s"), data=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_filter_answers_with_capitalcase_keys_and_a_reason_per_refused_node(extender):
    pod = fx.pod("score-0", gpus=2, instance_type="gpu-medium", scheduler_name="inferplane-scheduler")
    result = call(extender, "filter", args(pod, ["cpu-1", "gpu-1"]))
    assert result == {
        "Nodes": None,
        "NodeNames": [],
        "FailedNodes": {"gpu-1": "gpu-1: 1 of 4 nvidia.com/gpu free; instance type gpu-medium needs 2"},
        "FailedAndUnresolvableNodes": {"cpu-1": "cpu-1: no nvidia.com/gpu on this node"},
        "Error": "",
    }
    line = extender.wait_for_log(lambda line: line.get("message") == "no node fits")
    assert line["pod"] == "default/score-0" and line["refused_by"] == {"gpu-kind": 1, "gpus-free": 1}


def test_watch_events_change_the_answer_without_a_restart(extender, apiserver):
    pod = fx.pod("score-1", gpus=2)
    busy = apiserver.objects[PODS]["busy"]
    apiserver.delete(PODS, busy)
    deadline = time.monotonic() + 10
    while call(extender, "filter", args(pod, ["gpu-1"]))["NodeNames"] != ["gpu-1"]:
        assert time.monotonic() < deadline, "the extender never saw the pod go"
        time.sleep(0.05)
    apiserver.apply(NODES, fx.node("gpu-2", gpus=8))
    while "gpu-2" not in call(extender, "filter", args(pod, ["gpu-1", "gpu-2"]))["NodeNames"]:
        assert time.monotonic() < deadline, "the extender never saw the new node"
        time.sleep(0.05)
    assert apiserver.field_selectors[0] == "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


def test_bind_posts_the_binding_and_counts_the_pod_before_any_watch_event(extender, apiserver):
    first = fx.pod("score-3", namespace="team-a", gpus=1, uid="uid-3")
    assert call(extender, "filter", args(first, ["gpu-1"]))["NodeNames"] == ["gpu-1"]
    bind = {"PodName": "score-3", "PodNamespace": "team-a", "PodUID": "uid-3", "Node": "gpu-1"}
    assert call(extender, "bind", orjson.dumps(bind)) == {"Error": ""}
    assert apiserver.write_handler.bound == [
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "score-3", "namespace": "team-a", "uid": "uid-3"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "gpu-1"},
        }
    ]
    # the fake apiserver sends no watch event for it: the extender counted it when it bound it
    second = call(extender, "filter", args(fx.pod("score-4", gpus=1), ["gpu-1"]))
    assert second["FailedNodes"] == {"gpu-1": "gpu-1: 0 of 4 nvidia.com/gpu free; the pod needs 1"}
    refused = call(extender, "bind", orjson.dumps({**bind, "PodUID": "stale-uid"}))
    assert refused["Error"] == "binding team-a/score-3 to gpu-1: HTTP 409: pod score-3 was replaced"


def test_preempt_keeps_only_nodes_where_evicting_the_victims_makes_room(extender, apiserver):
    busy_uid = apiserver.objects[PODS]["busy"]["metadata"]["uid"]
    body = {
        "Pod": fx.pod("urgent", gpus=4),
        "NodeNameToVictims": None,
        "NodeNameToMetaVictims": {
            "gpu-1": {"Pods": [{"UID": busy_uid}], "NumPDBViolations": 0},  # frees 3: 4 of 4 then
            "cpu-1": {"Pods": [{"UID": "someone"}], "NumPDBViolations": 1},  # no GPU at all
        },
    }
    assert call(extender, "preempt", orjson.dumps(body)) == {
        "NodeNameToMetaVictims": {"gpu-1": {"Pods": [{"UID": busy_uid}], "NumPDBViolations": 0}}
    }


def test_prioritize_is_a_bare_array_of_integer_scores(extender, apiserver):
    apiserver.apply(NODES, fx.node("gpu-2", gpus=4))
    pod = fx.pod("score-2", gpus=1)
    deadline = time.monotonic() + 10
    while True:
        scores = call(extender, "prioritize", args(pod, ["gpu-2", "gpu-1", "unknown"]))
        if {s["Host"]: s["Score"] for s in scores}.get("gpu-2"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # gpu-1 has 3 of 4 held: the pod fills it; gpu-2 would be a quarter full
    assert sorted(scores, key=lambda s: s["Host"]) == [
        {"Host": "gpu-1", "Score": 10},
        {"Host": "gpu-2", "Score": 9},
        {"Host": "unknown", "Score": 0},
    ]


MALFORMED = [
    (b"{not json", "request body is not JSON"),
    (b"[]", "request body must be a JSON object, got list"),
    (b'{"NodeNames": ["a"]}', "request has no Pod"),
    (orjson.dumps({"Pod": fx.pod("p"), "NodeNames": "cpu-1"}), "NodeNames must be a list of node names"),
    (orjson.dumps({"Pod": "x", "NodeNames": []}), "Pod must be a JSON object, got str"),
    (
        orjson.dumps({"Pod": fx.pod("p", cpu="lots"), "NodeNames": []}),
        'Pod default/p: resources: "lots" is not a quantity',
    ),
    (orjson.dumps({"Pod": fx.pod("p"), "Nodes": None, "NodeNames": None}), "neither NodeNames nor Nodes"),
]
MALFORMED_VICTIMS = (
    orjson.dumps({"Pod": fx.pod("p"), "NodeNameToMetaVictims": []}),
    "neither NodeNameToMetaVictims",
)


def test_malformed_requests_get_400_with_the_reason_and_the_server_keeps_serving(extender):
    cases = [(verb, *case) for case in MALFORMED for verb in ("filter", "prioritize")]
    # preempt reads the same Pod, and victims instead of node names
    cases += [("preempt", *case) for case in (*MALFORMED[:3], *MALFORMED[4:6], MALFORMED_VICTIMS)]
    for verb, body, reason in cases:
        response = extender.session.post(extender.url(f"/{verb}"), data=body, timeout=10)
        assert response.status_code == 400, (verb, body)
        assert reason in response.json()["Error"]
    assert extender.session.get(extender.url("/healthz"), timeout=5).status_code == 200
    assert call(extender, "filter", args(fx.pod("ok"), ["cpu-1"]))["NodeNames"] == ["cpu-1"]


def test_full_nodes_are_answered_with_nodes_when_not_cache_capable(extender):
    items = [fx.node("cpu-1"), fx.node("gpu-1", gpus=4)]
    body = orjson.dumps({"Pod": fx.pod("p"), "Nodes": {"metadata": {}, "items": items}, "NodeNames": None})
    result = call(extender, "filter", body)
    assert [item["metadata"]["name"] for item in result["Nodes"]["items"]] == ["cpu-1"]


def test_metrics_count_calls_by_verb_and_outcome_and_show_cache_sizes(extender):
    call(extender, "filter", args(fx.pod("p"), ["cpu-1"]))
    call(extender, "filter", args(fx.pod("p", gpus=8), ["gpu-1"]))
    extender.session.post(extender.url("/prioritize"), data=b"nope", timeout=10)
    text = extender.session.get(extender.url("/metrics"), timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("inferplane_extender_requests_total", (("outcome", "ok"), ("verb", "filter")))] == 1
    assert samples[("inferplane_extender_requests_total", (("outcome", "no_fit"), ("verb", "filter")))] == 1
    assert (
        samples[("inferplane_extender_requests_total", (("outcome", "bad_request"), ("verb", "prioritize")))]
        == 1
    )
    assert samples[("inferplane_extender_request_duration_seconds_count", (("verb", "filter"),))] == 2
    assert samples[("inferplane_extender_nodes_refused_total", (("rule", "fits-when-empty"),))] == 1
    assert samples[("inferplane_extender_cache_objects", (("kind", "nodes"),))] == 2
    assert samples[("inferplane_extender_cache_objects", (("kind", "pods"),))] == 1
    assert samples[("inferplane_extender_cache_synced", ())] == 1


def test_not_ready_and_refusing_to_place_until_the_pods_are_listed(apiserver, start_server, tmp_path):
    apiserver.failing.add(PODS)
    config = kubeconfig(tmp_path, apiserver.url)
    server = start_server(["extender", "--kubeconfig", str(config)], tls=None, ready_path="/healthz")
    readyz = server.session.get(server.url("/readyz"), timeout=5)
    assert readyz.status_code == 503 and "pods listed: False" in readyz.text
    result = call(server, "filter", args(fx.pod("p", gpus=1), ["gpu-1"]))
    assert result["NodeNames"] is None and "still listing the cluster" in result["Error"]
    assert (
        server.session.post(server.url("/prioritize"), data=args(fx.pod("p"), ["gpu-1"])).status_code == 503
    )
    apiserver.failing.clear()
    server.wait_ready("/readyz", 200, timeout=30)
    assert call(server, "filter", args(fx.pod("p", gpus=1), ["gpu-1"]))["NodeNames"] == ["gpu-1"]


def test_accelerators_are_the_ones_listed_plus_those_added_by_flag(apiserver, start_server, tmp_path):
    apiserver.apply(NODES, fx.node("rdma-1", gpus=8, gpu_resource="rdma/hca"))
    apiserver.apply(NODES, fx.node("fpga-1", gpus=2, gpu_resource="xilinx.com/fpga-u200"))
    config = kubeconfig(tmp_path, apiserver.url)
    server = start_server(
        ["extender", "--kubeconfig", str(config), "--accelerator-resource", "xilinx.com/fpga-*"],
        tls=None, ready_path="/readyz", expect_status=200,
    )  # fmt: skip
    result = call(server, "filter", args(fx.pod("web"), ["cpu-1", "rdma-1", "fpga-1", "gpu-1"]))
    # A node with RDMA only is a CPU node; one with an FPGA (added by flag) is kept for FPGA pods.
    assert result["NodeNames"] == ["cpu-1", "rdma-1"]
    assert set(result["FailedNodes"]) == {"fpga-1", "gpu-1"}
    fpga_pod = fx.pod("synth", gpus=1, gpu_resource="xilinx.com/fpga-u200")
    assert call(server, "filter", args(fpga_pod, ["cpu-1", "fpga-1"]))["NodeNames"] == ["fpga-1"]


def test_the_metrics_port_serves_metrics_and_probes_but_no_verb(apiserver, start_server, tmp_path):
    metrics_port = free_port()
    config = kubeconfig(tmp_path, apiserver.url)
    flags = ["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"]
    server = start_server(
        ["extender", "--kubeconfig", str(config), *flags], tls=None, ready_path="/readyz", expect_status=200
    )
    metrics = f"http://127.0.0.1:{metrics_port}"
    scraped = server.session.get(f"{metrics}/metrics", timeout=5)
    assert scraped.status_code == 200 and "inferplane_extender_cache_synced 1.0" in scraped.text
    assert server.session.get(f"{metrics}/readyz", timeout=5).status_code == 200
    for verb in ("filter", "prioritize", "preempt", "bind"):
        refused = server.session.post(
            f"{metrics}/{verb}", data=args(fx.pod("p", gpus=1), ["gpu-1"]), timeout=5
        )
        assert refused.status_code == 404, verb
        assert refused.text == "only /healthz, /metrics, /readyz on this port\n"
    # The scheduler's listener answers as before.
    assert call(server, "filter", args(fx.pod("p", gpus=1), ["gpu-1"]))["NodeNames"] == ["gpu-1"]
