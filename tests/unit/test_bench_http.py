"""The benchmark's HTTP/1.1 generator (raftkv/bench.py) phrases the gateway api as
etcd's v3 JSON gateway does and counts what the server answers, against a tiny
aiohttp server in the test's own loop."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp import web

from raftkv import bench
from raftkv.bench_grpc import VALUE


async def test_gateway_requests_and_counts() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        seen.append((request.path, body))
        key = base64.b64decode(str(body["key"]))
        return web.json_response({}, status=400 if key == b"bench/7" else 200)

    app = web.Application()
    app.router.add_post("/v3/kv/put", handle)
    app.router.add_post("/v3/kv/range", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        target = bench.gateway_target("127.0.0.1", port)
        t = await bench.run_load([target], "put", 4, 0.3)
        assert t.ok > 20 and t.ok + t.errors == len(seen)
        assert t.first_error in (None, "HTTP 400")
        path, body = seen[0]
        assert path == "/v3/kv/put" and base64.b64decode(str(body["value"])) == VALUE
        assert base64.b64decode(str(body["key"])).startswith(b"bench/")

        seen.clear()
        t = await bench.run_load([target], "get-serializable", 2, 0.2)
        assert t.ok > 10 and {p for p, _ in seen} == {"/v3/kv/range"}
        assert all(b["serializable"] is True for _, b in seen)
    finally:
        await runner.cleanup()


def test_api_option() -> None:
    with pytest.raises(SystemExit) as e:
        bench.main(["--api", "gateway,bogus"])
    assert e.value.code == 2
    assert bench.API_OF["etcd"] == ("gateway", "grpc")  # etcd has no /v1 API
