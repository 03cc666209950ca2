"""Start real routers and stub scorers as processes on loopback: for tests, the benchmark, a local try.

Each stub gets its own 127.0.0.x address, as each pod has its own IP, so a test can tell pods apart
by address and "a pod leaves" means exactly that address disappearing from the table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class Process:
    proc: subprocess.Popen
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stub(Process):
    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://{self.address}/stats", timeout=5) as answer:
            return orjson.loads(answer.read())


class Router(Process):
    routes: Path | None = None
    log_path: Path | None = None
    scheme = "http"

    def url(self, endpoint: str, deployment: str | None = None, namespace: str | None = None) -> str:
        scope = f"/namespaces/{namespace}" if namespace else ""
        base = f"{self.scheme}://{self.address}/api/v1{scope}/endpoint/{endpoint}"
        return f"{base}/deployment/{deployment}/score" if deployment else f"{base}/score"

    def log_lines(self) -> list[dict]:
        """The router's JSON log lines so far (anything else it printed is skipped)."""
        from inferplane.logs import read_lines

        assert self.log_path is not None
        return read_lines(self.log_path.read_bytes())

    def reroute(self, routes: dict) -> None:
        """Rewrite the routes file and have the router re-read it, as an operator would."""
        assert self.routes is not None
        self.routes.write_text(yaml.safe_dump(routes, sort_keys=False))
        self.proc.send_signal(signal.SIGHUP)

    def rss_kib(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_stub(
    host: str, name: str, delay_ms: float = 0.0, status: int = 200, port: int | None = None
) -> Stub:
    port = port or free_port(host)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router.stubserver",
            "--listen",
            f"{host}:{port}",
            "--name",
            name,
            "--delay-ms",
            str(delay_ms),
            "--status",
            str(status),
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(host, port, proc=proc)
    return Stub(proc, host, port)


def start_router(routes: dict, workdir: Path, extra: Sequence[str] = (), host: str = "127.0.0.1") -> Router:
    path = workdir / f"routes-{free_port()}.yaml"
    path.write_text(yaml.safe_dump(routes, sort_keys=False))  # in the order given: the first is the default
    port = free_port(host)
    log = open(workdir / f"router-{port}.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferplane.cli",
            "router",
            "--host",
            host,
            "--port",
            str(port),
            "--routes",
            str(path),
            "--drain-seconds",
            "5",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(host, port, proc=proc)
    except (RuntimeError, TimeoutError) as exc:  # say why, from the router's own words
        Process(proc, host, port).stop()
        output = (workdir / f"router-{port}.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{exc}; its output:\n{output}") from None
    router = Router(proc, host, port)
    router.routes = path
    router.log_path = workdir / f"router-{port}.log"
    if "--tls-cert-file" in extra:
        router.scheme = "https"
    return router


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()
