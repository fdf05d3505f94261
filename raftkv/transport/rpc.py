"""Calls between members over the peer transport: how a follower asks the leader.

Some operations need the leader's volatile state (lease clocks: keepalive and the
remaining TTL) or its view of replication (membership changes, leader transfer).
A follower does not call the leader's client API for these — that would mix a face
into the service layer and trust whatever URL a peer advertised — it sends an
RPC_REQ frame on its own peer connection to the leader, and the leader answers with
an RPC_RESP frame on its connection back. Both connections are the peer links the
cluster already authenticates and addresses by member id.

Each call has a deadline; a lost request or answer (a reconnect dropped it) is a
timeout the caller reports as Unavailable. Answers carry typed errors
(`RaftkvError.to_wire`), so the caller raises exactly what the leader raised.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from raftkv.errors import RaftkvError, ResourceExhausted, Unavailable, Why, from_wire
from raftkv.transport import codec

log = structlog.get_logger(__name__)

Handler = Callable[[int, list[Any]], Awaitable[Any]]
Sender = Callable[[int, bytes], bool]  # (peer id, frame) -> queued?

MAX_INBOUND = 4096  # concurrent calls served for peers; beyond that they are refused


class PeerRpc:
    def __init__(self, send_frame: Sender) -> None:
        self._send = send_frame
        self.handlers: dict[str, Handler] = {}
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._inbound: set[asyncio.Task[None]] = set()

    def register(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler

    async def call(self, peer: int, method: str, args: list[Any], timeout: float) -> Any:
        """Run `method` on member `peer`; its result, or the typed error it raised."""
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = fut
        try:
            if not self._send(peer, codec.frame([codec.RPC_REQ, call_id, method, args])):
                raise Unavailable(Why.LEADER_CHANGED)
            try:
                ok, payload = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise Unavailable(Why.TIMEOUT, proposed=True) from None
        finally:
            self._calls.pop(call_id, None)
        if ok:
            return payload
        raise from_wire(payload)

    def on_request(self, frm: int, call_id: int, method: str, args: list[Any]) -> None:
        if len(self._inbound) >= MAX_INBOUND:
            err = ResourceExhausted("peer calls", MAX_INBOUND)
            self._send(frm, codec.frame([codec.RPC_RESP, call_id, False, err.to_wire()]))
            return
        t = asyncio.create_task(self._serve(frm, call_id, method, args))
        self._inbound.add(t)
        t.add_done_callback(self._inbound.discard)

    async def _serve(self, frm: int, call_id: int, method: str, args: list[Any]) -> None:
        handler = self.handlers.get(method)
        try:
            if handler is None or not isinstance(args, list):
                raise Unavailable(Why.LEADER_CHANGED)
            result: Any = [True, await handler(frm, args)]
        except RaftkvError as e:
            result = [False, e.to_wire()]
        except asyncio.CancelledError:
            return
        except Exception as e:  # a bug: answer rather than leave the caller hanging
            log.exception("peer call failed", method=method, peer=frm)
            result = [False, Unavailable(Why.TIMEOUT, proposed=True).to_wire()]
            del e
        self._send(frm, codec.frame([codec.RPC_RESP, call_id, *result]))

    def on_response(self, call_id: int, ok: bool, payload: Any) -> None:
        fut = self._calls.get(call_id)
        if fut is not None and not fut.done():
            fut.set_result((bool(ok), payload))

    def close(self) -> None:
        for t in list(self._inbound):
            t.cancel()
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(Unavailable(Why.STOPPING))
