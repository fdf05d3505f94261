"""msgpack encoding of Raft messages (never pickle: peers are a network boundary).

Messages are packed as positional arrays to keep heartbeats small. Snapshot payloads
are never inlined here: the transport streams the state machine separately.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from raftkv.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20

# Frame kinds.
HELLO = 0  # [HELLO, {id, name, client_url}]
MSGS = 1  # [MSGS, [message, ...]]
SNAP_CHUNK = 2  # [SNAP_CHUNK, snap_id, bytes]
SNAP_END = 3  # [SNAP_END, snap_id, message]
RPC_REQ = 4  # [RPC_REQ, call_id, method, args]: a call to the peer's service (forwarding)
RPC_RESP = 5  # [RPC_RESP, call_id, ok, result or error.to_wire()]


def _snap(s: Snapshot | None) -> list[Any] | None:
    if s is None:
        return None
    cs = s.meta.conf_state
    return [s.meta.index, s.meta.term, sorted(cs.voters), sorted(cs.learners)]


def _unsnap(raw: list[Any] | None) -> Snapshot | None:
    if raw is None:
        return None
    cs = ConfState(frozenset(raw[2]), frozenset(raw[3]))
    return Snapshot(SnapshotMeta(raw[0], raw[1], cs))


def message_to_raw(m: Message) -> list[Any]:
    return [
        int(m.type),
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [[e.term, e.index, int(e.type), e.data] for e in m.entries],
        m.commit,
        m.reject,
        m.reject_hint,
        m.context,
        _snap(m.snapshot),
    ]


def message_from_raw(r: list[Any]) -> Message:
    return Message(
        type=MessageType(r[0]),
        to=r[1],
        frm=r[2],
        term=r[3],
        log_term=r[4],
        index=r[5],
        entries=tuple(Entry(e[0], e[1], EntryType(e[2]), e[3]) for e in r[6]),
        commit=r[7],
        reject=r[8],
        reject_hint=r[9],
        context=r[10],
        snapshot=_unsnap(r[11]),
    )


def encode_message(m: Message) -> bytes:
    return msgpack.packb(message_to_raw(m), use_bin_type=True)


def decode_message(buf: bytes) -> Message:
    return message_from_raw(msgpack.unpackb(buf, raw=False))


def frame(obj: Any) -> bytes:
    """Length-prefixed msgpack frame."""
    body = msgpack.packb(obj, use_bin_type=True)
    return FRAME_HEADER.pack(len(body)) + body


def unpack(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False)
