"""The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

There is no kubelet. Nodes are API objects whose status we write ourselves,
which is all the scheduler, the controllers and our webhook/extender ever see
of a machine. The node-lifecycle controller is switched off so those Nodes
stay Ready without heartbeats; everything else runs as in a real cluster:
RBAC and Node authorization, admission webhooks, service-account tokens,
Deployments -> ReplicaSets -> Pods, and any number of extra kube-schedulers.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from . import build
from .egress import ConnectProxy, egress_selector_config
from .nodes import node_manifest, node_resources, ready_status, status_patch, taints_patch
from .pki import CertificateAuthority, KeyPair, write_service_account_keys
from .process import ManagedProcess, ProcessDied, free_port, wait_for
from .schedulers import Scheduler, scheduler_config, scheduler_rbac

T = TypeVar("T")

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_ISSUER = "https://kubernetes.default.svc.cluster.local"
APISERVER_SANS_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# 127.0.0.1 is what everything dials; 10.96.0.1 is the `kubernetes` Service
# IP that the apiserver allocates from SERVICE_CIDR for in-cluster clients.
APISERVER_SANS_IP = ("127.0.0.1", "10.96.0.1")
# Short node-monitor timings: if the node-lifecycle controller ever ran by
# mistake, fake Nodes would turn NotReady within seconds, not minutes.
NODE_MONITOR_PERIOD_S = 1
NODE_MONITOR_GRACE_PERIOD_S = 3
STARTUP_TIMEOUT_S = 120.0
KUBECTL_TIMEOUT_S = 120.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message carries the logs."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike CalledProcessError, str() shows its output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, creds: KeyPair) -> Path:
    """A kubeconfig with file references (JSON is valid YAML, so no dumper needed)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(creds.cert_file), "client-key": str(creds.key_file)},
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _https_ok(url: str, ca_file: Path, creds: KeyPair | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if creds:
        ctx.load_cert_chain(str(creds.cert_file), str(creds.key_file))
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return resp.status == 200 and resp.read().strip() == b"ok"


def _http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


class ControlPlane:
    """A throwaway cluster on 127.0.0.1 whose files all live under ``workdir``."""

    def __init__(self, workdir: Path, binaries: Mapping[str, Path] | None = None) -> None:
        self.workdir = workdir
        self.binaries = dict(binaries) if binaries is not None else build.ensure_kubernetes()
        self.version = build.KUBERNETES.version()
        self.pki_dir = workdir / "pki"
        self.log_dir = workdir / "logs"
        self.ca = CertificateAuthority(self.pki_dir)
        self.ca_file = self.ca.cert_file
        self.apiserver_port = free_port()
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.admin = self.ca.issue(
            "admin", "inferplane-e2e-admin", organizations=("system:masters",), client=True
        )
        self.kubeconfig = write_kubeconfig(
            workdir / "admin.kubeconfig", self.server, self.ca_file, "admin", self.admin
        )
        self.processes: list[ManagedProcess] = []
        self.schedulers: dict[str, Scheduler] = {}
        self._api: k8s.ApiClient | None = None
        self.egress: ConnectProxy | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start etcd, the apiserver and the controller-manager; wait until each serves."""
        try:
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
        except BaseException as err:
            logs = self.log_tails()
            self.stop()
            if isinstance(err, Exception):
                raise ControlPlaneError(f"control plane failed to start: {err}\n\n{logs}") from err
            raise
        return self

    def stop(self) -> None:
        """Stop everything this object started, newest first. Idempotent."""
        for proc in reversed(self.processes):
            proc.stop()
        if self.egress is not None:
            self.egress.stop()
            self.egress = None
        if self._api is not None:
            self._api.close()
            self._api = None

    def _spawn(self, name: str, argv: Sequence[str | Path]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.log_dir / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.etcd_url = client_url
        etcd = self._spawn(
            "etcd",
            [
                self.binaries["etcd"],
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
        )
        wait_for(
            lambda: _http_json(f"{client_url}/health").get("health") == "true",
            STARTUP_TIMEOUT_S,
            "etcd /health",
            watch=[etcd],
        )

    def _start_apiserver(self) -> None:
        serving = self.ca.issue(
            "apiserver",
            "kube-apiserver",
            dns_names=APISERVER_SANS_DNS,
            ip_addresses=APISERVER_SANS_IP,
            server=True,
        )
        sa_private, sa_public = write_service_account_keys(self.pki_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.egress = ConnectProxy(self.workdir / "egress.sock", self.log_dir / "egress-proxy.log")
        egress_config = self.workdir / "egress-selector.json"
        egress_config.write_text(egress_selector_config(self.egress.socket_path))
        self.service_account_key = sa_private
        apiserver = self._spawn(
            "kube-apiserver",
            [
                self.binaries["kube-apiserver"],
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.pki_dir / 'apiserver-generated'}",
                f"--tls-cert-file={serving.cert_file}",
                f"--tls-private-key-file={serving.key_file}",
                f"--client-ca-file={self.ca_file}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                f"--service-account-issuer={SERVICE_ISSUER}",
                f"--service-account-key-file={sa_public}",
                f"--service-account-signing-key-file={sa_private}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # The `kubernetes` Service cannot list 127.0.0.1 as its endpoint
                # (loopback is invalid there); don't retry that forever in the log.
                "--endpoint-reconciler-type=none",
                # Traffic to Services (webhooks, aggregated APIs) goes through
                # our CONNECT proxy: see egress.py and route_service_to_loopback.
                f"--egress-selector-config-file={egress_config}",
                "--profiling=false",
                "--v=1",
            ],
        )
        wait_for(
            lambda: _https_ok(f"{self.server}/readyz", self.ca_file, self.admin),
            STARTUP_TIMEOUT_S,
            "kube-apiserver /readyz",
            interval=0.5,
            watch=[apiserver],
        )

    def _start_controller_manager(self) -> None:
        port = free_port()
        identity = self.ca.issue("controller-manager", "system:kube-controller-manager", client=True)
        serving = self.ca.issue_loopback_server("controller-manager-serving", "kube-controller-manager")
        kubeconfig = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig",
            self.server,
            self.ca_file,
            "system:kube-controller-manager",
            identity,
        )
        manager = self._spawn(
            "kube-controller-manager",
            [
                self.binaries["kube-controller-manager"],
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={serving.cert_file}",
                f"--tls-private-key-file={serving.key_file}",
                # Nodes here have no kubelet to heartbeat; this controller
                # would mark them NotReady and evict their pods.
                "--controllers=*,-node-lifecycle-controller",
                f"--node-monitor-period={NODE_MONITOR_PERIOD_S}s",
                f"--node-monitor-grace-period={NODE_MONITOR_GRACE_PERIOD_S}s",
                f"--service-account-private-key-file={self.service_account_key}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={self.ca_file}",
                f"--cluster-signing-key-file={self.ca.key_file}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        wait_for(
            lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", self.ca_file),
            STARTUP_TIMEOUT_S,
            "kube-controller-manager /healthz",
            interval=0.5,
            watch=[manager],
        )
        # The serviceaccount controller creating `default` proves the manager
        # is not just up but acting on the cluster with working credentials.
        core = k8s.CoreV1Api(self.api())
        wait_for(
            lambda: core.read_namespaced_service_account("default", "default"),
            STARTUP_TIMEOUT_S,
            "the default ServiceAccount (kube-controller-manager at work)",
            interval=0.5,
            watch=[manager],
        )

    # -- diagnostics -------------------------------------------------------------

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every component's log, for a failure report."""
        parts = []
        for proc in self.processes:
            state = "running" if proc.running() else f"exited {proc.returncode}"
            parts.append(f"----- {proc.name} ({state}) {proc.log_path} -----\n{proc.tail(lines)}")
        if self.egress is not None and self.egress.events:
            events = "\n".join(self.egress.events[-lines:])
            parts.append(f"----- egress proxy {self.egress.log_path} -----\n{events}")
        return "\n".join(parts)

    def check_running(self) -> None:
        """Raise if any component has exited."""
        for proc in self.processes:
            proc.check_running()

    # -- clients -----------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster as cluster-admin."""
        argv = [
            str(self.binaries["kubectl"]),
            f"--kubeconfig={self.kubeconfig}",
            # Discovery cache per cluster: never read or write ~/.kube.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def api(self) -> k8s.ApiClient:
        """An official-client ApiClient authenticated as cluster-admin (shared, cached)."""
        if self._api is None:
            self._api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, message: str = "condition") -> T:
        """Like :func:`process.wait_for`, failing at once if a component dies."""
        return wait_for(predicate, timeout, message, watch=self.processes)

    # -- nodes -------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        cpu: str = "8",
        memory: str = "32Gi",
        gpus: int = 0,
        gpu_resource: str = "nvidia.com/gpu",
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        pods: str = "110",
    ) -> dict[str, Any]:
        """Create a Ready Node with the given capacity, as a kubelet would register it.

        The TaintNodesByCondition admission plugin gives every new Node a
        ``node.kubernetes.io/not-ready`` taint that the node-lifecycle
        controller lifts once the kubelet reports Ready. That controller is
        off here, so after writing the Ready status we set the taints to
        exactly ``taints``, the way the controller would leave them.
        """
        core = k8s.CoreV1Api(self.api())
        core.create_node(node_manifest(name, labels))
        resources = node_resources(cpu, memory, pods, gpus, gpu_resource)
        core.patch_node_status(name, status_patch(ready_status(name, resources, self.version)))
        core.patch_node(name, taints_patch(taints))
        return self.api().sanitize_for_serialization(core.read_node(name))

    # -- services ---------------------------------------------------------------

    def route_service_to_loopback(
        self, namespace: str, service: str, local_ports: int | Mapping[str, int]
    ) -> str:
        """Make the apiserver reach ``service`` at 127.0.0.1, for webhooks and aggregated APIs.

        A webhook registered the production way (``clientConfig.service``, TLS
        checked against ``<service>.<namespace>.svc``) then reaches a server
        running on this machine: the apiserver dials the Service's
        ClusterIP through the egress proxy, which connects to the local port.
        The Service is created (no selector, port 443 named ``https``) if it
        does not exist. ``local_ports`` is the local port, or a map from
        Service port name to local port. Returns the ClusterIP.
        """
        assert self.egress is not None, "the control plane is not running"
        core = k8s.CoreV1Api(self.api())
        try:
            svc = core.read_namespaced_service(service, namespace)
        except k8s.ApiException as err:
            if err.status != 404:
                raise
            svc = core.create_namespaced_service(
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": service},
                    "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
                },
            )
        ports = {p.name or "": p.port for p in svc.spec.ports}
        if isinstance(local_ports, int):
            if len(ports) != 1:
                raise ValueError(f"service {namespace}/{service} has ports {sorted(ports)}: map each one")
            local_ports = {next(iter(ports)): local_ports}
        unknown = set(local_ports) - set(ports)
        if unknown:
            raise ValueError(f"service {namespace}/{service} has no port named {sorted(unknown)}")
        for name, local_port in local_ports.items():
            self.egress.route(svc.spec.cluster_ip, ports[name], local_port)
        return str(svc.spec.cluster_ip)

    # -- schedulers --------------------------------------------------------------

    def start_scheduler(self, config: Mapping[str, Any], name: str) -> Scheduler:
        """Run another kube-scheduler with ``config`` (a KubeSchedulerConfiguration).

        It gets its own identity, bound to the stock ``system:kube-scheduler``
        and ``system:volume-scheduler`` roles plus a Role for its own lease
        (the stock role may only renew the lease named ``kube-scheduler``),
        which is how a second scheduler is deployed for real. Leader election
        defaults to on, with a lease called ``name`` in kube-system; the call
        returns once the lease is held, so the scheduler is actually working.
        """
        if name in self.schedulers and self.schedulers[name].process.running():
            raise ValueError(f"a scheduler named {name!r} is already running")
        user = f"inferplane-e2e:scheduler:{name}"
        creds = self.ca.issue(f"scheduler-{name}", user, client=True)
        serving = self.ca.issue_loopback_server(f"scheduler-{name}-serving", f"kube-scheduler-{name}")
        kubeconfig = write_kubeconfig(
            self.workdir / f"scheduler-{name}.kubeconfig", self.server, self.ca_file, user, creds
        )
        cfg = scheduler_config(config, name, kubeconfig)
        election = cfg["leaderElection"]
        self._grant_scheduler_rbac(name, user, election["resourceNamespace"], election["resourceName"])
        config_file = self.workdir / f"scheduler-{name}.json"
        config_file.write_text(json.dumps(cfg, indent=2) + "\n")
        port = free_port()
        proc = ManagedProcess(
            f"kube-scheduler-{name}",
            [
                self.binaries["kube-scheduler"],
                f"--config={config_file}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={serving.cert_file}",
                f"--tls-private-key-file={serving.key_file}",
                "--v=2",
            ],
            self.log_dir / f"kube-scheduler-{name}.log",
        ).start()
        scheduler = Scheduler(name, proc, config_file, kubeconfig, port)
        self.schedulers[name] = scheduler
        self.processes.append(proc)
        try:
            wait_for(
                lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", self.ca_file),
                STARTUP_TIMEOUT_S,
                f"kube-scheduler {name} /healthz",
                interval=0.5,
                watch=[proc],
            )
            if election["leaderElect"]:
                coordination = k8s.CoordinationV1Api(self.api())
                wait_for(
                    lambda: (
                        coordination.read_namespaced_lease(
                            election["resourceName"], election["resourceNamespace"]
                        ).spec.holder_identity
                    ),
                    STARTUP_TIMEOUT_S,
                    f"kube-scheduler {name} to hold its lease",
                    interval=0.5,
                    watch=[proc],
                )
        except (TimeoutError, ProcessDied) as err:
            proc.stop()
            raise ControlPlaneError(f"{err}\n\n{proc.tail()}") from err
        return scheduler

    def _grant_scheduler_rbac(self, name: str, user: str, lease_ns: str, lease: str) -> None:
        items = scheduler_rbac(name, user, lease_ns, lease)
        self.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )
        # RBAC is enforced from the authorizer's informer cache: give it a
        # moment so the scheduler's first requests are not refused.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = self.kubectl(
                "auth", "can-i", "update", f"leases/{lease}", "-n", lease_ns, f"--as={user}", check=False
            )
            if probe.stdout.strip() == "yes":
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"RBAC for scheduler {name} did not take effect: {probe.stderr}")
