"""/v3/maintenance/*, /v3/cluster/member/list and /version.

raftkv is not bbolt, so dbSize/hash/snapshot describe raftkv's own LMDB state; what
clients rely on (field names, types, the snapshot's sha256 trailer) matches etcd.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import zlib
from collections.abc import AsyncIterator
from enum import IntEnum
from typing import Any

from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, to_enum, to_int

ETCD_VERSION = "3.4.23"  # the etcd release whose gateway this package reproduces
CLUSTER_VERSION = "3.4.0"
SNAPSHOT_BLOB = 32 * 1024


class AlarmAction(IntEnum):
    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


class AlarmType(IntEnum):
    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


def version_body() -> dict[str, Any]:
    return {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION}


async def status(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    n = gw.node
    st = n.status()
    out: dict[str, Any] = {"header": gw.header(), "version": ETCD_VERSION}
    fields = [
        ("dbSize", n.mvcc.db_size()),
        ("leader", gw.member_id(n.leader) if n.leader else 0),
        ("raftIndex", st["commit"]),
        ("raftTerm", st["term"]),
        ("raftAppliedIndex", st["applied"]),
    ]
    for name, v in fields:
        if v:
            out[name] = str(v)
    if gw.alarms:
        out["errors"] = [_alarm_text(m, a) for m, a in gw.alarms]
    used = n.mvcc.db_size_in_use()
    if used:
        out["dbSizeInUse"] = str(used)
    return out


def _alarm_text(member: int, alarm: int) -> str:
    """An AlarmMember in protobuf text format, as etcd puts it in `errors`."""
    out = f"memberID:{member} " if member else ""
    return out + (f"alarm:{AlarmType(alarm).name} " if alarm else "")


def _kv_hash(gw: Gateway) -> int:
    """crc32 over every live key-value at the current revision (same on every replica
    that applied the same entries, which is what clients compare hashes for)."""
    r = gw.node.mvcc.range(b"\x00", b"\x00")
    h = 0
    for kv in r.kvs:
        for part in (kv.key, kv.value):
            h = zlib.crc32(len(part).to_bytes(4, "big") + part, h)
        h = zlib.crc32(
            f"{kv.create_revision},{kv.mod_revision},{kv.version},{kv.lease}".encode(), h
        )
    return h


async def hash_(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.linearize(False)
    header = gw.header()
    h = await asyncio.get_running_loop().run_in_executor(None, _kv_hash, gw)
    out: dict[str, Any] = {"header": header}
    if h:
        out["hash"] = h
    return out


async def alarm(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    action = to_enum(body.get("action"), AlarmAction, "etcdserverpb.AlarmRequest_AlarmAction")
    member = to_int(body.get("memberID"), "memberID", unsigned=True)
    kind = to_enum(body.get("alarm"), AlarmType, "etcdserverpb.AlarmType")
    if action == AlarmAction.GET:
        found = [(m, a) for m, a in gw.alarms if kind == AlarmType.NONE or a == kind]
    elif action == AlarmAction.ACTIVATE:
        if kind == AlarmType.NONE:
            return {}
        if (member, int(kind)) not in gw.alarms:
            gw.alarms.append((member, int(kind)))
        found = [(member, int(kind))]
    else:
        if (member, int(kind)) not in gw.alarms:
            return {}
        gw.alarms.remove((member, int(kind)))
        found = [(member, int(kind))]
    if not found:
        return {}
    alarms = []
    for m, a in found:
        one: dict[str, Any] = {}
        if m:
            one["memberID"] = str(m)
        if a:
            one["alarm"] = AlarmType(a).name
        alarms.append(one)
    return {"alarms": alarms}


async def defragment(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    return {}


async def snapshot_messages(gw: Gateway) -> AsyncIterator[dict[str, Any]]:
    """The state machine spooled to a temp file, then 32 KiB blobs and a sha256 blob.

    Spooling first gives `remaining_bytes` (etcd announces it) and releases the LMDB
    read transaction quickly instead of pinning pages for a slow client.
    """
    loop = asyncio.get_running_loop()
    fd, path = tempfile.mkstemp(prefix="raftkv-etcd-snap-")
    os.close(fd)

    def spool() -> tuple[int, bytes]:
        h = hashlib.sha256()
        total = 0
        stream = gw.node.mvcc.snapshot_stream()
        with stream.chunks as chunks, open(path, "wb") as f:
            for c in chunks:
                f.write(c)
                h.update(c)
                total += len(c)
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
