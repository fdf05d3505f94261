"""Persistent peer connections: one outbound TCP stream per peer, msgpack frames.

Each direction of a peer pair has its own long-lived connection (the dialler only
writes, the listener only reads), so there is no request/response coupling: Raft
is itself a message protocol and tolerates loss and reordering across reconnects.
Outgoing messages go into a bounded per-peer queue; when it is full they are
dropped (Raft retransmits), so a dead peer can never make the node run out of memory.
The writer drains everything queued into ONE frame per write (batching).

Snapshots (MessageType.SNAP) are special: the writer streams the state machine in
chunks after the message, then reports the outcome to the core via `report_snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from raftkv.raft.messages import Message, MessageType
from raftkv.transport import codec
from raftkv.transport.rpc import PeerRpc

log = structlog.get_logger(__name__)

QUEUE_SIZE = 4096
MAX_BATCH = 512


@dataclass
class PeerAddr:
    id: int
    host: str
    port: int


SnapshotSource = Callable[[], Iterator[bytes]]
# Called with the SNAP message and the file holding the streamed state machine.
SnapshotSink = Callable[[Message, Path], Awaitable[None]]


class _Peer:
    def __init__(self, t: PeerTransport, addr: PeerAddr) -> None:
        self.t = t
        self.addr = addr
        # Raft messages, or ready-made frames (peer calls).
        self.queue: asyncio.Queue[Message | bytes] = asyncio.Queue(QUEUE_SIZE)
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.dropped = 0

    def send(self, m: Message | bytes) -> bool:
        try:
            self.queue.put_nowait(m)
        except asyncio.QueueFull:
            self.dropped += 1
            if isinstance(m, Message) and m.type == MessageType.SNAP:
                self.t.report_snapshot(m.to, True)
            return False
        return True

    async def run(self) -> None:
        backoff = 0.05
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.addr.host, self.addr.port), 2.0
                )
                writer.write(codec.frame([codec.HELLO, self.t.hello]))
                await writer.drain()
                self.connected = True
                backoff = 0.05
                await self._pump(writer)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # Any failure means "reconnect": a dead peer task would silently cut
                # this link forever. (uvloop reports a write to a reset connection
                # as RuntimeError, not ConnectionResetError.)
                if self.connected:
                    self.t.log.info("peer disconnected", peer=self.addr.id, error=repr(e))
            finally:
                self.connected = False
                if writer is not None:
                    writer.close()
            # Messages queued while down are stale; Raft will resend what matters.
            while not self.queue.empty():
                m = self.queue.get_nowait()
                if isinstance(m, Message) and m.type == MessageType.SNAP:
                    self.t.report_snapshot(m.to, True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            plain = [m for m in batch if isinstance(m, Message) and m.type != MessageType.SNAP]
            if plain:
                writer.write(codec.frame([codec.MSGS, [codec.message_to_raw(m) for m in plain]]))
            for m in batch:
                if isinstance(m, bytes):
                    writer.write(m)
            await writer.drain()
            for m in batch:
                if isinstance(m, Message) and m.type == MessageType.SNAP:
                    await self._send_snapshot(writer, m)

    async def _send_snapshot(self, writer: asyncio.StreamWriter, m: Message) -> None:
        ok = False
        try:
            chunks = await asyncio.to_thread(self.t.snapshot_source)
            it = iter(chunks)
            sentinel = object()
            while True:
                chunk = await asyncio.to_thread(next, it, sentinel)
                if chunk is sentinel:
                    break
                writer.write(codec.frame([codec.SNAP_CHUNK, chunk]))
                await writer.drain()
            writer.write(codec.frame([codec.SNAP_END, codec.message_to_raw(m)]))
            await writer.drain()
            ok = True
            index = m.snapshot.meta.index if m.snapshot else 0
            self.t.log.info("snapshot sent", peer=m.to, index=index)
        finally:
            self.t.report_snapshot(m.to, not ok)


class PeerTransport:
    """Sends Raft messages to peers and feeds received ones to `on_messages`."""

    def __init__(
        self,
        self_id: int,
        hello: dict[str, Any],
        listen: tuple[str, int],
        peers: list[PeerAddr],
        on_messages: Callable[[list[Message]], None],
        on_hello: Callable[[dict[str, Any]], None],
        snapshot_source: SnapshotSource,
        on_snapshot: SnapshotSink,
        report_snapshot: Callable[[int, bool], None],
        spool_dir: Path,
    ) -> None:
        self.id = self_id
        self.hello = hello
        self.listen = listen
        self.peers = {p.id: _Peer(self, p) for p in peers if p.id != self_id}
        self.on_messages = on_messages
        self.on_hello = on_hello
        self.snapshot_source = snapshot_source
        self.on_snapshot = on_snapshot
        self.report_snapshot = report_snapshot
        self.spool_dir = spool_dir  # incoming snapshots are spilled here, not kept in RAM
        self.log = log.bind(node=hello.get("name"), id=self_id)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.rpc = PeerRpc(self.send_frame)

    def add_peer(self, addr: PeerAddr) -> None:
        """Start dialling a member added at runtime (idempotent)."""
        if addr.id == self.id or addr.id in self.peers:
            return
        peer = _Peer(self, addr)
        self.peers[addr.id] = peer
        if self._server is not None:  # started: dial now; otherwise start() dials everyone
            peer.task = asyncio.create_task(peer.run())

    def remove_peer(self, peer_id: int) -> None:
        """Stop dialling a member that was removed (idempotent)."""
        peer = self.peers.pop(peer_id, None)
        if peer is not None and peer.task is not None:
            peer.task.cancel()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen[0], self.listen[1])
        for p in self.peers.values():
            p.task = asyncio.create_task(p.run())

    async def stop(self) -> None:
        self.rpc.close()
        for p in self.peers.values():
            if p.task:
                p.task.cancel()
        if self._server:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        for p in self.peers.values():
            if p.task:
                with contextlib.suppress(BaseException):
                    await p.task

    def send(self, msgs: tuple[Message, ...] | list[Message]) -> None:
        for m in msgs:
            p = self.peers.get(m.to)
            if p is not None:
                p.send(m)

    def send_frame(self, peer_id: int, frame: bytes) -> bool:
        p = self.peers.get(peer_id)
        return p is not None and p.send(frame)

    def connected(self, peer_id: int) -> bool:
        p = self.peers.get(peer_id)
        return bool(p and p.connected)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        spool: tuple[int, str] | None = None  # (fd, path) of the snapshot being received
        peer_id = 0  # from the connection's HELLO
        try:
            while True:
                head = await reader.readexactly(codec.FRAME_HEADER.size)
                (n,) = codec.FRAME_HEADER.unpack(head)
                if n > codec.MAX_FRAME:
                    raise ValueError(f"frame of {n} bytes is too large")
                obj = codec.unpack(await reader.readexactly(n))
                kind = obj[0]
                if kind == codec.MSGS:
                    self.on_messages([codec.message_from_raw(r) for r in obj[1]])
                elif kind == codec.HELLO:
                    if isinstance(obj[1], dict) and isinstance(obj[1].get("id"), int):
                        peer_id = obj[1]["id"]
                    self.on_hello(obj[1])
                elif kind == codec.RPC_REQ and peer_id:
                    self.rpc.on_request(peer_id, int(obj[1]), str(obj[2]), obj[3])
                elif kind == codec.RPC_RESP:
                    self.rpc.on_response(int(obj[1]), bool(obj[2]), obj[3])
                elif kind == codec.SNAP_CHUNK:
                    if spool is None:
                        self.spool_dir.mkdir(parents=True, exist_ok=True)
                        spool = tempfile.mkstemp(prefix="snap-", dir=self.spool_dir)
                    await asyncio.to_thread(os.write, spool[0], obj[1])
                elif kind == codec.SNAP_END and spool is not None:
                    fd, path = spool
                    spool = None
                    os.close(fd)
                    try:
                        await self.on_snapshot(codec.message_from_raw(obj[1]), Path(path))
                    finally:
                        os.unlink(path)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as e:  # a corrupt peer stream: drop the connection, keep serving
            self.log.warning("bad peer stream", error=repr(e))
        finally:
            if spool is not None:  # the sender went away mid-snapshot
                os.close(spool[0])
                os.unlink(spool[1])
            self._conns.discard(task)
            writer.close()
