"""What every benchmark here needs: a load generator that is not the bottleneck, CPU accounting for a
server's process tree, exact percentiles, and a throwaway TLS certificate.

The load generator is `wrk` (Debian `wrk`): C, epoll, one thread keeps thousands of requests per
second on loopback while using a fraction of one core, so on this 2-core box the server under test
keeps the other. A Python client would need about as much CPU per request as the server it measures.
wrk is closed-loop; a fixed offered rate is approximated with its Lua `delay()` hook (each connection
waits between requests, calibrated against the achieved rate) and the rate achieved is always
reported beside the target.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from inferplane import logs

WRK_SCRIPT = """
wrk.method = "POST"
local file = io.open("%(body_file)s", "rb")
local body = file:read("*a")
file:close()
local headers = {%(headers)s}
local path = "%(path)s"
function request()
  return wrk.format(nil, path, headers, body)
end
%(pacing)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"errors": %%d, "non2xx": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def require(tool: str, install: str) -> str:
    """The tool's path, or exit with the command that installs it."""
    found = shutil.which(tool)
    if not found:
        sys.exit(f"{tool} not found; install it with: {install}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of exact samples, not of histogram buckets."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def process_tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of `pid` and its live children (a gunicorn master and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass(frozen=True)
class Load:
    """What wrk saw: achieved rate and client-side latency (TLS, loopback and server included)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    non2xx: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(
    url: str,
    body_file: Path,
    *,
    seconds: float,
    connections: int,
    workdir: Path,
    headers: Mapping[str, str] | None = None,
    delay_ms: float | None = None,
) -> Load:
    """POST `body_file` to `url` for `seconds` over `connections` keep-alive connections, as fast as
    they go, or with each connection waiting `delay_ms` between its requests (see `paced`)."""
    scheme_host, _, path = url.partition("://")[2].partition("/")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    pacing = f"function delay() return {delay_ms:.3f} end" if delay_ms is not None else ""
    script = workdir / f"wrk-{time.monotonic_ns()}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "body_file": body_file,
            "headers": ", ".join(f'["{k}"] = "{v}"' for k, v in all_headers.items()),
            "path": "/" + path,
            "pacing": pacing,
        }
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    output = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result for {scheme_host}:\n{output}")
    raw = orjson.loads(line.removeprefix("RESULT "))
    return Load(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=raw["errors"],
        non2xx=raw["non2xx"],
    )


def paced(url: str, body_file: Path, *, rate: float, seconds: float, connections: int, workdir: Path) -> Load:
    """A run offering about `rate` requests/s: wrk has no rate option, so the per-connection delay
    is calibrated on two short runs (each cycle is the delay plus the response time), then used."""
    delay = connections * 1000.0 / rate
    for _ in range(2):
        trial = wrk(url, body_file, seconds=2, connections=connections, workdir=workdir, delay_ms=delay)
        if trial.rate <= 0:
            break
        # Cycle time now: connections*1000/trial.rate; the response time is that minus the delay.
        response_ms = max(0.0, connections * 1000.0 / trial.rate - delay)
        delay = max(0.0, connections * 1000.0 / rate - response_ms)
    return wrk(url, body_file, seconds=seconds, connections=connections, workdir=workdir, delay_ms=delay)


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A P-256 certificate for `host` and its key, by the openssl command (wrk does not verify it;
    Python clients trust the certificate itself, which is its own CA)."""
    require("openssl", "apt-get install openssl")
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def json_lines(path: Path, start: int = 0) -> tuple[list[dict], int]:
    """JSON objects on the lines of `path` from byte `start`, and the offset after the last line."""
    data = path.read_bytes()[start:]
    end = data.rfind(b"\n") + 1
    return logs.read_lines(data[:end]), start + end


def table(rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows)
