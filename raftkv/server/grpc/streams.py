"""The streaming RPCs: Watch and LeaseKeepAlive (bidirectional), Snapshot and
Election.Observe (server streaming).

Each reuses the JSON gateway's stream logic (watch ids, replay batching, keepalive
answers) with a protobuf `send`. Sends on one HTTP/2 stream are serialized; a message
that cannot be written within `SLOW_SEND` (the client stopped reading and flow control
stopped us) ends the whole stream with Unavailable, which clientv3 answers by
reconnecting and resuming its watches from their last revision — a slow watcher
costs the member a bounded buffer, never unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from raftkv.errors import RaftkvError
from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.etcdpb import v3election_pb2 as epb
from raftkv.server.etcd import election, lease, maintenance
from raftkv.server.etcd.errors import EtcdError
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.watch import WatchStream
from raftkv.server.grpc.wire import recv, recv_one, status_of, to_dict, to_pb
from raftkv.server.http import StreamGate

SLOW_SEND = 15.0
MSG_SLOW = "raftkv: the client did not read its stream in time"
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Streams:
    def __init__(self, gw: Gateway, gate: StreamGate, limit: int) -> None:
        self.gw = gw
        self.gate = gate
        self.limit = limit  # largest request message

    def _sender(self, stream: Stream[Any, Any], cls: type[Message], broken: asyncio.Event) -> Send:
        lock = asyncio.Lock()

        async def send(body: dict[str, Any]) -> None:
            msg = to_pb(body, cls)
            async with lock:
                try:
                    await asyncio.wait_for(stream.send_message(msg), SLOW_SEND)
                except TimeoutError:
                    broken.set()
                    raise

        return send

    @contextlib.asynccontextmanager
    async def _counted(self) -> Any:
        try:
            self.gate.enter()
        except RaftkvError as e:
            raise status_of(e) from None
        try:
            yield
        finally:
            self.gate.leave()

    async def watch(self, stream: Stream[Any, Any]) -> None:
        async with self._counted():
            broken = asyncio.Event()
            ws = WatchStream(self.gw, self._sender(stream, pb.WatchResponse, broken))

            async def requests() -> None:
                while (m := await recv(stream, pb.WatchRequest, self.limit)) is not None:
                    with contextlib.suppress(EtcdError):  # as etcd: dropped, stream stays
                        await ws.handle(to_dict(m))

            reader = asyncio.ensure_future(requests())
            failed = asyncio.ensure_future(broken.wait())
            try:
                done, _ = await asyncio.wait({reader, failed}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done and reader.exception() is not None:
                    raise reader.exception()  # type: ignore[misc]
                # A client that half-closes keeps its watches, as in etcd.
                await failed
                raise GRPCError(Status.UNAVAILABLE, MSG_SLOW)
            finally:
                for t in (reader, failed):
                    t.cancel()
                await ws.close()

    async def keepalive(self, stream: Stream[Any, Any]) -> None:
        async with self._counted():
            broken = asyncio.Event()
            send = self._sender(stream, pb.LeaseKeepAliveResponse, broken)
            while (m := await recv(stream, pb.LeaseKeepAliveRequest, self.limit)) is not None:
                try:
                    await send(await lease.keepalive_once(self.gw, to_dict(m)))
                except (EtcdError, RaftkvError) as e:
                    raise status_of(e) from None
                except TimeoutError:
                    raise GRPCError(Status.UNAVAILABLE, MSG_SLOW) from None

    async def snapshot(self, stream: Stream[Any, Any]) -> None:
        await recv_one(stream, pb.SnapshotRequest, self.limit)
        async with self._counted():
            send = self._sender(stream, pb.SnapshotResponse, asyncio.Event())
            try:
                async for m in maintenance.snapshot_messages(self.gw):
                    await send(m)
            except (EtcdError, RaftkvError) as e:
                raise status_of(e) from None
            except TimeoutError:
                raise GRPCError(Status.UNAVAILABLE, MSG_SLOW) from None

    async def observe(self, stream: Stream[Any, Any]) -> None:
        req = await recv_one(stream, epb.LeaderRequest, self.limit)
        async with self._counted():
            send = self._sender(stream, epb.LeaderResponse, asyncio.Event())
            try:
                await election.observe(self.gw, to_dict(req), send)
            except (EtcdError, RaftkvError) as e:
                raise status_of(e, wrapped=True) from None
            except TimeoutError:
                raise GRPCError(Status.UNAVAILABLE, MSG_SLOW) from None
