"""An HTTP CONNECT proxy that is the apiserver's route to Services, ending on loopback.

A webhook registered by ``clientConfig.service`` is dialled at the Service's
ClusterIP, which only kube-proxy makes reachable, and Endpoints or
EndpointSlices may not name a loopback address. Production clusters without a
flat network solve the same problem with the apiserver's egress selector: the
"cluster" traffic is tunnelled through a CONNECT proxy (konnectivity). This
is that proxy, listening on a unix socket; it only ever connects to
127.0.0.1, at the port registered for the requested ClusterIP:port.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import socketserver
import tempfile
import threading
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 100


def egress_selector_config(socket_path: Path) -> str:
    """The EgressSelectorConfiguration that sends "cluster" traffic through the proxy."""
    return json.dumps(
        {
            "apiVersion": "apiserver.k8s.io/v1beta1",
            "kind": "EgressSelectorConfiguration",
            "egressSelections": [
                {
                    "name": "cluster",
                    "connection": {
                        "proxyProtocol": "HTTPConnect",
                        "transport": {"uds": {"udsName": str(socket_path)}},
                    },
                }
            ],
        },
        indent=2,
    )


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").split()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # headers: the target is all we need
        if len(request_line) != 3 or request_line[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        target = request_line[1]
        host, _, port = target.rpartition(":")
        local_port = self.server.proxy.routes.get((host.strip("[]"), int(port)))
        self.server.proxy.record(f"CONNECT {target} -> {local_port or 'no route'}")
        if local_port is None:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", local_port), timeout=5)
        except OSError as err:
            self.server.proxy.record(f"  dial 127.0.0.1:{local_port} failed: {err}")
            self.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            return
        upstream.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True)
            back.start()
            _pipe(self.connection, upstream)
            back.join()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    proxy: ConnectProxy


class ConnectProxy:
    """Routes ``CONNECT <clusterIP>:<port>`` to ``127.0.0.1:<local port>``."""

    def __init__(self, socket_path: Path, log_path: Path) -> None:
        self._tmpdir: str | None = None
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            self._tmpdir = tempfile.mkdtemp(prefix="inferplane-e2e-")
            socket_path = Path(self._tmpdir) / "egress.sock"
        self.socket_path = socket_path
        self.log_path = log_path
        self.routes: dict[tuple[str, int], int] = {}
        self.events: list[str] = []  # routes added and CONNECTs served, in order
        self._lock = threading.Lock()
        self._server = _Server(str(socket_path), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def route(self, cluster_ip: str, port: int, local_port: int) -> None:
        with self._lock:
            self.routes[(cluster_ip, port)] = local_port
        self.record(f"route {cluster_ip}:{port} -> 127.0.0.1:{local_port}")

    def record(self, line: str) -> None:
        with self._lock:
            self.events.append(line)
            with open(self.log_path, "a") as log:
                log.write(line + "\n")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.socket_path.unlink(missing_ok=True)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
