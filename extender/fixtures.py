"""Kubernetes JSON for nodes and pods as the API serves them, for tests, the benchmark and the e2e.

One place builds these shapes so the unit tables, the benchmark's 5,000 nodes and the objects the e2e
suite creates on a real apiserver agree on what a GPU node or a scoring pod looks like.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from extender.parse import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, INSTANCE_TYPE_LABEL, ZONE_LABEL

GPU = "nvidia.com/gpu"


def node(
    name: str,
    *,
    cpu: str = "8",
    memory: str = "32Gi",
    gpus: int = 0,
    gpu_resource: str = GPU,
    product: str | None = None,
    gpu_memory_mib: int | None = None,
    zone: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if zone:
        all_labels[ZONE_LABEL] = zone
    if product:
        all_labels[GPU_PRODUCT_LABEL] = product
    if gpu_memory_mib:
        all_labels[GPU_MEMORY_LABEL] = str(gpu_memory_mib)
    offered = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        offered[gpu_resource] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "status": {"capacity": dict(offered), "allocatable": dict(offered)},
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str = "100m",
    memory: str = "128Mi",
    gpus: int = 0,
    gpu_resource: str = GPU,
    node_name: str | None = None,
    deployment: str | None = None,
    instance_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    scheduler_name: str | None = None,
    phase: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A pod as a ReplicaSet of `deployment` would make it, with the webhook's injected resources."""
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits[gpu_resource] = str(gpus)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())}
    labels: dict[str, str] = {}
    if instance_type:
        labels[INSTANCE_TYPE_LABEL] = instance_type
    if deployment:
        labels["app"] = deployment
        labels["pod-template-hash"] = "5d8f7c9b6d"
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{deployment}-5d8f7c9b6d",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{deployment}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "containers": [
            {"name": "score", "image": "scoring:1", "resources": {"requests": dict(limits), "limits": limits}}
        ]
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase or ("Running" if node_name else "Pending")},
    }


def deployment(name: str, template: Mapping[str, Any], replicas: int = 1) -> dict[str, Any]:
    """A Deployment whose pods are `template` (a pod from `pod()`), selected by `app: <name>`."""
    labels = {"app": name}
    metadata = template["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": metadata["namespace"]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**metadata.get("labels", {}), **labels}},
                "spec": template["spec"],
            },
        },
    }


def served(pod_: Mapping[str, Any], *, seq: int = 0) -> dict[str, Any]:
    """`pod_` as a real cluster serves it once it runs: the same placement fields, plus what the
    apiserver, the controllers, the webhook and the kubelet add (managedFields, env, probes, volumes,
    tolerations, conditions, container statuses): about 6 KB of JSON against `pod()`'s 0.6 KB. What
    the extender's watch receives, so the benchmark and the memory tests weigh the real thing.
    `seq` varies what differs from pod to pod (timestamps, IPs, container IDs)."""
    metadata, spec = dict(pod_["metadata"]), dict(pod_["spec"])
    name = metadata["name"]
    stamp = f"2025-05-{1 + seq % 28:02d}T{seq % 24:02d}:{seq % 60:02d}:{seq * 7 % 60:02d}Z"
    ip = f"10.{seq >> 16 & 255}.{seq >> 8 & 255}.{seq & 255}"
    digest = hashlib.sha256(f"{name}/{seq}".encode()).hexdigest()
    labels = {
        **(metadata.get("labels") or {}),
        "app.kubernetes.io/name": "scoring",
        "app.kubernetes.io/instance": name.rsplit("-", 1)[0],
        "app.kubernetes.io/version": "1.4.2",
        "ml.example/endpoint": "iris",
        "ml.example/deployment": "blue",
    }
    metadata.update(
        generateName=name.rsplit("-", 1)[0] + "-",
        labels=labels,
        resourceVersion=str(100_000 + seq),
        creationTimestamp=stamp,
        annotations={
            **(metadata.get("annotations") or {}),
            "ml.example/model": "iris:3",
            "ml.example/injected": '{"version":1,"volumes":["model-source","app"],"init":"model-init"}',
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "5001",
            "kubectl.kubernetes.io/restartedAt": stamp,
        },
        managedFields=[
            _managed("kube-controller-manager", stamp, _spec_fields(labels)),
            _status_fields(stamp, ip),
        ],
    )
    containers = [_served_container(container) for container in spec.get("containers") or ()]
    spec.update(
        containers=containers,
        initContainers=[_MODEL_INIT],
        volumes=_VOLUMES,
        tolerations=_TOLERATIONS,
        dnsPolicy="ClusterFirst",
        restartPolicy="Always",
        serviceAccountName="default",
        serviceAccount="default",
        schedulerName=spec.get("schedulerName", "default-scheduler"),
        securityContext={"fsGroup": 1000},
        terminationGracePeriodSeconds=30,
        enableServiceLinks=True,
        priority=0,
        preemptionPolicy="PreemptLowerPriority",
    )
    status = dict(pod_.get("status") or {})
    host = f"192.168.{seq >> 8 & 255}.{seq & 255}"
    status.update(
        conditions=[
            {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ],
        hostIP=host,
        hostIPs=[{"ip": host}],
        podIP=ip,
        podIPs=[{"ip": ip}],
        startTime=stamp,
        qosClass="Burstable",
        initContainerStatuses=[
            _container_status(
                "model-init",
                digest,
                {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": stamp,
                        "finishedAt": stamp,
                    }
                },
            )
        ],
        containerStatuses=[
            _container_status(c["name"], digest, {"running": {"startedAt": stamp}}) for c in containers
        ],
    )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def _managed(
    manager: str, stamp: str, fields: dict[str, Any], subresource: str | None = None
) -> dict[str, Any]:
    entry = {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": stamp}
    entry.update(fieldsType="FieldsV1", fieldsV1=fields)
    if subresource:
        entry["subresource"] = subresource
    return entry


def _spec_fields(labels: Mapping[str, str]) -> dict[str, Any]:
    env = {f'k:{{"name":"VAR_{i}"}}': {".": {}, "f:name": {}, "f:value": {}} for i in range(8)}
    container = {".": {}, "f:env": env, **{f"f:{key}": {} for key in _CONTAINER_KEYS}}
    return {
        "f:metadata": {"f:generateName": {}, "f:labels": {f"f:{key}": {} for key in labels}},
        "f:spec": {'k:{"name":"score"}': container, **{f"f:{key}": {} for key in _SPEC_KEYS}},
    }


def _status_fields(stamp: str, ip: str) -> dict[str, Any]:
    condition = {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}
    kinds = ("ContainersReady", "Initialized", "PodReadyToStartContainers", "Ready")
    fields = {
        "f:conditions": {f'k:{{"type":"{kind}"}}': condition for kind in kinds},
        "f:podIPs": {".": {}, f'k:{{"ip":"{ip}"}}': {".": {}, "f:ip": {}}},
        **{f"f:{key}": {} for key in _STATUS_KEYS},
    }
    return _managed("kubelet", stamp, {"f:status": fields}, subresource="status")


def _served_container(container: Mapping[str, Any]) -> dict[str, Any]:
    probe = {
        "httpGet": {"path": "/", "port": 5001, "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }
    env: list[dict[str, Any]] = [{"name": f"VAR_{i}", "value": f"value-{i}-{'x' * 16}"} for i in range(6)]
    env.append({"name": "AZUREML_MODEL_DIR", "value": "/var/azureml-app/azureml-models/iris/3"})
    env.append(
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}
    )
    return {
        **container,
        "env": env,
        "ports": [{"name": "http", "containerPort": 5001, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 10},
        "livenessProbe": {**probe, "periodSeconds": 20},
        "volumeMounts": [
            {"name": "app", "mountPath": "/var/azureml-app", "readOnly": True},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _container_status(name: str, digest: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "ready": True,
        "restartCount": 0,
        "started": "running" in state,
        "image": f"registry.example/{name}:1.4.2",
        "imageID": f"registry.example/{name}@sha256:{digest}",
        "containerID": f"containerd://{digest}",
        "state": state,
        "lastState": {},
    }


_CONTAINER_KEYS = ("image", "imagePullPolicy", "name", "ports", "resources", "terminationMessagePath")
_SPEC_KEYS = ("dnsPolicy", "enableServiceLinks", "restartPolicy", "schedulerName", "securityContext")
_STATUS_KEYS = (
    "containerStatuses",
    "hostIP",
    "hostIPs",
    "initContainerStatuses",
    "phase",
    "podIP",
    "startTime",
)
_MODEL_INIT = {
    "name": "model-init",
    "image": "registry.example/inferplane:0.1.0",
    "args": ["model-init", "--manifest", "/etc/model"],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "volumeMounts": [
        {"name": "app", "mountPath": "/var/azureml-app"},
        {"name": "model-manifest", "mountPath": "/etc/model", "readOnly": True},
    ],
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "imagePullPolicy": "IfNotPresent",
}
_VOLUMES = [
    {"name": "app", "emptyDir": {}},
    {"name": "model-manifest", "configMap": {"name": "iris-3", "defaultMode": 420}},
    {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ],
        },
    },
]
_TOLERATIONS = [
    {
        "key": f"node.kubernetes.io/{key}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for key in ("not-ready", "unreachable")
]
