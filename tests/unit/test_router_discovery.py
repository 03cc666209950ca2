"""From pods and Secrets as the apiserver returns them (raw JSON) to the route table."""

from __future__ import annotations

import base64

from router.discovery import build_table


def pod(
    name: str,
    deployment: str,
    *,
    endpoint: str = "iris",
    ready: bool = True,
    ip: str | None = "10.0.0.1",
    created: str = "2024-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    ports: list[int] | None = None,
    namespace: str = "ns",
    deleting: bool = False,
) -> dict:
    meta = {
        "name": name,
        "namespace": namespace,
        "creationTimestamp": created,
        "labels": {"ml.example/endpoint": endpoint, "ml.example/deployment": deployment},
        "annotations": annotations or {},
    }
    if deleting:
        meta["deletionTimestamp"] = "2024-01-02T00:00:00Z"
    container = {"name": "score", **({"ports": [{"containerPort": p} for p in ports]} if ports else {})}
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "spec": {"containers": [container]}, "status": status}


def secret(name: str, namespace: str = "ns", labels: dict[str, str] | None = None, **data: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_only_ready_pods_with_an_ip_take_requests_but_all_keep_the_share() -> None:
    table = build_table(
        [
            pod("b1", "blue", ip="10.0.0.1"),
            pod("b2", "blue", ready=False, ip="10.0.0.2"),
            pod("b3", "blue", ip=None),
            pod("b4", "blue", ip="10.0.0.4", deleting=True),
            pod(
                "g1",
                "green",
                ready=False,
                created="2024-02-01T00:00:00Z",
                annotations={"ml.example/traffic": "20"},
            ),
        ],
        [],
    )
    iris = table.endpoints["ns/iris"]
    assert [b.pod for b in iris.by_name["blue"].backends] == ["b1"]
    assert iris.by_name["green"].backends == ()
    assert [name for _, name in iris.split] == ["blue", "green"]  # green keeps its 20 % while starting


def test_port_from_annotation_then_container_then_default() -> None:
    table = build_table(
        [
            pod("a", "a", annotations={"ml.example/scoring-port": "9000"}, ports=[8080]),
            pod("b", "b", ports=[8080], created="2024-01-02T00:00:00Z"),
            pod("c", "c", created="2024-01-03T00:00:00Z"),
        ],
        [],
    )
    ports = {d.name: d.backends[0].port for d in table.endpoints["ns/iris"].deployments}
    assert ports == {"a": 9000, "b": 8080, "c": 5001}


def test_first_created_deployment_is_default_and_creation_times_override_pod_age() -> None:
    pods = [
        pod("g", "green", created="2024-01-01T00:00:00Z"),
        pod("b", "blue", created="2024-03-01T00:00:00Z"),
    ]
    assert build_table(pods, []).endpoints["ns/iris"].default == "green"
    # blue's pods were replaced by a rollout, but the Deployment itself is older.
    created = {("ns", "blue"): "2023-01-01T00:00:00Z", ("ns", "green"): "2023-06-01T00:00:00Z"}
    assert build_table(pods, [], created).endpoints["ns/iris"].default == "blue"


def test_newest_pod_carries_the_settings_and_bad_ones_fall_back_to_defaults() -> None:
    table = build_table(
        [
            pod("old", "blue", annotations={"ml.example/max-concurrent-requests-per-pod": "2"}),
            pod(
                "new",
                "blue",
                created="2024-05-01T00:00:00Z",
                annotations={"ml.example/max-concurrent-requests-per-pod": "4"},
            ),
            pod("r", "red", annotations={"ml.example/traffic": "many"}),
        ],
        [],
    )
    iris = table.endpoints["ns/iris"]
    assert iris.by_name["blue"].settings.max_concurrent == 4
    assert iris.by_name["red"].settings.traffic == 0


def test_keys_by_name_or_label_in_the_endpoints_namespace() -> None:
    pods = [pod("a", "a")]
    by_name = secret("iris-keys", primary="p", secondary="s")
    assert build_table(pods, [by_name]).endpoints["ns/iris"].keys == ("p", "s")
    labelled = secret("whatever", labels={"ml.example/endpoint-keys": "iris"}, primary="l")
    assert build_table(pods, [labelled]).endpoints["ns/iris"].keys == ("l",)
    elsewhere = secret("iris-keys", namespace="other", primary="x")
    assert build_table(pods, [elsewhere]).endpoints["ns/iris"].keys == ()


def test_auth_is_none_only_when_every_deployment_says_so() -> None:
    none = {"ml.example/auth": "none"}
    assert build_table([pod("a", "a", annotations=none)], []).endpoints["ns/iris"].auth == "none"
    mixed = [pod("a", "a", annotations=none), pod("b", "b")]
    assert build_table(mixed, []).endpoints["ns/iris"].auth == "key"


def test_deployment_name_falls_back_to_the_replicaset() -> None:
    p = pod("x", "ignored")
    del p["metadata"]["labels"]["ml.example/deployment"]
    p["metadata"]["labels"]["pod-template-hash"] = "5d9f7c"
    p["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "scorer-5d9f7c"}]
    assert list(build_table([p], []).endpoints["ns/iris"].by_name) == ["scorer"]


def test_the_same_endpoint_name_in_two_namespaces_is_two_endpoints_with_their_own_keys() -> None:
    table = build_table(
        [
            pod("a1", "blue", namespace="team-a", annotations={"ml.example/traffic": "100"}),
            pod("b1", "blue", namespace="team-b", ip="10.0.0.2"),
            pod("b2", "green", namespace="team-b", ip="10.0.0.3", created="2024-02-01T00:00:00Z"),
        ],
        [
            secret("iris-keys", namespace="team-a", primary="a-key"),
            secret("iris-keys", namespace="team-b", primary="b-key"),
        ],
    )
    assert sorted(table.endpoints) == ["team-a/iris", "team-b/iris"]
    a, b = table.endpoints["team-a/iris"], table.endpoints["team-b/iris"]
    assert (a.namespace, list(a.by_name), a.keys) == ("team-a", ["blue"], ("a-key",))
    assert (b.namespace, list(b.by_name), b.keys) == ("team-b", ["blue", "green"], ("b-key",))
    # Same deployment name, different namespaces: separate pools of pod slots.
    assert a.by_name["blue"].key != b.by_name["blue"].key
    assert [x.pod for x in b.by_name["blue"].backends] == ["b1"]
