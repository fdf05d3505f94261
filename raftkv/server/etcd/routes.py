"""Route table and HTTP plumbing of the etcd gateway (unary and streaming RPCs).

grpc-gateway details live here: POST only (405 otherwise), 404 `Not Found` for
unrouted paths under /v3 and /v3beta, CORS + Grpc-Metadata headers on every answer,
body decode errors as 400 for unary calls but 500/Unknown for streams, and one HTTP
chunk per stream message.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from raftkv.node.node import Node, UnavailableError
from raftkv.server.etcd import cluster, election, kv, lease, lock, maintenance
from raftkv.server.etcd.errors import (
    CORS_HEADERS,
    MSG_AUTH_NOT_ENABLED,
    RPC_HEADERS,
    EtcdError,
    GrpcStatus,
    text_response,
)
from raftkv.server.etcd.gateway import Gateway, unavailable
from raftkv.server.etcd.jsonpb import decode_one, dumps, obj, request_object, to_int, unb64
from raftkv.server.etcd.watch import WatchStream
from raftkv.storage.errors import MvccError

Unary = Callable[[Gateway, dict[str, Any]], Awaitable[dict[str, Any]]]
PREFIXES = ("/v3", "/v3beta")
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("etcd_gateway", Gateway)
JSON_HEADERS = {**RPC_HEADERS, "Content-Type": "application/json"}
MSG_TOO_LARGE = "etcdserver: request is too large"
MAX_REQUEST = 3 * 512 * 1024  # etcd's --max-request-bytes default (decoded request)
MAX_BODY = 16 * MAX_REQUEST  # bounds memory; the real limits are checked once decoded


async def _auth_disabled(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Every auth RPC: raftkv has no auth, which etcd reports as this error."""
    perm = obj(body.get("perm"))
    unb64(perm.get("key"), "key")
    unb64(perm.get("range_end"), "range_end")
    unb64(body.get("key"), "key")
    unb64(body.get("range_end"), "range_end")
    raise EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_AUTH_NOT_ENABLED)


UNARY: dict[str, Unary] = {
    "/kv/range": kv.kv_range,
    "/kv/put": kv.kv_put,
    "/kv/deleterange": kv.kv_delete,
    "/kv/txn": kv.kv_txn,
    "/kv/compaction": kv.kv_compact,
    "/lease/grant": lease.lease_grant,
    "/lease/revoke": lease.lease_revoke,
    "/lease/timetolive": lease.lease_timetolive,
    "/lease/leases": lease.lease_leases,
    "/kv/lease/revoke": lease.lease_revoke,
    "/kv/lease/timetolive": lease.lease_timetolive,
    "/kv/lease/leases": lease.lease_leases,
    "/maintenance/status": maintenance.status,
    "/maintenance/hash": maintenance.hash_,
    "/maintenance/alarm": maintenance.alarm,
    "/maintenance/defragment": maintenance.defragment,
    "/maintenance/transfer-leadership": cluster.transfer_leadership,
    "/cluster/member/list": cluster.member_list,
    "/cluster/member/add": cluster.member_add,
    "/cluster/member/remove": cluster.member_remove,
    "/cluster/member/update": cluster.member_update,
    "/cluster/member/promote": cluster.member_promote,
    "/lock/lock": lock.lock,
    "/lock/unlock": lock.unlock,
    "/election/campaign": election.campaign,
    "/election/proclaim": election.proclaim,
    "/election/leader": election.leader,
    "/election/resign": election.resign,
    **{f"/auth/{rpc}": _auth_disabled for rpc in ("enable", "disable", "authenticate")},
    **{
        f"/auth/user/{rpc}": _auth_disabled
        for rpc in ("add", "get", "list", "delete", "changepw", "grant", "revoke")
    },
    **{
        f"/auth/role/{rpc}": _auth_disabled
        for rpc in ("add", "get", "list", "delete", "grant", "revoke")
    },
}


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=dumps(body), headers=JSON_HEADERS)


def _as_etcd(e: Exception) -> EtcdError:
    if isinstance(e, EtcdError):
        return e
    if isinstance(e, MvccError):
        return EtcdError.from_mvcc(e)
    if isinstance(e, UnavailableError):
        return unavailable(e)
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return EtcdError(GrpcStatus.INVALID_ARGUMENT, MSG_TOO_LARGE)
    raise e


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _post_only(handler: Handler) -> Handler:
    """The gate every RPC route shares: a CORS preflight for OPTIONS, etcd's plain
    405 for anything but POST, then the route itself."""

    async def gated(req: web.Request) -> web.StreamResponse:
        if req.method == "OPTIONS":
            return _preflight()
        if req.method != "POST":
            return text_response(405, "Method Not Allowed\n")
        return await handler(req)

    return gated


def _preflight() -> web.Response:
    """etcd answers a CORS preflight itself: 200, empty, CORS headers only."""
    return web.Response(status=200, headers=CORS_HEADERS)


async def _read_body(req: web.Request) -> bytes:
    """The request body. etcd's size limits apply to the decoded request (kv.check_size)
    and base64 makes the JSON a third bigger, so the app's own HTTP body limit (which
    would refuse a 1.2 MB value etcd accepts) is bypassed here."""
    data = bytearray()
    while chunk := await req.content.read(1 << 16):
        data += chunk
        if len(data) > MAX_BODY:
            raise EtcdError(GrpcStatus.RESOURCE_EXHAUSTED, MSG_TOO_LARGE)
    return bytes(data)


async def _unless_gone(req: web.Request, call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    """Await `call`; cancel it and return None if the client disconnects first.

    aiohttp does not cancel handlers on disconnect, and a blocked call must not outlive
    its client: a v3lock waiter would otherwise acquire the lock for nobody (etcd's
    Mutex gives its slot back when the request context ends)."""
    task = asyncio.ensure_future(call)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.5)
        if done:
            return task.result()
        if _closing(req):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return None


def _unary(gw: Gateway, fn: Unary) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(req: web.Request) -> web.StreamResponse:
        try:
            body = request_object(await _read_body(req))
            out = await _unless_gone(req, fn(gw, body))
            if out is None:
                return web.Response(status=499)  # nobody is listening any more
            return _json(out)
        except (EtcdError, MvccError, UnavailableError, web.HTTPRequestEntityTooLarge) as e:
            return await _as_etcd(e).respond(req)

    return _post_only(handler)


async def _messages(req: web.Request) -> AsyncIterator[dict[str, Any]]:
    """JSON messages of a streaming request body, newline-separated or concatenated."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buf, pos, eof = "", 0, False
    while True:
        try:
            v, end = decode_one(buf, pos)
        except EOFError:
            if eof:
                return
            v = None
        except EtcdError:
            if eof:
                raise
            v = None  # possibly a message cut by a read boundary: read on, judge at EOF
        if v is not None:
            pos = end
            yield obj(v)
            continue
        chunk = await req.content.readany()
        if not chunk:
            eof = True
            buf += dec.decode(b"", final=True)
        else:
            buf = buf[pos:] + dec.decode(chunk)
            pos = 0


async def _stream_error(req: web.Request, e: EtcdError) -> web.StreamResponse:
    """A stream whose first message does not decode: grpc-gateway answers Unknown."""
    return await EtcdError(GrpcStatus.UNKNOWN, e.message, decode=True).respond(req)


async def _open_stream(req: web.Request) -> tuple[web.StreamResponse, Any]:
    """A chunked response whose head goes out with the first message, as in etcd."""
    resp = web.StreamResponse(headers=JSON_HEADERS)
    resp.enable_chunked_encoding()
    lock = asyncio.Lock()

    async def send(msg: dict[str, Any]) -> None:
        data = dumps({"result": msg}) + b"\n"
        async with lock:
            if not resp.prepared:
                await resp.prepare(req)
            await resp.write(data)  # one write = one chunk: never split a message

    return resp, send


def _closing(req: web.Request) -> bool:
    t = req.transport
    return t is None or t.is_closing()


def _watch(gw: Gateway) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(req: web.Request) -> web.StreamResponse:
        msgs = _messages(req)
        try:
            first: dict[str, Any] | None = await anext(msgs)
            if first is not None:
                WatchStream.check(first)
        except StopAsyncIteration:
            first = None
        except EtcdError as e:
            return await _stream_error(req, e)
        resp, send = await _open_stream(req)
        ws = WatchStream(gw, send)
        try:
            if first is not None:
                await ws.handle(first)
                try:
                    async for m in msgs:
                        await ws.handle(m)
                except EtcdError:
                    pass  # grpc-gateway stops forwarding at a bad message; stream stays
            while not _closing(req):
                failed = [t for t in ws.tasks.values() if t.done() and t.exception()]
                if failed:
                    break
                await asyncio.sleep(0.25)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await ws.close()
        return resp

    return _post_only(handler)


def _keepalive(gw: Gateway) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(req: web.Request) -> web.StreamResponse:
        msgs = _messages(req)
        try:
            first: dict[str, Any] | None = await anext(msgs)
            if first is not None:
                to_int(first.get("ID"), "ID")
        except StopAsyncIteration:
            first = None
        except EtcdError as e:
            return await _stream_error(req, e)
        resp, send = await _open_stream(req)
        try:
            if first is not None:
                await send(await lease.keepalive_once(gw, first))
                async for m in msgs:
                    await send(await lease.keepalive_once(gw, m))
        except EtcdError:
            pass  # a bad later message or a lost leader ends the stream, as in etcd
        except ConnectionResetError:
            return resp
        if not resp.prepared:
            await resp.prepare(req)
        await resp.write_eof()
        return resp

    return _post_only(handler)


def _snapshot(gw: Gateway) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(req: web.Request) -> web.StreamResponse:
        try:
            request_object(await _read_body(req))
        except EtcdError as e:
            return await e.respond(req)
        resp, send = await _open_stream(req)
        try:
            async for m in maintenance.snapshot_messages(gw):
                await send(m)
        except ConnectionResetError:
            return resp
        await resp.write_eof()
        return resp

    return _post_only(handler)


def _observe(gw: Gateway) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Server streaming: open until the client goes away, like watch."""

    async def handler(req: web.Request) -> web.StreamResponse:
        try:
            body = request_object(await _read_body(req))
        except EtcdError as e:
            return await e.respond(req)
        resp, send = await _open_stream(req)
        task = asyncio.ensure_future(election.observe(gw, body, send))
        try:
            while not _closing(req) and not task.done():
                await asyncio.sleep(0.25)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return resp

    return _post_only(handler)


def _not_found(text: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(req: web.Request) -> web.StreamResponse:
        return text_response(404, text)

    return handler


async def _version(req: web.Request) -> web.StreamResponse:
    if req.method != "GET":
        return text_response(405, "Method Not Allowed\n")
    return web.Response(
        body=dumps(maintenance.version_body()),
        headers={**CORS_HEADERS, "Content-Type": "application/json"},
    )


def mount(app: web.Application, node: Node) -> Gateway:
    """Add etcd's /v3 and /v3beta routes and /version; call after the native routes."""
    gw = Gateway(node)
    app[GATEWAY_KEY] = gw
    r = app.router
    for prefix in PREFIXES:
        for path, fn in UNARY.items():
            r.add_route("*", prefix + path, _unary(gw, fn))
        r.add_route("*", prefix + "/watch", _watch(gw))
        r.add_route("*", prefix + "/lease/keepalive", _keepalive(gw))
        r.add_route("*", prefix + "/maintenance/snapshot", _snapshot(gw))
        r.add_route("*", prefix + "/election/observe", _observe(gw))
        r.add_route("*", prefix + "/{tail:.*}", _not_found("Not Found\n"))
    r.add_route("*", "/v3alpha/{tail:.*}", _not_found("404 page not found\n"))
    r.add_route("*", "/version", _version)

    async def close(app: web.Application) -> None:
        await gw.close()

    app.on_cleanup.append(close)
    return gw
