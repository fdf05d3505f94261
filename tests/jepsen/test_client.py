"""The recording client sends each request exactly once: a server that dies after
reading a PUT must yield an unknown outcome, never a resend whose refusal would be
recorded as a definite failure."""

from __future__ import annotations

import asyncio

from jepsen.client import Http, write_outcome


async def test_put_is_never_resent_after_a_disconnect() -> None:
    seen: list[bytes] = []

    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await r.readuntil(b"\r\n\r\n"))
        w.close()  # request read (maybe applied), then the node "dies"

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = Http(2.0)
    try:
        for method in ("PUT", "DELETE", "GET"):
            seen.clear()
            rep = await http.request(method, f"http://127.0.0.1:{port}", "k", "", b"v")
            assert len(seen) == 1, f"{method} was sent {len(seen)} times"
            assert rep.kind == "reset", rep
        assert write_outcome(rep) == "info"
    finally:
        await http.close()
        server.close()
