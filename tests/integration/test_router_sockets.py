"""Both of the router's sockets per exchange send small writes at once (TCP_NODELAY).

Nagle's algorithm holds a small segment back while an earlier one is unacknowledged; with delayed
ACKs on the other side that is up to 40 ms (Linux) added to an answer. uvloop sets TCP_NODELAY on
every TCP transport, and so does asyncio's own loop; this pins it for the client side and the pod
side alike, in case the loop or the way connections are made ever changes.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import uvloop
import yaml

from router.app import Options, RouterApp
from router.stubserver import StubState, start_stub


def nodelay(transport: asyncio.BaseTransport | None) -> int:
    assert transport is not None
    sock = transport.get_extra_info("socket")
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_client_and_pod_sockets_have_nodelay(tmp_path: Path) -> None:
    async def main() -> None:
        stub = await start_stub("127.0.0.2", 0, StubState("blue"))
        port = stub.sockets[0].getsockname()[1]
        routes = tmp_path / "routes.yaml"
        routes.write_text(
            yaml.safe_dump(
                {
                    "endpoints": {
                        "e": {"auth": "none", "deployments": {"d": {"backends": [f"127.0.0.2:{port}"]}}}
                    }
                }
            )
        )
        app = RouterApp(Options(host="127.0.0.1", port=0, routes=str(routes)))
        await app.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
            writer.write(b"POST /api/v1/endpoint/e/score HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            clients = list(app.connections)
            pods = [conn for idle in app.router.upstreams._idle.values() for conn in idle]
            assert clients and pods
            assert [nodelay(c.transport) for c in clients] == [1] * len(clients)
            assert [nodelay(p.transport) for p in pods] == [1] * len(pods)
            writer.close()
        finally:
            await app.stop()
            stub.close()

    uvloop.run(main())
