"""Snapshot stream -> restore into a fresh environment -> identical state machine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import lmdb
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.errors import RequestIdConflict
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Compact,
    DeleteRange,
    LeaseCheckpoint,
    LeaseGrant,
    Put,
    Range,
    Txn,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.snapshot import SnapshotError
from tests.storage.helpers import Driver

ALL = (b"\x00", b"\x00")


@pytest.fixture
def source(env: lmdb.Environment) -> MvccStore:
    store = MvccStore(env, quota_bytes=64 * MiB)
    d = Driver(store)
    lease = d.ok(LeaseGrant(60)).id
    d.ok(LeaseGrant(30, 99))
    for i in range(0, 300, 50):
        d.batch(
            *(
                Put(b"key/%03d" % (j % 120), b"v%d" % j * (j % 7), lease=lease if j % 3 else 0)
                for j in range(i, i + 50)
            )
        )
    d.ok(DeleteRange(b"key/01", b"key/02"))
    d.ok(Compact(200))
    d.ok(Txn((), (Put(b"txn/a", b"1"), Put(b"txn/b", b"2", lease=99)), ()))
    d.ok(Put(b"dedup", b"first", client_id=b"req-7"))
    d.ok(LeaseCheckpoint(((99, 17),)))
    d.ok(Alarm(4, AlarmType.CORRUPT, True))
    store.apply([(d.index + 1, b"")], conf_state=b"conf-bytes")
    return store


@pytest.fixture
def target(tmp_path: Path) -> Iterator[MvccStore]:
    env = open_env(tmp_path / "target", map_size=64 * MiB)
    yield MvccStore(env, quota_bytes=16 * MiB)
    env.close()


def fingerprint(store: MvccStore) -> tuple[object, ...]:
    cur, comp = store.current_revision(), store.compact_revision()
    history = [store.range(Range(*ALL, revision=rev)) for rev in range(comp, cur + 1)]
    return (
        store.applied_index(),
        cur,
        comp,
        store.conf_state(),
        store.space_used(),
        history,
        store.events(comp, *ALL, prev_kv=True),
        [store.lease_get(i) for i in store.lease_list()],
        store.alarms(),
        store.state(),
        store.state_digest(),
    )


def stream_bytes(store: MvccStore, chunk_size: int) -> list[bytes]:
    return list(store.snapshot_stream(chunk_size).chunks)


@pytest.mark.parametrize("chunk_size", [7, 4096, 1 << 20])
def test_round_trip(source: MvccStore, tmp_path: Path, chunk_size: int) -> None:
    stream = source.snapshot_stream(chunk_size)
    assert (stream.applied_index, stream.conf_state) == (source.applied_index(), b"conf-bytes")
    chunks = list(stream.chunks)
    assert all(len(c) == chunk_size for c in chunks[:-1])
    env = open_env(tmp_path / "copy", map_size=64 * MiB)
    try:
        copy = MvccStore(env, quota_bytes=16 * MiB)
        copy.restore(iter(chunks))
        assert fingerprint(copy) == fingerprint(source)
        assert copy.verify() == source.verify() > 0  # the history digest came along
        # The dedup table came along: a retried request is still recognised, and the id
        # is still bound to its command.
        d = Driver(copy)
        assert d.one(Put(b"dedup", b"first", client_id=b"req-7")).duplicate
        assert d.one(Put(b"dedup", b"second", client_id=b"req-7")).error == RequestIdConflict()
        # And the copy keeps working as a state machine.
        assert d.ok(Put(b"new", b"")).revision == source.current_revision() + 1
    finally:
        env.close()


def test_restore_replaces_existing_state(source: MvccStore, tmp_path: Path) -> None:
    env = open_env(tmp_path / "other", map_size=64 * MiB)
    try:
        other = MvccStore(env, quota_bytes=16 * MiB)
        d = Driver(other)
        for i in range(50):
            d.ok(Put(b"zzz/%d" % i, b"x", client_id=b"other-%d" % i))
        d.ok(LeaseGrant(5, 12345))
        other.restore(stream_bytes(source, 1000))
        assert fingerprint(other) == fingerprint(source)
        assert other.lease_get(12345) is None
        res = Driver(other).one(Put(b"q", b"", client_id=b"other-1"))
        assert not res.duplicate and res.error is None
        assert other.verify() > 0
    finally:
        env.close()


def corrupt_variants(chunks: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    blob = b"".join(chunks)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    yield "flipped byte", [bytes(flipped)]
    yield "truncated", [blob[:-100]]
    yield "missing trailer", [blob[:-32]]
    yield "extra bytes", [blob + b"\x00"]
    yield "garbage", [b"not a snapshot at all" * 3]
    yield "empty", []
    body = msgpack.packb({"format": "raftkv-mvcc-snapshot", "version": 99})
    yield "future version", [body + hashlib.sha256(body).digest()]


def test_corrupt_streams_change_nothing(source: MvccStore, tmp_path: Path) -> None:
    chunks = stream_bytes(source, 4096)
    env = open_env(tmp_path / "target", map_size=64 * MiB)
    try:
        target = MvccStore(env, quota_bytes=16 * MiB)
        Driver(target).ok(Put(b"keep", b"me"))
        before = fingerprint(target)
        for name, bad in corrupt_variants(chunks):
            with pytest.raises(SnapshotError):
                target.restore(bad)
            assert fingerprint(target) == before, name
            target.verify()
    finally:
        env.close()


def test_unconsumed_stream_releases_its_reader(source: MvccStore, env: lmdb.Environment) -> None:
    def active_readers() -> int:
        return sum(1 for ln in env.readers().splitlines()[1:] if ln.split()[-1] != "-")

    stream = source.snapshot_stream(64)
    next(stream.chunks)
    assert active_readers() == 1
    stream.chunks.close()
    assert active_readers() == 0
    with source.snapshot_stream(64).chunks as chunks:
        next(chunks)
    assert active_readers() == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_damaged_byte_is_detected(
    source: MvccStore, target: MvccStore, data: st.DataObject
) -> None:
    blob = bytearray(b"".join(stream_bytes(source, 1 << 20)))
    positions = st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=3, unique=True)
    for pos in data.draw(positions):
        blob[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(1, len(blob)))
    with pytest.raises(SnapshotError):
        target.restore([bytes(blob[:cut]), bytes(blob[cut:])])
    assert target.current_revision() == 1
