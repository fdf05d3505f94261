"""State-machine snapshots: a self-describing msgpack stream plus a sha256 trailer.

Layout of the byte stream (what the transport ships to a lagging follower):

    {format, version, schema, applied_index, revision, compact_revision, conf_state}
    [SECTION, db name]           one per state-machine database, in layout.SM_DBS order
    [RECORDS, [k, v, k, v, ...]] that database's records in key order, in blocks
    ...
    [END, record count]
    sha256 of every byte above   32 raw bytes, not msgpack

The trailer makes a truncated or corrupted transfer detectable before anything is
replaced, and is the same convention etcd uses for its snapshot endpoint, so the
gateway can serve this stream as-is. The records are the raw LMDB records of the
current schema; `schema` in the header lets a newer release refuse (or convert) an
older layout instead of misreading it. Never pickle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import lmdb
import msgpack

from raftkv.storage.layout import K_CONF_STATE, K_STATE, SCHEMA_VERSION, SM_DBS, Dbs, State

FORMAT = "raftkv-mvcc-snapshot"
VERSION = 1
_SECTION, _RECORDS, _END = 0, 1, 2
_DIGEST = 32
_BLOCK_BYTES = 256 * 1024  # records per RECORDS block, by payload size


class SnapshotError(Exception):
    """The stream is not a complete, intact snapshot this version can restore."""


class SnapshotHeader(NamedTuple):
    applied_index: int
    revision: int
    compact_revision: int
    conf_state: bytes | None


class SnapshotChunks:
    """Iterator of byte chunks read from ONE read transaction.

    The transaction pins the snapshot's pages until the iterator is exhausted or
    `close()`d, so consumers must close it if they stop early (it is also a context
    manager). While it is open LMDB cannot reuse pages freed by newer writes.
    """

    def __init__(self, txn: lmdb.Transaction, dbs: Dbs, header: dict, chunk_size: int) -> None:  # type: ignore[type-arg]
        self._txn: lmdb.Transaction | None = txn
        self._gen = _generate(txn, dbs, header, chunk_size)
        self.on_close: Callable[[], None] | None = None  # the store counts open streams

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._gen)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._gen.close()
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
            if self.on_close is not None:
                self.on_close()

    def __enter__(self) -> SnapshotChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SnapshotStream(NamedTuple):
    applied_index: int
    conf_state: bytes | None
    chunks: SnapshotChunks


def open_stream(env: lmdb.Environment, dbs: Dbs, chunk_size: int) -> SnapshotStream:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    txn = env.begin()
    try:
        raw_state = txn.get(K_STATE, db=dbs.meta)
        state = State.decode(raw_state) if raw_state else State()
        conf_state = txn.get(K_CONF_STATE, db=dbs.meta)
    except BaseException:
        txn.abort()
        raise
    header = {
        "format": FORMAT,
        "version": VERSION,
        "schema": SCHEMA_VERSION,
        "applied_index": state.applied_index,
        "revision": state.revision,
        "compact_revision": state.compact_revision,
        "conf_state": conf_state,
    }
    chunks = SnapshotChunks(txn, dbs, header, chunk_size)
    return SnapshotStream(state.applied_index, conf_state, chunks)


def _generate(
    txn: lmdb.Transaction,
    dbs: Dbs,
    header: dict,  # type: ignore[type-arg]
    chunk_size: int,
) -> Iterator[bytes]:
    packer = msgpack.Packer(use_bin_type=True)
    digest = hashlib.sha256()
    out = bytearray()
    count = 0

    def emit(obj: object) -> None:
        b = packer.pack(obj)
        digest.update(b)
        out.extend(b)

    def full_chunks() -> Iterator[bytes]:
        while len(out) >= chunk_size:
            yield bytes(out[:chunk_size])
            del out[:chunk_size]

    emit(header)
    handles = dbs.by_name()
    for name, _dupsort, _dupfixed in SM_DBS:
        emit([_SECTION, name])
        block: list[bytes] = []
        size = 0
        for k, v in txn.cursor(handles[name]):
            block.append(k)
            block.append(v)
            size += len(k) + len(v)
            if size >= _BLOCK_BYTES:
                emit([_RECORDS, block])
                count += len(block) // 2
                block, size = [], 0
                yield from full_chunks()
        if block:
            emit([_RECORDS, block])
            count += len(block) // 2
        yield from full_chunks()
    emit([_END, count])
    out.extend(digest.digest())
    yield from full_chunks()
    if out:
        yield bytes(out)


def restore_into(txn: lmdb.Transaction, dbs: Dbs, chunks: Iterable[bytes]) -> SnapshotHeader:
    """Replace every state-machine database inside `txn` with the stream's content.

    Raises SnapshotError if the stream is truncated, corrupted or of an unknown
    format; the caller aborts the transaction then, so nothing changes.
    """
    try:
        return _restore(txn, dbs, chunks)
    except SnapshotError:
        raise
    except (msgpack.UnpackException, ValueError, TypeError, KeyError, IndexError) as e:
        raise SnapshotError(f"malformed snapshot: {e!r}") from e
    except lmdb.BadValsizeError as e:
        raise SnapshotError(f"malformed snapshot record: {e!r}") from e


def _restore(txn: lmdb.Transaction, dbs: Dbs, chunks: Iterable[bytes]) -> SnapshotHeader:
    handles = dbs.by_name()
    for db in handles.values():
        txn.drop(db, delete=False)
    unpacker = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=0)
    digest = hashlib.sha256()
    held = b""  # the last 32 bytes seen: they may be the trailer
    header: dict | None = None  # type: ignore[type-arg]
    cursor: lmdb.Cursor | None = None
    count = 0
    done = False

    for chunk in chunks:
        data = held + bytes(chunk)
        body, held = data[:-_DIGEST], data[-_DIGEST:]
        if not body:
            continue
        if done:
            raise SnapshotError("snapshot has data after its end marker")
        digest.update(body)
        unpacker.feed(body)
        for obj in unpacker:
            if done:
                raise SnapshotError("snapshot has data after its end marker")
            if header is None:
                header = _check_header(obj)
                continue
            if not isinstance(obj, list) or not obj:
                raise SnapshotError("malformed snapshot record")
            tag = obj[0]
            if tag == _SECTION:
                if obj[1] not in handles:
                    raise SnapshotError(f"snapshot has unknown database {obj[1]!r}")
                cursor = txn.cursor(handles[obj[1]])
            elif tag == _RECORDS:
                if cursor is None:
                    raise SnapshotError("snapshot records before any database section")
                flat = obj[1]
                pairs = list(zip(flat[0::2], flat[1::2], strict=True))
                _, added = cursor.putmulti(pairs, append=True)
                if added != len(pairs):
                    raise SnapshotError("snapshot records are not in key order")
                count += len(pairs)
            elif tag == _END:
                if obj[1] != count:
                    raise SnapshotError(f"snapshot holds {count} records, expected {obj[1]}")
                done = True
            else:
                raise SnapshotError(f"unknown snapshot record tag {tag!r}")
    if header is None or not done:
        raise SnapshotError("snapshot is truncated")
    if held != digest.digest():
        raise SnapshotError("snapshot checksum mismatch")
    return SnapshotHeader(
        header["applied_index"],
        header["revision"],
        header["compact_revision"],
        header["conf_state"],
    )


def _check_header(obj: object) -> dict:  # type: ignore[type-arg]
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SnapshotError("not a raftkv state-machine snapshot")
    if obj.get("version") != VERSION:
        raise SnapshotError(f"unsupported snapshot format version {obj.get('version')}")
    if obj.get("schema") != SCHEMA_VERSION:
        raise SnapshotError(f"unsupported state-machine schema {obj.get('schema')}")
    return obj
