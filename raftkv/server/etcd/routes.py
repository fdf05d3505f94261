"""Route table and HTTP plumbing of the etcd gateway (unary and streaming RPCs).

grpc-gateway details live here: POST only (405 otherwise), 404 `Not Found` for
unrouted paths under /v3 and /v3beta, Grpc-Metadata headers on every answer, body
decode errors as 400 for unary calls but 500/Unknown for streams, and one HTTP chunk
per stream message. Typed errors from the services become etcd's codes and messages
here (errors.etcd_status), in one place; v3lock/v3election wrap theirs as Unknown.

Bounds: a unary body is read up to the gRPC message limit (in base64 JSON) within the
body timeout; a stream's request messages are each bounded the same way, and the
streams a member serves are capped (--max-streams).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from raftkv.errors import LeaseNotFound, RaftkvError
from raftkv.server.etcd import cluster, election, kv, lease, lock, maintenance
from raftkv.server.etcd.errors import (
    MSG_AUTH_NOT_ENABLED,
    RPC_HEADERS,
    EtcdError,
    GrpcStatus,
    text_response,
)
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import decode_one, obj, request_object, to_int, unb64
from raftkv.server.etcd.watch import WatchStream
from raftkv.server.http import (
    BodyTimeout,
    BodyTooLarge,
    BodyUnreadable,
    StreamGate,
    cors_headers,
    dumps,
    read_body,
)
from raftkv.service import Services

Unary = Callable[[Gateway, dict[str, Any]], Awaitable[dict[str, Any]]]
PREFIXES = ("/v3", "/v3beta")
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("etcd_gateway", Gateway)
MSG_TOO_LARGE = "etcdserver: request is too large"


async def _auth_disabled(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """Every auth RPC: raftkv has no auth yet, which etcd reports as this error."""
    perm = obj(body.get("perm"))
    unb64(perm.get("key"), "key")
    unb64(perm.get("range_end"), "range_end")
    unb64(body.get("key"), "key")
    unb64(body.get("range_end"), "range_end")
    raise EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_AUTH_NOT_ENABLED)


async def _auth_disable(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """AuthDisable with auth disabled (always, here): a no-op that succeeds, as in etcd."""
    return {"header": gw.header()}


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
    **{f"/auth/{rpc}": _auth_disabled for rpc in ("enable", "authenticate")},
    "/auth/disable": _auth_disable,
    **{
        f"/auth/user/{rpc}": _auth_disabled
        for rpc in ("add", "get", "list", "delete", "changepw", "grant", "revoke")
    },
    **{
        f"/auth/role/{rpc}": _auth_disabled
        for rpc in ("add", "get", "list", "delete", "grant", "revoke")
    },
}
# v3lock and v3election return their errors wrapped: gRPC Unknown, as etcd.
WRAPPED = {"/lock/lock", "/election/campaign", "/election/proclaim", "/election/resign"}


def as_etcd(e: BaseException, wrapped: bool = False) -> EtcdError:
    if isinstance(e, EtcdError):
        return e
    if isinstance(e, RaftkvError):
        err = EtcdError.of(e)
        if wrapped and isinstance(e, LeaseNotFound):
            return EtcdError(GrpcStatus.UNKNOWN, err.message)
        return err
    if isinstance(e, BodyTooLarge):
        return EtcdError(GrpcStatus.RESOURCE_EXHAUSTED, MSG_TOO_LARGE)
    if isinstance(e, BodyTimeout):
        return EtcdError(GrpcStatus.CANCELLED, "raftkv: request body not received in time")
    if isinstance(e, BodyUnreadable):
        return EtcdError(GrpcStatus.INVALID_ARGUMENT, str(e), decode=True)
    raise e


CAUGHT = (EtcdError, RaftkvError, BodyTooLarge, BodyTimeout, BodyUnreadable)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _post_only(handler: Handler) -> Handler:
    """The gate every RPC route shares: a CORS preflight for OPTIONS, etcd's plain
    405 for anything but POST, then the route itself."""

    async def gated(req: web.Request) -> web.StreamResponse:
        if req.method == "OPTIONS":
            return web.Response(status=200, headers=cors_headers(req))
        if req.method != "POST":
            return text_response(req, 405, "Method Not Allowed\n")
        return await handler(req)

    return gated


async def _unless_gone(req: web.Request, call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    """Await `call`; cancel it and return None if the client disconnects first.

    aiohttp does not cancel handlers on disconnect, and a blocked call must not outlive
    its client: a v3lock waiter would otherwise acquire the lock for nobody."""
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


class Routes:
    def __init__(self, gw: Gateway, gate: StreamGate) -> None:
        self.gw = gw
        self.gate = gate
        self.limits = gw.s.limits

    def _json(self, req: web.Request, body: dict[str, Any]) -> web.Response:
        headers = {**cors_headers(req), **RPC_HEADERS, "Content-Type": "application/json"}
        return web.Response(body=dumps(body), headers=headers)

    async def _body(self, req: web.Request) -> bytes:
        return await read_body(req, self.limits.max_body_bytes, self.limits.request_body_timeout)

    def unary(self, path: str, fn: Unary) -> Handler:
        wrapped = path in WRAPPED

        async def handler(req: web.Request) -> web.StreamResponse:
            try:
                body = request_object(await self._body(req))
                out = await _unless_gone(req, fn(self.gw, body))
                if out is None:
                    return web.Response(status=499)  # nobody is listening any more
                return self._json(req, out)
            except CAUGHT as e:
                return await as_etcd(e, wrapped).respond(req)

        return _post_only(handler)

    async def _messages(self, req: web.Request) -> AsyncIterator[dict[str, Any]]:
        """JSON messages of a streaming request body, newline-separated or
        concatenated; a message still incomplete past the body limit is refused."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buf, pos, eof = "", 0, False
        fresh = True  # something arrived that may complete a message
        limit = self.limits.max_body_bytes
        while True:
            try:
                if not fresh:
                    raise EOFError  # nothing new can end a message: do not re-parse
                v, end = decode_one(buf, pos)
            except EOFError:
                if eof:
                    return
                v = None
            except EtcdError:
                if eof or len(buf) - pos > limit:
                    raise
                v = None  # possibly a message cut by a read boundary: read on
            if v is not None:
                pos = end
                yield obj(v)
                continue
            if len(buf) - pos > limit:
                raise EtcdError(GrpcStatus.RESOURCE_EXHAUSTED, MSG_TOO_LARGE, decode=True)
            chunk = await req.content.readany()
            if not chunk:
                eof = fresh = True
                buf = buf[pos:] + dec.decode(b"", final=True)
            else:
                fresh = b"}" in chunk or b"]" in chunk
                buf = buf[pos:] + dec.decode(chunk)
            pos = 0

    async def _open_stream(self, req: web.Request) -> tuple[web.StreamResponse, Any]:
        """A chunked response whose head goes out with the first message, as in etcd."""
        headers = {**cors_headers(req), **RPC_HEADERS, "Content-Type": "application/json"}
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        lock = asyncio.Lock()

        async def send(msg: dict[str, Any]) -> None:
            data = dumps({"result": msg}) + b"\n"
            async with lock:
                if not resp.prepared:
                    await resp.prepare(req)
                await resp.write(data)  # one write = one chunk: never split a message

        return resp, send

    def _streaming(self, handler: Handler) -> Handler:
        """Count the stream against --max-streams for as long as it is open."""

        async def counted(req: web.Request) -> web.StreamResponse:
            encoding = req.headers.get("Content-Encoding", "").strip().lower()
            if encoding not in ("", "identity"):
                refused = BodyUnreadable(f"Content-Encoding {encoding[:32]!r} is not supported")
                return await as_etcd(refused).respond(req)
            try:
                self.gate.enter()
            except RaftkvError as e:
                return await as_etcd(e).respond(req)
            try:
                return await handler(req)
            finally:
                self.gate.leave()

        return _post_only(counted)

    async def _stream_error(self, req: web.Request, e: EtcdError) -> web.StreamResponse:
        """A stream whose first message does not decode: grpc-gateway answers Unknown."""
        return await EtcdError(GrpcStatus.UNKNOWN, e.message, decode=True).respond(req)

    async def watch(self, req: web.Request) -> web.StreamResponse:
        msgs = self._messages(req)
        try:
            first: dict[str, Any] | None = await anext(msgs)
            if first is not None:
                WatchStream.check(first)
        except StopAsyncIteration:
            first = None
        except EtcdError as e:
            return await self._stream_error(req, e)
        resp, send = await self._open_stream(req)
        ws = WatchStream(self.gw, send)
        try:
            if first is not None:
                await ws.handle(first)
                try:
                    async for m in msgs:
                        await ws.handle(m)
                except EtcdError:
                    pass  # grpc-gateway stops forwarding at a bad message; stream stays
            while not _closing(req):
                if any(t.done() and t.exception() for t in ws.tasks.values()):
                    break
                await asyncio.sleep(0.25)
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await ws.close()
        return resp

    async def keepalive(self, req: web.Request) -> web.StreamResponse:
        msgs = self._messages(req)
        try:
            first: dict[str, Any] | None = await anext(msgs)
            if first is not None:
                to_int(first.get("ID"), "ID")
        except StopAsyncIteration:
            first = None
        except EtcdError as e:
            return await self._stream_error(req, e)
        resp, send = await self._open_stream(req)
        try:
            if first is not None:
                await send(await lease.keepalive_once(self.gw, first))
                async for m in msgs:
                    await send(await lease.keepalive_once(self.gw, m))
        except (EtcdError, RaftkvError):
            pass  # a bad later message or a lost leader ends the stream, as in etcd
        except (ConnectionResetError, ConnectionError):
            return resp
        if not resp.prepared:
            await resp.prepare(req)
        await resp.write_eof()
        return resp

    async def snapshot(self, req: web.Request) -> web.StreamResponse:
        try:
            request_object(await self._body(req))
            messages = maintenance.snapshot_messages(self.gw)
        except CAUGHT as e:
            return await as_etcd(e).respond(req)
        resp, send = await self._open_stream(req)
        try:
            async for m in messages:
                await send(m)
        except (ConnectionResetError, ConnectionError):
            return resp
        except RaftkvError:
            return resp
        await resp.write_eof()
        return resp

    async def observe(self, req: web.Request) -> web.StreamResponse:
        """Server streaming: open until the client goes away, like watch."""
        try:
            body = request_object(await self._body(req))
        except CAUGHT as e:
            return await as_etcd(e).respond(req)
        resp, send = await self._open_stream(req)
        task = asyncio.ensure_future(election.observe(self.gw, body, send))
        try:
            while not _closing(req) and not task.done():
                await asyncio.sleep(0.25)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return resp


def _closing(req: web.Request) -> bool:
    t = req.transport
    return t is None or t.is_closing()


def _not_found(text: str) -> Handler:
    async def handler(req: web.Request) -> web.StreamResponse:
        return text_response(req, 404, text)

    return handler


async def _version(req: web.Request) -> web.StreamResponse:
    if req.method != "GET":
        return text_response(req, 405, "Method Not Allowed\n")
    return web.Response(
        body=dumps(maintenance.version_body()),
        headers={**cors_headers(req), "Content-Type": "application/json"},
    )


def mount(app: web.Application, services: Services, gate: StreamGate) -> Gateway:
    """Add etcd's /v3 and /v3beta routes and /version; call after the native routes."""
    gw = Gateway(services)
    app[GATEWAY_KEY] = gw
    routes = Routes(gw, gate)
    r = app.router
    for prefix in PREFIXES:
        for path, fn in UNARY.items():
            r.add_route("*", prefix + path, routes.unary(path, fn))
        r.add_route("*", prefix + "/watch", routes._streaming(routes.watch))
        r.add_route("*", prefix + "/lease/keepalive", routes._streaming(routes.keepalive))
        r.add_route("*", prefix + "/maintenance/snapshot", routes._streaming(routes.snapshot))
        r.add_route("*", prefix + "/election/observe", routes._streaming(routes.observe))
        r.add_route("*", prefix + "/{tail:.*}", _not_found("Not Found\n"))
    r.add_route("*", "/v3alpha/{tail:.*}", _not_found("404 page not found\n"))
    r.add_route("*", "/version", _version)
    return gw
