"""The workers' listening sockets behave like uvicorn's own: replies are not held back by
Nagle's algorithm (with it on, every small reply waited ~40 ms for the client's delayed ACK:
measured /health 48 ms with --workers 2 against 2.6 ms with one process)."""

import asyncio
import socket

import pytest

pytest.importorskip("fastapi")

from convir.server.workers import bind  # noqa: E402


def test_connections_accepted_on_worker_sockets_have_nagle_off():
    sockets = bind("127.0.0.1", 0, 2)
    try:
        assert len({s.getsockname()[1] for s in sockets}) == 1  # one port, two sockets
        nodelay = []

        async def main():
            def handler(reader, writer):
                sock = writer.get_extra_info("socket")
                nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                writer.close()

            servers = [await asyncio.start_server(handler, sock=s) for s in sockets]
            port = sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if nodelay:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            for server in servers:  # the kernel hands a connection to either socket
                server.close()

        asyncio.run(main())
        assert nodelay and nodelay[0] != 0
    finally:
        for s in sockets:
            s.close()
