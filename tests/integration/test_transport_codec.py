"""The peer wire format round-trips every Raft message field (msgpack, no pickle)."""

from __future__ import annotations

from raftkv.raft.messages import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)
from raftkv.transport import codec


def test_message_roundtrip_all_fields() -> None:
    m = Message(
        MessageType.APP,
        to=2,
        frm=1,
        term=7,
        log_term=6,
        index=41,
        entries=(
            Entry(7, 42, EntryType.NORMAL, b"\x00\xffdata"),
            Entry(7, 43, EntryType.CONF_CHANGE, b"cc"),
        ),
        commit=40,
        reject=True,
        reject_hint=39,
        context=b"ctx",
    )
    assert codec.decode_message(codec.encode_message(m)) == m


def test_snapshot_message_carries_metadata_only() -> None:
    snap = Snapshot(SnapshotMeta(100, 3, ConfState(frozenset({1, 2, 3}))), b"payload")
    m = Message(MessageType.SNAP, to=3, frm=1, term=3, snapshot=snap)
    got = codec.decode_message(codec.encode_message(m))
    assert got.snapshot is not None and got.snapshot.meta == snap.meta
    assert got.snapshot.data == b""  # the state machine is streamed separately


def test_frame_is_length_prefixed() -> None:
    f = codec.frame([codec.MSGS, [codec.message_to_raw(Message(MessageType.HEARTBEAT, 2, 1))]])
    (n,) = codec.FRAME_HEADER.unpack(f[: codec.FRAME_HEADER.size])
    assert n == len(f) - codec.FRAME_HEADER.size
    kind, msgs = codec.unpack(f[codec.FRAME_HEADER.size :])
    assert kind == codec.MSGS and codec.message_from_raw(msgs[0]).type == MessageType.HEARTBEAT
