"""`inferplane demo`: the whole flow on one machine, no Docker, step by step.

A real control plane on loopback (etcd, kube-apiserver, kube-controller-manager: inferplane.localcluster),
three fake nodes, and our own processes around it as a cluster would run them: the webhook (called by
the apiserver over TLS), the inferplane scheduler (the real kube-scheduler with our extender), the
router (cluster mode: list+watch), and a kubelet stand-in that runs each pod as processes
(`inferplane model-init`, then `inferplane serve`). Then the example is applied as a user would
(CRD, InstanceTypes, registrations, the endpoint's Deployments), requests are sent through the
router with a key, and what happened is shown and checked. Everything started is stopped at the end,
and the work directory removed, unless --keep.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from demo import harness
from demo.decisions import DecisionRecorder
from demo.kubelet import Kubelet
from demo.report import Answer, Outcome, summarise
from demo.show import describe_pod, format_outcome, format_pod, shares
from demo.webhooks import RenderError, webhook_configurations
from inferplane.localcluster import build
from inferplane.localcluster.controlplane import ControlPlane
from inferplane.localcluster.process import ManagedProcess, free_port, inferplane_argv

NAMESPACE = "default"
ENDPOINT = "iris"
SCHEDULER = "inferplane-scheduler"
INIT_IMAGE = "inferplane:0.1.0"
DEPLOYMENT_FILES = ("blue.yaml", "green.yaml", "shadow.yaml")  # applied in this order: blue is the default
# One flower of each species, and what both models must call them.
SAMPLE = [[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]]
SPECIES = ["setosa", "versicolor", "virginica"]
NODES = (
    # name, cpu, memory, gpus, labels
    ("cpu-1", "4", "16Gi", 0, {}),
    ("cpu-2", "4", "16Gi", 0, {}),
    ("gpu-1", "8", "64Gi", 1, {"nvidia.com/gpu.product": "Tesla-T4"}),
)
PODS_READY_TIMEOUT_S = 240.0


class StepFailed(Exception):
    """A step of the demo did not work; the message says which and what was seen."""


@dataclass
class Options:
    requests: int = 200
    keep: bool = False
    workdir: Path | None = None
    out: TextIO = sys.stdout


@dataclass
class Running:
    """Everything started, for the clean-up and for --keep."""

    workdir: Path
    children: list[ManagedProcess] = field(default_factory=list)
    stops: list[Callable[[], None]] = field(default_factory=list)  # in-process helpers: kubelet, recorder
    stop_control_plane: Callable[[], None] | None = None  # last: the others talk to it


class Demo:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.steps: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.outcome: Outcome | None = None
        self._step = 0

    # -- printing ---------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.options.out, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._step += 1
        self.say(f"\n[{self._step}] {title}")
        started = time.monotonic()
        entry: dict[str, Any] = {"step": title}
        self.steps.append(entry)
        try:
            yield
        except StepFailed as exc:
            entry.update(ok=False, error=str(exc))
            raise
        except Exception as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            raise StepFailed(f"{title}: {type(exc).__name__}: {exc}") from exc
        finally:
            entry["seconds"] = round(time.monotonic() - started, 2)
        entry["ok"] = True
        self.say(f"    ({entry['seconds']} s)")

    def detail(self, text: str) -> None:
        for line in text.splitlines():
            self.say(f"    {line}")

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> Outcome | None:
        harness.require_checkout()
        _require_examples_dependencies()
        workdir = self.options.workdir or Path(tempfile.mkdtemp(prefix="inferplane-demo-"))
        workdir.mkdir(parents=True, exist_ok=True)
        running = Running(workdir)
        try:
            self._run(running)
            if self.options.keep:
                self._keep(running)
            return self.outcome
        finally:
            self._clean_up(running)

    def _run(self, running: Running) -> None:
        with self.step(
            "Kubernetes binaries and helm (built from pinned Go modules on the first run, then cached)"
        ):
            try:
                binaries = build.ensure_kubernetes()
                self.helm = build.ensure_helm()  # renders the chart's webhook configurations
            except build.BuildError as exc:
                raise StepFailed(f"cannot build the Kubernetes binaries or helm: {exc}") from exc
            self.detail(f"{build.KUBERNETES.version()}: {binaries['kube-apiserver'].parent}")
            self.detail(f"helm {build.HELM.version()}: {self.helm}")

        with self.step("Control plane on loopback: etcd, kube-apiserver, kube-controller-manager"):
            cp = ControlPlane(running.workdir / "control-plane", binaries)
            running.stop_control_plane = cp.stop
            cp.start()
            self.detail(f"apiserver {cp.server}; kubeconfig {cp.kubeconfig}")
        self.cp = cp

        with self.step("Nodes: API objects standing in for machines"):
            for name, cpu, memory, gpus, labels in NODES:
                cp.add_node(name, cpu=cpu, memory=memory, gpus=gpus, labels=labels)
                extra = f", {gpus}x nvidia.com/gpu ({labels['nvidia.com/gpu.product']})" if gpus else ""
                self.detail(f"{name}: {cpu} CPU, {memory}{extra}")
            self.detail("gpu-1 has no taint: only the extender keeps CPU pods off it")

        with self.step(
            "The example: InstanceType CRD and catalog, model files, registrations, endpoint keys"
        ):
            self._apply_catalog(running)

        with self.step(
            "inferplane webhook (the apiserver calls it over TLS for pods carrying ml.example/model)"
        ):
            self._start_webhook(running)

        with self.step(f"{SCHEDULER}: kube-scheduler with the inferplane extender"):
            self._start_scheduler(running)

        with self.step("inferplane router (cluster mode: watches pods labelled ml.example/endpoint)"):
            self._start_router(running)

        with self.step("Kubelet stand-in: runs pods bound to cpu-1, cpu-2, gpu-1 as local processes"):
            self.kubelet = Kubelet(
                cp.api(), [n[0] for n in NODES], running.workdir, inferplane_argv()
            ).start()
            running.stops.append(self.kubelet.stop)
            self.detail("each pod: its own 127.0.10.x address, model-init, then inferplane serve")

        with self.step("kubectl apply -f examples/endpoint/ (blue 90 %, green 10 %, shadow mirror 5 %)"):
            for name in DEPLOYMENT_FILES:
                result = cp.kubectl("apply", "-f", str(harness.REPO / "examples" / "endpoint" / name))
                self.detail(
                    result.stdout.strip() + ("\n" + result.stderr.strip() if result.stderr.strip() else "")
                )

        with self.step(
            "Pods: injected by the webhook, placed by the extender, started by the kubelet stand-in"
        ):
            self._wait_for_pods(running)
            self._show_pods()

        with self.step(f"Scoring through the router: {self.options.requests} requests with a key"):
            self._score()

    # -- steps ----------------------------------------------------------------------------------

    def _apply_catalog(self, running: Running) -> None:
        cp, repo = self.cp, harness.REPO
        cp.kubectl("apply", "-f", str(repo / "instance_types" / "crd.yaml"))
        cp.kubectl("wait", "--for=condition=Established", "crd/instancetypes.ml.example", "--timeout=60s")
        cp.kubectl("apply", "-f", str(repo / "examples" / "catalog" / "instancetypes.yaml"))
        names = cp.kubectl("get", "instancetypes", "-o", "jsonpath={.items[*].metadata.name}").stdout
        self.detail(f"InstanceTypes: {names}")
        models = running.workdir / "models"
        built = subprocess.run(
            [sys.executable, str(repo / "examples" / "models" / "build.py"), "--out", str(models)],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise StepFailed(f"examples/models/build.py failed:\n{built.stderr[-2000:]}")
        self.detail(f"model files built into {models} ({built.stdout.splitlines()[0]})")
        self._apply_storage(models)
        for name in ("registrations.yaml", "iris-4.yaml"):
            cp.kubectl("apply", "-n", NAMESPACE, "-f", str(repo / "examples" / "catalog" / name))
        self.detail(
            "registrations: iris:3 (nearest centroid) and iris:4 (scikit-learn), ConfigMaps in default"
        )
        self.keys = (secrets.token_hex(16), secrets.token_hex(16))
        cp.kubectl(
            "create",
            "secret",
            "generic",
            f"{ENDPOINT}-keys",
            "-n",
            NAMESPACE,
            f"--from-literal=primary={self.keys[0]}",
            f"--from-literal=secondary={self.keys[1]}",
        )
        self.detail(f"Secret {ENDPOINT}-keys: two fresh random keys")

    def _apply_storage(self, models: Path) -> None:
        """examples/models/storage.yaml with the PersistentVolume pointed at the built files and
        reachable from every demo node."""
        docs = [
            d for d in yaml.safe_load_all((harness.REPO / "examples/models/storage.yaml").read_text()) if d
        ]
        for doc in docs:
            if doc["kind"] == "PersistentVolume":
                doc["spec"]["local"]["path"] = str(models)
                terms = doc["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
                terms[0]["matchExpressions"][0]["values"] = [n[0] for n in NODES]
        # The volume first, and Available, then the claim: a claim that reaches the binder before
        # its volume waits for the binder's next resync (15 s).
        phase = {"PersistentVolume": ("pv", ""), "PersistentVolumeClaim": ("pvc", NAMESPACE)}
        wanted = {"PersistentVolume": "Available", "PersistentVolumeClaim": "Bound"}
        for doc in sorted(docs, key=lambda d: d["kind"] != "PersistentVolume"):
            self.cp.kubectl("apply", "-f", "-", input=json.dumps(doc))
            kind, namespace = phase[doc["kind"]]
            where = ["-n", namespace] if namespace else []
            self.cp.wait_for(
                lambda kind=kind, where=where, doc=doc: (
                    self.cp.kubectl(
                        "get", kind, doc["metadata"]["name"], *where, "-o", "jsonpath={.status.phase}"
                    ).stdout
                    in (wanted[doc["kind"]], "Bound")
                ),
                timeout=60,
                message=f"{doc['kind']} {doc['metadata']['name']} to be {wanted[doc['kind']]}",
            )
        self.detail("PersistentVolumeClaim inferplane-models: Bound (local volume over the built files)")

    def _spawn(self, running: Running, name: str, argv: list[str]) -> ManagedProcess:
        child = ManagedProcess(name, argv, running.workdir / "logs" / f"{name}.log").start()
        running.children.append(child)
        return child

    def _wait_http(self, child: ManagedProcess, url: str, context: ssl.SSLContext | None = None) -> None:
        def up() -> bool:
            if child.poll() is not None:
                raise StepFailed(f"{child.name} exited with {child.poll()}:\n{child.tail()}")
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return response.status == 200

        try:
            self.cp.wait_for(up, timeout=60, message=f"{child.name} at {url}")
        except TimeoutError as exc:
            raise StepFailed(f"{exc}\n{child.tail()}") from exc

    def _start_webhook(self, running: Running) -> None:
        cp = self.cp
        pair = cp.ca.issue_loopback_server("webhook", "inferplane-webhook")
        port = free_port()
        child = self._spawn(
            running,
            "webhook",
            [
                *inferplane_argv(),
                "webhook",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--tls-cert-file",
                str(pair.cert_file),
                "--tls-key-file",
                str(pair.key_file),
                "--kubeconfig",
                str(cp.kubeconfig),
                "--scheduler-name",
                SCHEDULER,
                "--init-image",
                INIT_IMAGE,
            ],
        )
        self._wait_http(
            child, f"https://127.0.0.1:{port}/readyz", ssl.create_default_context(cafile=str(cp.ca_file))
        )
        try:
            configurations = webhook_configurations(self.helm, f"https://127.0.0.1:{port}", cp.ca.cert_pem)
        except RenderError as exc:
            raise StepFailed(str(exc)) from exc
        cp.kubectl("apply", "-f", "-", input=json.dumps(configurations))
        self.detail(f"https://127.0.0.1:{port}: /mutate-pod (fail closed), /validate-workload (advice)")

    def _start_scheduler(self, running: Running) -> None:
        cp = self.cp
        port = free_port()
        child = self._spawn(
            running,
            "extender",
            [
                *inferplane_argv(),
                "extender",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--kubeconfig",
                str(cp.kubeconfig),
            ],
        )
        self._wait_http(child, f"http://127.0.0.1:{port}/readyz")
        self.recorder = DecisionRecorder(f"http://127.0.0.1:{port}").start()
        running.stops.append(self.recorder.stop)
        config = yaml.safe_load(
            (harness.REPO / "examples" / "scheduler" / "inferplane-scheduler.yaml").read_text()
        )
        config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{self.recorder.port}"
        config["leaderElection"]["resourceNamespace"] = "kube-system"
        cp.start_scheduler(config, name=SCHEDULER)
        self.detail(
            f"extender http://127.0.0.1:{port} (filter, prioritize, bind), kube-scheduler {SCHEDULER}"
        )

    def _start_router(self, running: Running) -> None:
        port = free_port()
        child = self._spawn(
            running,
            "router",
            [
                *inferplane_argv(),
                "router",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--kubeconfig",
                str(self.cp.kubeconfig),
                "--namespace",
                NAMESPACE,
                "--no-autoscale",
                "--lease-namespace",
                NAMESPACE,
                "--identity",
                "demo-router",
            ],
        )
        self._wait_http(child, f"http://127.0.0.1:{port}/healthz")
        self.router_port = port
        self.detail(f"POST http://127.0.0.1:{port}/api/v1/endpoint/{ENDPOINT}/score")

    def _wait_for_pods(self, running: Running) -> None:
        from kubernetes import client as k8s

        core = k8s.CoreV1Api(self.cp.api())
        apps = k8s.AppsV1Api(self.cp.api())
        wanted = {d.metadata.name: d.spec.replicas for d in apps.list_namespaced_deployment(NAMESPACE).items}
        deadline = time.monotonic() + PODS_READY_TIMEOUT_S
        while True:
            pods = [
                p for p in core.list_namespaced_pod(NAMESPACE).items if p.metadata.deletion_timestamp is None
            ]
            ready = [p for p in pods if _ready(p)]
            per = {name: sum(1 for p in ready if p.metadata.name.startswith(name + "-")) for name in wanted}
            if all(per[name] >= count for name, count in wanted.items()):
                self.ready_pods = sorted(ready, key=lambda p: p.metadata.name)
                return
            if time.monotonic() > deadline:
                raise StepFailed("pods not Ready in time:\n" + self._diagnose(core, pods, wanted))
            time.sleep(0.5)

    def _diagnose(self, core: Any, pods: list[Any], wanted: dict[str, int]) -> str:
        """Which part of the chain stopped: no pod (webhook, controller), not bound (scheduler,
        extender), not running or not ready (kubelet stand-in, model-init, serve)."""
        lines = []
        for name in wanted:
            mine = [p for p in pods if p.metadata.name.startswith(name + "-")]
            if not mine:
                events = core.list_namespaced_event(NAMESPACE).items
                related = [e.message for e in events if (e.involved_object.name or "").startswith(name)]
                lines.append(f"{name}: no pod created (webhook or controller): {related[-3:]}")
            for pod in mine:
                if not pod.spec.node_name:
                    conditions = [c.message for c in pod.status.conditions or [] if c.message]
                    lines.append(f"{pod.metadata.name}: not scheduled: {conditions}")
                elif not _ready(pod):
                    logs = ""
                    for container in ("model-init", "score"):
                        path = self.kubelet.pod_log(NAMESPACE, pod.metadata.name, container)
                        if path.exists():
                            logs += f"\n      {container}: " + "\n      ".join(
                                path.read_text().splitlines()[-6:]
                            )
                    lines.append(
                        f"{pod.metadata.name} on {pod.spec.node_name}: phase {pod.status.phase}, "
                        f"{pod.status.reason or ''} {pod.status.message or ''}{logs}"
                    )
        return "\n".join(lines)

    def _show_pods(self) -> None:
        api = self.cp.api()
        for pod in self.ready_pods:
            raw = api.sanitize_for_serialization(pod)
            summary = describe_pod(raw)
            decision = self.recorder.decision(NAMESPACE, pod.metadata.name)
            summary["extender"] = (
                {
                    "passed": decision.passed,
                    "refused": decision.refused,
                    "scores": decision.scores,
                }
                if decision
                else None
            )
            self.pods.append(summary)
            self.detail(format_pod(summary))

    def _score(self) -> None:
        deployments = {p["deployment"]: p for p in self.pods}
        traffic, mirrors = shares(deployments)
        connection = http.client.HTTPConnection("127.0.0.1", self.router_port, timeout=10)
        path = f"/api/v1/endpoint/{ENDPOINT}/score"
        body = json.dumps({"data": SAMPLE}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.keys[0]}"}

        def post(with_headers: dict[str, str]) -> tuple[int, str, bytes, float]:
            """One request on the kept-alive connection; once more on a new one if the router had
            closed it (it may close after an error answer, as any server may close an idle one)."""
            for attempt in (1, 2):
                started = time.monotonic()
                try:
                    connection.request("POST", path, body=body, headers=with_headers)
                    response = connection.getresponse()
                    data = response.read()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    connection.close()
                    if attempt == 2:
                        raise
                    continue
                deployment = response.getheader("azureml-model-deployment") or "?"
                return response.status, deployment, data, (time.monotonic() - started) * 1000
            raise AssertionError("not reached")

        # The router learns of the pods through its watch: wait until it answers, uncounted.
        self.cp.wait_for(
            lambda: post(headers)[0] == 200, timeout=60, message="the router to route endpoint iris"
        )
        before = self._mirror_counts(mirrors)
        no_key = post({"Content-Type": "application/json"})[0]
        self.detail(f"without a key: HTTP {no_key}")
        answers, examples = [], {}
        for _ in range(self.options.requests):
            status, deployment, data, ms = post(headers)
            parsed = _json(data)
            correct = status == 200 and isinstance(parsed, dict) and parsed.get("predictions") == SPECIES
            answers.append(Answer(deployment, status, correct, ms))
            examples.setdefault(deployment, (status, data.decode(errors="replace")[:200]))
        connection.close()
        mirrored = self._settled_mirror_counts(mirrors, before)
        self.outcome = summarise(answers, traffic, mirrors, mirrored)
        for deployment, (status, text) in sorted(examples.items()):
            self.detail(f"{deployment} answered HTTP {status}: {text}")
        self.detail(format_outcome(self.outcome))

    def _mirror_counts(self, mirrors: dict[str, int]) -> dict[str, int]:
        """/score requests each mirror deployment's pods have answered, from their own metrics."""
        counts = {}
        for name in mirrors:
            total = 0
            for pod in self.pods:
                if pod["deployment"] == name:
                    total += _scored(f"http://{pod['ip']}:{pod['port']}/metrics")
            counts[name] = total
        return counts

    def _settled_mirror_counts(self, mirrors: dict[str, int], before: dict[str, int]) -> dict[str, int]:
        """Mirror copies are sent after the live answer: wait until the counts stop moving."""
        last: dict[str, int] | None = None
        for _ in range(20):
            now = self._mirror_counts(mirrors)
            if now == last:
                break
            last = now
            time.sleep(0.5)
        return {name: (last or {}).get(name, 0) - before.get(name, 0) for name in mirrors}

    def _keep(self, running: Running) -> None:
        url = f"http://127.0.0.1:{self.router_port}/api/v1/endpoint/{ENDPOINT}/score"
        self.say("\nLeft running (--keep). Try:")
        self.say(
            f"  curl -s -H 'Authorization: Bearer {self.keys[0]}' -H 'Content-Type: application/json' \\"
        )
        self.say(f"    -d '{json.dumps({'data': SAMPLE[:1]})}' {url}")
        self.say(f"  KUBECONFIG={self.cp.kubeconfig} {self.cp.binaries['kubectl']} get pods -o wide")
        self.say(f"  logs: {running.workdir}/logs, pods: {running.workdir}/pods")
        self.say("Ctrl-C to stop everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)

    def _clean_up(self, running: Running) -> None:
        """Stop everything started, newest first, the control plane last; remove the work directory
        unless the user named it."""
        for stop in reversed(running.stops):
            with contextlib.suppress(Exception):
                stop()
        for child in reversed(running.children):
            child.stop(grace=10)
        if running.stop_control_plane is not None:
            with contextlib.suppress(Exception):
                running.stop_control_plane()
        if self.options.workdir is None:
            shutil.rmtree(running.workdir, ignore_errors=True)


# -- pure helpers ---------------------------------------------------------------------------------


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _scored(url: str) -> int:
    """The sum of inferplane_scoring_requests_total on one scoring server."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("inferplane_scoring_requests_total{")
        )
    )


def _require_examples_dependencies() -> None:
    from inferplane.errors import UserError

    for module in ("sklearn", "joblib"):
        try:
            __import__(module)
        except ImportError:
            raise UserError(
                f"the example model iris:4 needs {module}: pip install -e '.[examples]' (or make install)"
            ) from None
