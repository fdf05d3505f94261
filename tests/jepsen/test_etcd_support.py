"""--db etcd plumbing without etcd: the sniffing proxy attributes a connection to its
sender by etcd's X-Server-From header and applies that link's faults only."""

from __future__ import annotations

import asyncio

from jepsen.proxy import SniffingNet


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while data := await r.read(1024):
        w.write(data)
        await w.drain()
    w.close()


async def _request(port: int, sender: str | None, timeout: float) -> bytes | None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /raft/stream HTTP/1.1\r\nHost: x\r\n"
    if sender:
        head += f"X-Server-From: {sender}\r\n".encode()
    head += b"\r\n"
    try:
        w.write(head)
        await w.drain()
        return await asyncio.wait_for(r.readexactly(len(head)), timeout)
    except TimeoutError:
        return None
    finally:
        w.close()


async def test_sniffing_proxy_cuts_one_source_only() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    ids = {"n1": "aa", "n2": "bb", "n3": "cc"}
    net = SniffingNet(0, ids)
    port = await net.add_inbound("n3", list(ids))
    net.set_target("n3", server.sockets[0].getsockname()[1])
    try:
        assert await _request(port, "aa", 2) is not None
        net.cut_between(["n1"], ["n3"], one_way=True)
        assert await _request(port, "aa", 0.5) is None  # n1 -> n3 is cut
        assert await _request(port, "bb", 2) is not None  # n2 -> n3 is not
        assert await _request(port, None, 2) is not None  # unattributed probes pass
        net.heal()
        assert await _request(port, "aa", 2) is not None
    finally:
        await net.close()
        server.close()
