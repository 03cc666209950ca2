"""inferplane.localcluster's own logic, checked without a cluster (fast, no binaries needed).

A wrong version pin, a certificate without the right SAN or a scheduler
config that reuses the default lease would each show up in the demo and the
e2e tests as a confusing timeout; here they fail by name.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest
from cryptography import x509

from inferplane.localcluster import build
from inferplane.localcluster.egress import ConnectProxy
from inferplane.localcluster.nodes import node_manifest, node_resources, taints_patch
from inferplane.localcluster.pki import CertificateAuthority
from inferplane.localcluster.schedulers import scheduler_config, scheduler_rbac


def test_staging_modules_are_pinned_to_the_kubernetes_release() -> None:
    go_mod = (build.KUBERNETES.module_dir / "go.mod").read_text()
    version = build.KUBERNETES.version()
    staging = re.findall(r"^\s*(k8s\.io/\S+) => (\S+) (v\S+)$", go_mod, re.MULTILINE)
    assert len(staging) > 25, "every staging module needs a replace directive"
    expected = "v0." + version.removeprefix("v1.")
    for module, target, target_version in staging:
        assert target == module
        assert target_version == expected, f"{module} is at {target_version}, want {expected}"


def test_ldflags_stamp_the_version_into_server_and_client() -> None:
    flags = build.KUBERNETES.ldflags("v1.35.8")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.35.8" in flags
        assert f"-X {pkg}.gitMajor=1" in flags
        assert f"-X {pkg}.gitMinor=35" in flags


def test_cache_layout_follows_inferplane_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERPLANE_CACHE", str(tmp_path))
    assert build.KUBERNETES.bin_dir("v1.2.3") == tmp_path / "k8s" / "v1.2.3" / "bin"
    assert build.HELM.bin_dir("v3.0.0") == tmp_path / "helm" / "v3.0.0" / "bin"


def test_issued_certificates_chain_to_the_ca_with_their_names(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("srv", "srv", dns_names=("probe.ns.svc",), ip_addresses=("127.0.0.1",), server=True)
    client = ca.issue("adm", "admin", organizations=("system:masters",), client=True)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    srv = x509.load_pem_x509_certificate(server.cert_file.read_bytes())
    adm = x509.load_pem_x509_certificate(client.cert_file.read_bytes())
    srv.verify_directly_issued_by(ca_cert)
    adm.verify_directly_issued_by(ca_cert)
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["probe.ns.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    orgs = adm.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    assert server.key_file.stat().st_mode & 0o077 == 0, "private keys must not be world-readable"


def test_a_loopback_serving_certificate_names_what_local_clients_dial(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    pair = ca.issue_loopback_server("cm", "kube-controller-manager")
    cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_scheduler_config_gets_its_own_lease_and_keeps_the_callers() -> None:
    given = {"profiles": [{"schedulerName": "x"}]}
    cfg = scheduler_config(given, "x-sched", Path("/k"))
    assert cfg["kind"] == "KubeSchedulerConfiguration"
    assert cfg["clientConnection"]["kubeconfig"] == "/k"
    assert cfg["leaderElection"] == {
        "leaderElect": True,
        "resourceNamespace": "kube-system",
        "resourceName": "x-sched",
    }
    assert "leaderElection" not in given, "the caller's dict must not be modified"
    own = scheduler_config({"leaderElection": {"resourceName": "mine"}}, "x", Path("/k"))
    assert own["leaderElection"]["resourceName"] == "mine"


def test_scheduler_rbac_allows_renewing_only_its_own_lease() -> None:
    items = scheduler_rbac("s", "user-s", "kube-system", "lease-s")
    role = next(i for i in items if i["kind"] == "Role")
    renew = next(r for r in role["rules"] if "update" in r["verbs"])
    assert renew["resourceNames"] == ["lease-s"]
    bound = {i["roleRef"]["name"] for i in items if i["kind"] == "ClusterRoleBinding"}
    assert bound == {"system:kube-scheduler", "system:volume-scheduler"}
    assert all(i["subjects"] == [{"kind": "User", "name": "user-s", "apiGroup": "rbac.authorization.k8s.io"}]
               for i in items if "subjects" in i)  # fmt: skip


def test_fake_node_shape() -> None:
    assert node_manifest("n1", {"a": "b"})["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert "nvidia.com/gpu" not in node_resources("8", "32Gi", "110")
    assert node_resources("8", "32Gi", "110", gpus=2, gpu_resource="amd.com/gpu")["amd.com/gpu"] == "2"
    assert taints_patch([]) == [{"op": "add", "path": "/spec/taints", "value": []}]


def _connect(proxy: ConnectProxy, target: str) -> tuple[socket.socket, bytes]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect(str(proxy.socket_path))
    conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(1)
        if not chunk:
            break
        head += chunk
    return conn, head


def test_egress_proxy_tunnels_a_routed_cluster_ip_to_loopback_only(tmp_path: Path) -> None:
    echo = socket.create_server(("127.0.0.1", 0))

    def serve_once() -> None:
        peer, _ = echo.accept()
        with peer:
            peer.sendall(peer.recv(100).upper())

    threading.Thread(target=serve_once, daemon=True).start()
    proxy = ConnectProxy(tmp_path / "egress.sock", tmp_path / "egress.log")
    try:
        proxy.route("10.96.0.10", 443, echo.getsockname()[1])
        conn, head = _connect(proxy, "10.96.0.10:443")
        with conn:
            assert head.startswith(b"HTTP/1.1 200")
            conn.sendall(b"hello")
            assert conn.recv(100) == b"HELLO"
        refused, head = _connect(proxy, "10.96.0.11:443")
        refused.close()
        assert head.startswith(b"HTTP/1.1 502"), "an unrouted address is never dialled"
    finally:
        proxy.stop()
        echo.close()
