"""etcd's v3 gRPC API: the third face (parse -> service -> encode), served by grpclib
on the client port beside HTTP/1.1 (see server/sniff.py).

`build(services, gate)` returns a grpclib Server whose protocol factory the client
port's sniffer hands HTTP/2 connections to; nothing here listens by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Handler as ConnHandler
from grpclib.server import Server, Stream

from raftkv.errors import RaftkvError
from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.etcdpb import v3election_pb2 as epb
from raftkv.server.etcd.errors import EtcdError
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.grpc import hpack_cache
from raftkv.server.grpc.streams import Streams
from raftkv.server.grpc.unary import UNARY, Rpc
from raftkv.server.grpc.wire import GRPC_OVERHEAD, recv_one, status_of, to_dict, to_pb
from raftkv.server.http import StreamGate
from raftkv.service import Services

log = structlog.get_logger("raftkv.grpc")
Func = Callable[[Stream[Any, Any]], Awaitable[None]]


class EtcdApi:
    """grpclib's servable: a method table built from UNARY and Streams."""

    def __init__(self, services: Services, gate: StreamGate) -> None:
        self.gw = Gateway(services)
        self.prom = services.node.prom
        self.limit = services.limits.max_request_bytes + GRPC_OVERHEAD
        self.streams = Streams(self.gw, gate, self.limit)

    def _unary(self, path: str, rpc: Rpc) -> Func:
        gw, limit = self.gw, self.limit
        prom = self.prom
        operation = path.rsplit(".", 1)[-1]  # "KV/Range"

        async def handle(stream: Stream[Any, Any]) -> None:
            t0 = time.monotonic()
            code = "OK"
            try:
                req = await recv_one(stream, rpc.request, limit)
                try:
                    if rpc.direct is not None:
                        out = await rpc.direct(gw, req)
                    else:
                        assert rpc.json is not None
                        out = to_pb(await rpc.json(gw, to_dict(req)), rpc.response)
                except (EtcdError, RaftkvError) as e:
                    raise status_of(e, rpc.wrapped) from None
                await stream.send_message(out)
            except GRPCError as e:
                code = e.status.name
                raise
            finally:
                prom.request("grpc", operation, code, time.monotonic() - t0)

        handle.__qualname__ = path
        return handle

    def __mapping__(self) -> dict[str, Handler]:
        table = {
            path: Handler(
                self._unary(path, rpc), Cardinality.UNARY_UNARY, rpc.request, rpc.response
            )
            for path, rpc in UNARY.items()
        }
        s = self.streams
        table["/etcdserverpb.Watch/Watch"] = Handler(
            s.watch, Cardinality.STREAM_STREAM, pb.WatchRequest, pb.WatchResponse
        )
        table["/etcdserverpb.Lease/LeaseKeepAlive"] = Handler(
            s.keepalive,
            Cardinality.STREAM_STREAM,
            pb.LeaseKeepAliveRequest,
            pb.LeaseKeepAliveResponse,
        )
        table["/etcdserverpb.Maintenance/Snapshot"] = Handler(
            s.snapshot, Cardinality.UNARY_STREAM, pb.SnapshotRequest, pb.SnapshotResponse
        )
        table["/v3electionpb.Election/Observe"] = Handler(
            s.observe, Cardinality.UNARY_STREAM, epb.LeaderRequest, epb.LeaderResponse
        )
        return table


class _Methods(dict[str, Handler]):
    """The method table, answering a path no handler serves as grpc-go does (etcd's
    wording) instead of grpclib's "Method not found". grpclib looks up with .get."""

    def get(self, path: str, default: Any = None) -> Any:  # type: ignore[override]
        found = super().get(path)
        if found is not None:
            return found
        service, _, method = path.lstrip("/").rpartition("/")
        text = f"unknown service {service}"
        if any(p.startswith(f"/{service}/") for p in self):
            text = f"unknown method {method} for service {service}"

        async def unknown(stream: Stream[Any, Any]) -> None:
            raise GRPCError(Status.UNIMPLEMENTED, text)

        return Handler(unknown, Cardinality.UNARY_UNARY, None, None)


class _Protocol(H2Protocol):
    """grpclib's HTTP/2 protocol with h2's HPACK coder pair swapped for the caching one
    (hpack_cache.py: -13% server CPU per unary call, measured on a member)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        hpack_cache.install(self.connection._connection)


class _Server(Server):
    def _protocol_factory(self) -> H2Protocol:
        """grpclib's own factory (pinned in pyproject.toml), building `_Protocol`."""
        self.__gc_step__()
        handler = ConnHandler(
            self._mapping, self._codec, self._status_details_codec, self.__dispatch__
        )
        self._handlers.add(handler)
        return _Protocol(handler, self._config, self._h2_config)


def build(services: Services, gate: StreamGate) -> Server:
    server = _Server([EtcdApi(services, gate)])
    server._mapping = _Methods(server._mapping)  # grpclib is pinned (pyproject.toml)
    return server


async def shutdown(server: Server, grace: float) -> None:
    """Cancel every running RPC and wait up to `grace` for them to end. (grpclib's own
    close() insists on the listener it did not start: the sniffer owns the port.)"""
    handlers = list(server._handlers)
    for h in handlers:
        h.close()
    if handlers:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(h.wait_closed() for h in handlers)), grace)


__all__ = ["GRPCError", "build", "shutdown"]
