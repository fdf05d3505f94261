"""/v3/maintenance/*, /v3/cluster/member/list and /version.

raftkv is not bbolt, so dbSize/hash/snapshot describe raftkv's own LMDB state; what
clients rely on (field names, types, the snapshot's sha256 trailer) matches etcd.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from enum import IntEnum
from typing import Any

from raftkv import __version__
from raftkv.errors import Compacted, FutureRevision
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, to_enum, to_int
from raftkv.storage.commands import AlarmType

ETCD_VERSION = "3.4.23"  # the etcd release whose gateway this package reproduces
CLUSTER_VERSION = "3.4.0"
SNAPSHOT_BLOB = 32 * 1024
SECTOR = 512


class AlarmAction(IntEnum):
    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


def version_body() -> dict[str, Any]:
    """etcd's /version, plus raftkv's own version (clients ignore unknown fields)."""
    return {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION, "raftkv": __version__}


async def status(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = gw.s.maintenance.status()
    st = res.response
    out: dict[str, Any] = {"header": gw.header_of(res), "version": ETCD_VERSION}
    fields = [
        ("dbSize", st.db_size),
        ("leader", gw.member_id(st.leader) if st.leader else 0),
        ("raftIndex", st.raft_index),
        ("raftTerm", st.raft_term),
        ("raftAppliedIndex", st.raft_applied_index),
    ]
    for name, v in fields:
        if v:
            out[name] = str(v)
    if st.alarms:
        out["errors"] = [_alarm_text(_etcd_id(gw, m), a) for m, a in st.alarms]
    if st.db_size_in_use:
        out["dbSizeInUse"] = str(st.db_size_in_use)
    if st.is_learner:
        out["isLearner"] = True
    return out


def _stored_id(gw: Gateway, member: int) -> int:
    """The id an alarm is stored under: a member's Raft id when the etcd id names a
    member (the node raises NOSPACE under its Raft id), else the id as given (etcd
    stores whatever id an operator activates)."""
    raft = gw.raft_id(member) if member else None
    return raft if raft is not None else member


def _etcd_id(gw: Gateway, stored: int) -> int:
    return gw.member_id(stored) or stored


def _alarm_text(member: int, alarm: int) -> str:
    """An AlarmMember in protobuf text format, as etcd puts it in `errors`."""
    out = f"memberID:{member} " if member else ""
    return out + (f"alarm:{AlarmType(alarm).name} " if alarm else "")


async def hash_(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = await gw.s.maintenance.hash_kv()
    out: dict[str, Any] = {"header": gw.header_of(res)}
    if res.response:
        out["hash"] = res.response
    return out


async def hash_kv(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """HashKV: raftkv hashes the live key space at the current revision (it keeps no
    per-revision bbolt hash), so `revision` is only checked as etcd's HashByRev does:
    compacted up to and including the compact revision, or in the future."""
    rev = to_int(body.get("revision"), "revision")
    out = await hash_(gw, body)
    compact = gw.s.maintenance.compact_revision()
    if 0 < rev <= compact:
        raise Compacted(compact_revision=compact)
    current = int(out["header"].get("revision", 0))
    if rev > current:
        raise FutureRevision(current_revision=current)
    if compact:
        out["compact_revision"] = str(compact)
    return out


async def alarm(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's Alarm RPC: GET lists, ACTIVATE/DEACTIVATE change the replicated alarms.
    Member ids on the wire are etcd ids; the store keeps Raft ids."""
    action = to_enum(body.get("action"), AlarmAction, "etcdserverpb.AlarmRequest_AlarmAction")
    member = to_int(body.get("memberID"), "memberID", unsigned=True)
    kind = to_enum(body.get("alarm"), AlarmType, "etcdserverpb.AlarmType")
    m = gw.s.maintenance
    if action == AlarmAction.GET:
        active = m.alarms().response
        found = [(mid, a) for mid, a in active if kind == AlarmType.NONE or a == kind]
    else:
        if kind == AlarmType.NONE:
            return {}
        stored = _stored_id(gw, member)
        active = m.alarms().response
        if action == AlarmAction.DEACTIVATE and (stored, int(kind)) not in active:
            return {}
        await m.set_alarm(stored, kind, action == AlarmAction.ACTIVATE)
        found = [(stored, int(kind))]
    if not found:
        return {}
    alarms = []
    for mid, a in found:
        one: dict[str, Any] = {}
        etcd_mid = _etcd_id(gw, mid)
        if etcd_mid:
            one["memberID"] = str(etcd_mid)
        if a:
            one["alarm"] = AlarmType(a).name
        alarms.append(one)
    return {"alarms": alarms}


async def defragment(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.s.maintenance.defragment()
    return {}


async def snapshot_messages(gw: Gateway) -> AsyncIterator[dict[str, Any]]:
    """The state machine spooled to a temp file, then 32 KiB blobs and a sha256 blob.

    Spooling first gives `remaining_bytes` (etcd announces it) and releases the LMDB
    read transaction quickly instead of pinning pages for a slow client.
    """
    loop = asyncio.get_running_loop()
    fd, path = tempfile.mkstemp(prefix="raftkv-etcd-snap-")
    os.close(fd)

    chunks_source = gw.s.maintenance.snapshot()

    def spool() -> tuple[int, bytes]:
        h = hashlib.sha256()
        total = 0
        with chunks_source as chunks, open(path, "wb") as f:
            for c in chunks:
                f.write(c)
                h.update(c)
                total += len(c)
            # etcdctl only accepts a file of whole 512-byte sectors plus the digest (a
            # bbolt file always is): zero-pad raftkv's stream, which ends at its own
            # trailer, so readers of the format ignore the padding.
            pad = b"\0" * (-total % SECTOR)
            f.write(pad)
            h.update(pad)
            total += len(pad)
        return total, h.digest()

    try:
        total, digest = await loop.run_in_executor(None, spool)
        sent = 0
        with open(path, "rb") as f:
            while True:
                blob = await loop.run_in_executor(None, f.read, SNAPSHOT_BLOB)
                if not blob:
                    break
                sent += len(blob)
                msg: dict[str, Any] = {}
                if total - sent:
                    msg["remaining_bytes"] = str(total - sent)
                msg["blob"] = b64(blob)
                yield msg
        yield {"blob": b64(digest)}
    finally:
        os.unlink(path)
