"""A kubelet stand-in for `inferplane demo`: the pods bound to the demo's fake nodes, run as local
processes, their status written back through the apiserver as a kubelet would.

What it does for each pod, in a thread of its own:
1. gives it an address of its own on loopback (127.0.10.N), which plays the pod network;
2. makes each volume a local directory: emptyDir a fresh one, configMap written the way the kubelet
   mounts it (keys through `..data`), persistentVolumeClaim the claimed PersistentVolume's `local` or
   `hostPath` directory, hostPath the directory itself;
3. runs the init containers one by one to completion (model-init), then the containers
   (`inferplane serve`), each in its own root (see `demo.podspec`), the pod address in
   INFERPLANE_BIND_HOST in place of a network namespace;
4. reports phase, podIP, container states and Ready (once the readiness probe answers) through the
   status subresource; a pod being deleted is stopped and then removed, as the kubelet does.

What it does not do: pull images (only the inferplane image runs, as our own CLI), enforce limits,
readOnly mounts or security contexts, restart containers. Pods are found by listing every
POLL_SECONDS, which is plenty for a demo of a few pods.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from demo.podspec import Unrunnable, build_root, launch, mounts_for, resolve_port
from inferplane.localcluster.process import ManagedProcess

log = logging.getLogger("inferplane.demo.kubelet")

POLL_SECONDS = 0.3
POD_NETWORK = ipaddress.ip_network("127.0.10.0/24")
INIT_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 120.0
BIND_HOST_ENV = "INFERPLANE_BIND_HOST"  # scoring.server reads it
Obj = dict[str, Any]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Addresses:
    """Pod addresses from POD_NETWORK, handed out and returned."""

    def __init__(self) -> None:
        self._free = [str(ip) for ip in POD_NETWORK.hosts()]
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            if not self._free:
                raise Unrunnable(f"no free pod address left in {POD_NETWORK}")
            return self._free.pop(0)

    def give_back(self, ip: str) -> None:
        with self._lock:
            self._free.append(ip)


class PodRunner(threading.Thread):
    """One pod's life on this machine."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.pod = pod
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = kubelet.workdir / "pods" / f"{self.namespace}_{self.name}"
        self.ip = ""
        self.children: dict[str, ManagedProcess] = {}
        self.stopping = threading.Event()
        self.init_statuses: list[Obj] = []
        self.statuses: list[Obj] = []

    # -- status --------------------------------------------------------------------------------

    def _report(
        self, phase: str, *, initialized: bool, ready: bool, reason: str = "", message: str = ""
    ) -> None:
        now = _now()
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": str(initialized), "lastTransitionTime": now},
            {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": now},
        ]
        status: Obj = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "conditions": conditions,
            "initContainerStatuses": self.init_statuses,
            "containerStatuses": self.statuses,
        }
        if self.ip:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if reason:
            status.update(reason=reason, message=message)
        status.setdefault("startTime", now)
        with contextlib.suppress(k8s.ApiException):  # the pod may be gone already
            self.kubelet.core.patch_namespaced_pod_status(self.name, self.namespace, {"status": status})

    @staticmethod
    def _state(name: str, image: str, state: Obj, *, ready: bool = False) -> Obj:
        return {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }

    # -- volumes --------------------------------------------------------------------------------

    def _volumes(self) -> dict[str, Path]:
        """Each volume as a local directory."""
        out: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = self.dir / "volumes" / name
            if "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
            elif "configMap" in volume:
                self._config_map(volume["configMap"], target)
            elif "persistentVolumeClaim" in volume:
                target = self._claim(volume["persistentVolumeClaim"]["claimName"])
            elif "hostPath" in volume:
                target = Path(volume["hostPath"]["path"])
            elif "projected" in volume or "secret" in volume or "downwardAPI" in volume:
                target.mkdir(parents=True, exist_ok=True)  # the service account token: nobody reads it here
            else:
                kind = next((k for k in volume if k != "name"), "?")
                raise Unrunnable(f"volume {name!r}: {kind} volumes are not supported by the demo kubelet")
            out[name] = target
        return out

    def _config_map(self, source: Obj, target: Path) -> None:
        from models.mounted import write_mounted

        config_map = self.kubelet.core.read_namespaced_config_map(source["name"], self.namespace)
        data = dict(config_map.data or {})
        if source.get("items"):
            data = {item["path"]: data[item["key"]] for item in source["items"] if item["key"] in data}
        if target.exists():
            shutil.rmtree(target)
        write_mounted(target, data)

    def _claim(self, claim_name: str) -> Path:
        claim = self.kubelet.core.read_namespaced_persistent_volume_claim(claim_name, self.namespace)
        if not claim.spec.volume_name or (claim.status and claim.status.phase != "Bound"):
            raise Unrunnable(f"PersistentVolumeClaim {claim_name!r} is not bound yet")
        volume = self.kubelet.core.read_persistent_volume(claim.spec.volume_name)
        path = (volume.spec.local and volume.spec.local.path) or (
            volume.spec.host_path and volume.spec.host_path.path
        )
        if not path:
            raise Unrunnable(
                f"PersistentVolume {volume.metadata.name!r}: only local and hostPath volumes run here"
            )
        return Path(path)

    # -- running ----------------------------------------------------------------------------------

    def _start(self, container: Obj, volumes: dict[str, Path], kind: str) -> ManagedProcess:
        root = self.dir / kind / container["name"]
        build_root(root, mounts_for(container, volumes))
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
            BIND_HOST_ENV: self.ip,
        }
        plan = launch(container, self.pod, self.ip, volumes, root, self.kubelet.inferplane, base)
        child = ManagedProcess(
            f"{self.name}/{container['name']}",
            plan.argv,
            self.dir / f"{container['name']}.log",
            env=plan.env,
            cwd=plan.cwd,
        ).start()
        self.children[container["name"]] = child
        return child

    def run(self) -> None:
        try:
            self._run()
        except Unrunnable as exc:
            log.warning("pod cannot run here", extra={"pod": self.name, "reason": str(exc)})
            self._report("Pending", initialized=False, ready=False, reason="DemoKubelet", message=str(exc))
        except Exception:
            log.exception("pod runner failed", extra={"pod": self.name})

    def _run(self) -> None:
        spec = self.pod["spec"]
        self.ip = self.kubelet.addresses.take()
        inits, containers = spec.get("initContainers") or [], spec["containers"]
        waiting = {"waiting": {"reason": "PodInitializing"}}
        self.init_statuses = [self._state(c["name"], c.get("image", ""), waiting) for c in inits]
        self.statuses = [self._state(c["name"], c.get("image", ""), waiting) for c in containers]
        self._report("Pending", initialized=not inits, ready=False)
        volumes = self._volumes()
        for index, container in enumerate(inits):
            started = _now()
            child = self._start(container, volumes, "init")
            self.init_statuses[index] = self._state(
                container["name"], container.get("image", ""), {"running": {"startedAt": started}}
            )
            self._report("Pending", initialized=False, ready=False)
            code = self._wait(child, INIT_TIMEOUT_S)
            if code is None:
                return  # stopping
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": _now(),
                "message": child.tail(5) if code else "",
            }
            self.init_statuses[index] = self._state(
                container["name"], container.get("image", ""), {"terminated": terminated}
            )
            if code != 0:
                self._report(
                    "Pending",
                    initialized=False,
                    ready=False,
                    reason="Init:Error",
                    message=f"init container {container['name']} exited {code}",
                )
                return
        for index, container in enumerate(containers):
            self._start(container, volumes, "containers")
            self.statuses[index] = self._state(
                container["name"], container.get("image", ""), {"running": {"startedAt": _now()}}
            )
        self._report("Running", initialized=True, ready=False)
        ready = self._wait_ready(containers)
        if ready:
            for status in self.statuses:
                status["ready"] = True
            self._report("Running", initialized=True, ready=True)
        self._watch(containers)

    def _wait(self, child: ManagedProcess, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while not self.stopping.is_set():
            code = child.poll()
            if code is not None:
                return code
            if time.monotonic() > deadline:
                child.stop()
                return -1
            time.sleep(0.05)
        return None

    def _probe_url(self, container: Obj) -> str | None:
        probe = (container.get("readinessProbe") or {}).get("httpGet")
        if not probe:
            return None
        return f"http://{self.ip}:{resolve_port(container, probe.get('port', 80))}{probe.get('path', '/')}"

    def _wait_ready(self, containers: Sequence[Obj]) -> bool:
        urls = [self._probe_url(c) for c in containers]
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = {c["name"]: url for c, url in zip(containers, urls, strict=True) if url}
        while pending and not self.stopping.is_set() and time.monotonic() < deadline:
            for name, url in list(pending.items()):
                if self.children[name].poll() is not None:
                    return False
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
                    if 200 <= response.status < 400:
                        del pending[name]
            time.sleep(0.1)
        return not pending

    def _watch(self, containers: Sequence[Obj]) -> None:
        """Report a container that exits on its own (no restarts here)."""
        while not self.stopping.wait(0.2):
            for index, container in enumerate(containers):
                child = self.children[container["name"]]
                code = child.poll()
                if code is not None and "terminated" not in self.statuses[index]["state"]:
                    terminated = {
                        "exitCode": code,
                        "reason": "Error" if code else "Completed",
                        "finishedAt": _now(),
                        "message": child.tail(5),
                    }
                    self.statuses[index] = self._state(
                        container["name"], container.get("image", ""), {"terminated": terminated}
                    )
                    self._report("Failed" if code else "Succeeded", initialized=True, ready=False)

    def stop(self, grace: float) -> None:
        self.stopping.set()
        for child in self.children.values():
            child.stop(grace)
        if self.ip:
            self.kubelet.addresses.give_back(self.ip)
            self.ip = ""


class Kubelet:
    """Runs the pods bound to `nodes`; `start()` begins, `stop()` stops every pod it runs."""

    def __init__(
        self,
        api: k8s.ApiClient,
        nodes: Iterable[str],
        workdir: Path,
        inferplane: Sequence[str],
        on_event: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.core = k8s.CoreV1Api(api)
        self.nodes = set(nodes)
        self.workdir = workdir
        self.inferplane = list(inferplane)
        self.addresses = Addresses()
        self.runners: dict[str, PodRunner] = {}
        self._on_event = on_event
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def pod_log(self, namespace: str, name: str, container: str) -> Path:
        return self.workdir / "pods" / f"{namespace}_{name}" / f"{container}.log"

    def _loop(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            try:
                self._sync()
            except Exception:
                log.exception("kubelet sync failed; retrying")

    def _sync(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=")
        seen = set()
        for pod in pods.items:
            if pod.spec.node_name not in self.nodes:
                continue
            uid = pod.metadata.uid
            seen.add(uid)
            if pod.metadata.deletion_timestamp is not None:
                self._finish(
                    uid, pod.metadata.namespace, pod.metadata.name, pod.spec.termination_grace_period_seconds
                )
            elif uid not in self.runners:
                raw = self.core.api_client.sanitize_for_serialization(pod)
                runner = PodRunner(self, raw)
                self.runners[uid] = runner
                self._on_event(f"pod {pod.metadata.name} on {pod.spec.node_name}: starting")
                runner.start()
        for uid in set(self.runners) - seen:  # deleted while we were not looking
            self.runners.pop(uid).stop(grace=5)

    def _finish(self, uid: str, namespace: str, name: str, grace: int | None) -> None:
        runner = self.runners.pop(uid, None)
        if runner is not None:
            runner.stop(grace=min(float(grace if grace is not None else 30), 10.0))
        with contextlib.suppress(k8s.ApiException):
            self.core.delete_namespaced_pod(
                name,
                namespace,
                grace_period_seconds=0,
                body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid)),
            )

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        for runner in list(self.runners.values()):
            runner.stop(grace=5)
        self.runners.clear()
