"""`inferplane extender` as kube-scheduler meets it: a real process under gunicorn on loopback,
watching a stand-in apiserver for nodes and pods, answering the scheduler's CapitalCase JSON."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from conftest import ServerProcess
from prometheus_client.parser import text_string_to_metric_families

from extender import fixtures as fx

NODES, PODS = "/api/v1/nodes", "/api/v1/pods"


class Apiserver:
    """Serves LIST and WATCH for nodes and pods; a test changes objects with `put`/`delete`, which
    go into the store (for the next LIST) and the event log, which a WATCH replays from the
    resourceVersion it asks for before it streams new events, as the real apiserver does."""

    def __init__(self) -> None:
        self.store: dict[str, dict[str, dict[str, Any]]] = {NODES: {}, PODS: {}}
        self.failing: set[str] = set()  # collections whose LIST answers 500
        self.field_selectors: list[str] = []
        self.bindings: list[dict[str, Any]] = []
        self.rv = 100
        self._watchers: dict[str, list[queue.Queue[dict[str, Any] | None]]] = {NODES: [], PODS: []}
        self._log: list[tuple[int, str, dict[str, Any]]] = []  # (resourceVersion, collection, event)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def put(self, path: str, obj: dict[str, Any]) -> None:
        self._change(path, "MODIFIED" if obj["metadata"]["name"] in self.store[path] else "ADDED", obj)

    def delete(self, path: str, obj: dict[str, Any]) -> None:
        self._change(path, "DELETED", obj)

    def _change(self, path: str, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.store[path].pop(name, None)
            else:
                self.store[path][name] = obj
            event = {"type": kind, "object": obj}
            self._log.append((self.rv, path, event))
            for watcher in self._watchers[path]:
                watcher.put(event)

    def close(self) -> None:
        with self._lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.put(None)
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                if parts.path not in fake.store:
                    return self._json(404, {"kind": "Status", "code": 404, "message": "not found"})
                if "fieldSelector" in query:
                    fake.field_selectors.append(query["fieldSelector"])
                if query.get("watch") == "true":
                    since = int(query.get("resourceVersion") or 0)
                    return self._watch(parts.path, since, float(query.get("timeoutSeconds", "5")))
                if parts.path in fake.failing:
                    return self._json(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
                with fake._lock:
                    items = list(fake.store[parts.path].values())
                    rv = str(fake.rv)
                self._json(200, {"kind": "List", "metadata": {"resourceVersion": rv}, "items": items})

            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.path.endswith("/binding") or body.get("kind") != "Binding":
                    return self._json(404, {"kind": "Status", "code": 404, "message": "not found"})
                name = body["metadata"]["name"]
                if body["metadata"].get("uid") == "stale-uid":
                    return self._json(
                        409, {"kind": "Status", "code": 409, "message": f"pod {name} was replaced"}
                    )
                fake.bindings.append(body)
                self._json(201, {"kind": "Status", "status": "Success", "code": 201})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, path: str, since: int, timeout: float) -> None:
                events: queue.Queue[dict[str, Any] | None] = queue.Queue()
                with fake._lock:
                    for rv, collection, event in fake._log:
                        if collection == path and rv > since:
                            events.put(event)
                    fake._watchers[path].append(events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                deadline = time.monotonic() + timeout
                try:
                    while (left := deadline - time.monotonic()) > 0:
                        try:
                            event = events.get(timeout=min(left, 0.5))
                        except queue.Empty:
                            continue
                        if event is None:
                            break
                        line = orjson.dumps(event) + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                finally:
                    with fake._lock:
                        fake._watchers[path].remove(events)

        return Handler


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
def apiserver() -> Iterator[Apiserver]:
    fake = Apiserver()
    fake.put(NODES, fx.node("cpu-1"))
    fake.put(NODES, fx.node("gpu-1", gpus=4))
    fake.put(PODS, fx.pod("busy", gpus=3, node_name="gpu-1", instance_type="gpu-large"))
    yield fake
    fake.close()


@pytest.fixture
def extender(
    apiserver: Apiserver, start_server: Callable[..., ServerProcess], tmp_path: Path
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
    busy = apiserver.store[PODS]["busy"]
    apiserver.delete(PODS, busy)
    deadline = time.monotonic() + 10
    while call(extender, "filter", args(pod, ["gpu-1"]))["NodeNames"] != ["gpu-1"]:
        assert time.monotonic() < deadline, "the extender never saw the pod go"
        time.sleep(0.05)
    apiserver.put(NODES, fx.node("gpu-2", gpus=8))
    while "gpu-2" not in call(extender, "filter", args(pod, ["gpu-1", "gpu-2"]))["NodeNames"]:
        assert time.monotonic() < deadline, "the extender never saw the new node"
        time.sleep(0.05)
    assert apiserver.field_selectors[0] == "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


def test_bind_posts_the_binding_and_counts_the_pod_before_any_watch_event(extender, apiserver):
    first = fx.pod("score-3", namespace="team-a", gpus=1, uid="uid-3")
    assert call(extender, "filter", args(first, ["gpu-1"]))["NodeNames"] == ["gpu-1"]
    bind = {"PodName": "score-3", "PodNamespace": "team-a", "PodUID": "uid-3", "Node": "gpu-1"}
    assert call(extender, "bind", orjson.dumps(bind)) == {"Error": ""}
    assert apiserver.bindings == [
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
    busy_uid = apiserver.store[PODS]["busy"]["metadata"]["uid"]
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
    apiserver.put(NODES, fx.node("gpu-2", gpus=4))
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
