"""The link proxy really cuts, and a healed link carries traffic again."""

from __future__ import annotations

import asyncio

from jepsen.proxy import ProxyNet


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while data := await r.read(1024):
        w.write(data)
        await w.drain()
    w.close()


async def _roundtrip(port: int, timeout: float) -> bytes | None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"ping")
        await w.drain()
        return await asyncio.wait_for(r.read(4), timeout)
    except TimeoutError:
        return None
    finally:
        w.close()


async def test_cut_blackholes_and_heal_restores() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    net = ProxyNet()
    port = await net.add("n1", "n2", target)
    try:
        assert await _roundtrip(port, 2) == b"ping"
        net.cut_between(["n1"], ["n2"], one_way=True)
        assert await _roundtrip(port, 0.5) is None
        net.heal()
        assert await _roundtrip(port, 2) == b"ping"
        net.set("n1", "n2", delay=0.3)
        t0 = asyncio.get_running_loop().time()
        assert await _roundtrip(port, 2) == b"ping"
        assert asyncio.get_running_loop().time() - t0 >= 0.3
    finally:
        await net.close()
        server.close()
