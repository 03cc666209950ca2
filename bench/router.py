"""Router throughput per core and added latency, beside HAProxy doing the same job on the same box.

    python bench/router.py [--seconds 5] [--connections 32] [--candidates]

Everything runs on loopback and stops by itself: two stub scorers (127.0.0.2 and 127.0.0.3, a raw
asyncio server cheap enough not to be the bottleneck), our router, and HAProxy (Debian `haproxy`)
configured for the same 90/10 weighted split and the same bearer-key check. The load generator is
`wrk` (Debian `wrk`), one thread, keep-alive, a 22-byte JSON body.

Two measurements per target, all in the same run:
  peak   closed loop with --connections; requests/s divided by the CPU seconds the proxy process used
         per wall second, i.e. requests/s per core of proxy (the stubs and wrk share the box);
  half   paced at half of our router's peak (wrk's Lua `delay`), p50/p99 compared with calling the
         scorer directly at the same rate: the latency the hop adds.
`--candidates` also measures an aiohttp proxy (low-level server + ClientSession, uvloop) doing the
same forwarding, the alternative that `router.server` explains not choosing.
Targets (issue 5): >= 5,000 req/s per router core; added p99 <= 2 ms at half load; >= 0.2 of
HAProxy's per-core throughput. Printed beside the baselines; nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# This file is itself named router.py: put the repository, not bench/, first on the path.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from router.testing import Process, free_port, start_router, start_stub, wait_for_port  # noqa: E402

KEY = "bench-key"
BODY = '{"data": [[1, 2, 3, 4]]}'

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
%(pacing)s
"""
PACING = "function delay() return %.3f end"

HAPROXY_CFG = """
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend score
    bind 127.0.0.1:%(port)d
    http-request deny deny_status 401 unless { req.hdr(authorization) -m str "Bearer %(key)s" }
    default_backend split
backend split
    balance random
    server blue %(blue)s weight 90 maxconn 256
    server green %(green)s weight 10 maxconn 256
"""


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_cores: float | None  # the proxy's CPU use while loaded, in cores

    @property
    def per_core(self) -> float | None:
        return self.rps / self.cpu_cores if self.cpu_cores else None


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str,
    seconds: float,
    connections: int,
    workdir: Path,
    rate: float | None = None,
    pid: int | None = None,
) -> Result:
    pacing = PACING % (connections * 1000.0 / rate) if rate else ""
    script = workdir / f"wrk-{free_port()}.lua"
    script.write_text(WRK_SCRIPT % {"body": BODY, "key": KEY, "pacing": pacing})
    cpu_before = cpu_seconds(pid) if pid else 0.0
    started = time.monotonic()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    wall = time.monotonic() - started
    cores = (cpu_seconds(pid) - cpu_before) / wall if pid else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = {p: _ms(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        print(f"  warning: non-2xx answers from {url}:\n{out}", file=sys.stderr)
    return Result(rps, percentiles["50"], percentiles["99"], cores)


def start_haproxy(blue: str, green: str, workdir: Path) -> Process:
    port = free_port()
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG % {"port": port, "key": KEY, "blue": blue, "green": green})
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, proc=proc)
    return Process(proc, "127.0.0.1", port)


def start_aiohttp_candidate(upstreams: list[str]) -> Process:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-aiohttp", str(port), *upstreams])
    wait_for_port("127.0.0.1", port, proc=proc)
    return Process(proc, "127.0.0.1", port)


def serve_aiohttp(port: int, upstreams: list[str]) -> None:
    """The candidate we did not pick: aiohttp's low-level server and ClientSession, same split and key."""
    import random

    import aiohttp
    import uvloop
    from aiohttp import web

    async def main() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        bearer = f"Bearer {KEY}"

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            if request.headers.get("Authorization") != bearer:
                return web.Response(status=401)
            upstream = upstreams[0] if random.random() < 0.9 else upstreams[1]
            async with session.post(
                f"http://{upstream}/score",
                data=await request.read(),
                headers={"Content-Type": "application/json"},
            ) as answer:
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type="application/json"
                )

        server = web.Server(handler)
        runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        while True:
            await asyncio.sleep(3600)

    import asyncio

    uvloop.run(main())


def report(
    name: str, peak: Result, half: Result, direct_half: Result, haproxy_per_core: float | None
) -> None:
    per_core = f"{peak.per_core:9.0f}" if peak.per_core else "        -"
    ratio = f"{peak.per_core / haproxy_per_core:6.2f}" if peak.per_core and haproxy_per_core else "     -"
    print(
        f"{name:<18}{peak.rps:10.0f}{(peak.cpu_cores or 0):8.2f}{per_core}{ratio}"
        f"{half.p50_ms:9.2f}{half.p99_ms:9.2f}{half.p50_ms - direct_half.p50_ms:+10.2f}"
        f"{half.p99_ms - direct_half.p99_ms:+10.2f}"
    )


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{a:.2f}" for a in averages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--candidates", action="store_true")
    parser.add_argument("--serve-aiohttp", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_aiohttp:
        serve_aiohttp(int(args.serve_aiohttp[0]), args.serve_aiohttp[1:])
        return 0
    missing = [tool for tool in ("wrk", "haproxy") if shutil.which(tool) is None]
    if missing:
        print(f"bench/router.py needs the Debian packages: {' '.join(missing)} (apt-get install -y ...)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    load_before = os.getloadavg()
    blue, green = start_stub("127.0.0.2", "blue"), start_stub("127.0.0.3", "green")
    processes: list[Process] = [blue, green]
    try:
        router = start_router(
            {
                "endpoints": {
                    "bench": {
                        "keys": {"primary": KEY},
                        "deployments": {
                            "blue": {
                                "traffic": 90,
                                "max-concurrent-requests-per-pod": 256,
                                "backends": [blue.address],
                            },
                            "green": {
                                "traffic": 10,
                                "max-concurrent-requests-per-pod": 256,
                                "backends": [green.address],
                            },
                        },
                    }
                }
            },
            workdir,
            ["--log-level", "warning"],
        )
        processes.append(router)
        haproxy = start_haproxy(blue.address, green.address, workdir)
        processes.append(haproxy)
        targets = {
            "direct (scorer)": (f"http://{blue.address}/score", None),
            "inferplane router": (f"http://{router.address}/api/v1/endpoint/bench/score", router.proc.pid),
            "haproxy": (f"http://{haproxy.address}/score", haproxy.proc.pid),
        }
        if args.candidates:
            candidate = start_aiohttp_candidate([blue.address, green.address])
            processes.append(candidate)
            targets["aiohttp candidate"] = (f"http://{candidate.address}/score", candidate.proc.pid)
        c, s = args.connections, args.seconds
        for url, pid in targets.values():  # warm up connections and caches
            wrk(url, 1, c, workdir, pid=pid)
        peaks = {name: wrk(url, s, c, workdir, pid=pid) for name, (url, pid) in targets.items()}
        rate = peaks["inferplane router"].rps / 2
        halves = {name: wrk(url, s, 16, workdir, rate=rate, pid=pid) for name, (url, pid) in targets.items()}
        cores = Path("/proc/cpuinfo").read_text().count("processor")
        print(
            f"\nrouter benchmark: wrk 1 thread, {c} connections, {s:.0f} s per run, 90/10 split + key "
            f"check; half load = {rate:.0f} req/s over 16 connections; {cores} cores"
        )
        # Everything here shares the box with whatever else runs on it: say how busy it was.
        print(f"load average (1, 5, 15 min) at start {_load(load_before)}, at end {_load(os.getloadavg())}\n")
        print(
            f"{'target':<18}{'peak r/s':>10}{'cores':>8}{'r/s/core':>9}{'xHAP':>6}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'+p50 ms':>10}{'+p99 ms':>10}"
        )
        hap = peaks["haproxy"].per_core
        for name in targets:
            report(name, peaks[name], halves[name], halves["direct (scorer)"], hap)
        ours = peaks["inferplane router"]
        print(
            f"\ntargets: >= 5000 r/s/core: {ours.per_core:.0f}; added p99 <= 2 ms at half load: "
            f"{halves['inferplane router'].p99_ms - halves['direct (scorer)'].p99_ms:+.2f} ms; "
            f">= 0.2 x HAProxy per core: {(ours.per_core or 0) / (hap or 1):.2f}"
        )
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
