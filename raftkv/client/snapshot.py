"""Download a point-in-time copy of the state machine.

raftkv's native API has no snapshot endpoint; its etcd gateway serves etcd's
`POST /v3/maintenance/snapshot` (a stream of `{"result": {"blob": b64}}` lines, the
last blob being the sha256 of everything before it), which is what this reads. The
digest is verified before the file is moved into place, so a cut stream never leaves
a truncated snapshot behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import aiohttp
from yarl import URL

from raftkv.client.errors import RaftkvError, Unavailable
from raftkv.client.transport import Transport


class SnapshotUnsupported(RaftkvError):
    """The server offers no snapshot endpoint."""


async def save_snapshot(transport: Transport, dest: str | Path) -> int:
    """Write the snapshot to `dest`; the number of bytes. Tries each endpoint once."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for base in transport.endpoints.urls:
        try:
            return await _save_from(transport, base, dest, tmp)
        except (aiohttp.ClientError, TimeoutError) as e:
            last = e
        finally:
            if tmp.exists():
                tmp.unlink()
    raise Unavailable(f"snapshot: no endpoint answered ({last!r})")


async def _save_from(transport: Transport, base: str, dest: Path, tmp: Path) -> int:
    url = URL(base).join(URL("/v3/maintenance/snapshot"))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max(transport.timeout, 30))
    async with transport.session().post(url, data=b"{}", timeout=timeout) as r:
        if r.status == 404:
            raise SnapshotUnsupported("the server has no snapshot endpoint", "unsupported", 404)
        if r.status != 200:
            raise RaftkvError(f"snapshot: HTTP {r.status}", "snapshot_failed", r.status)
        blobs: list[bytes] = []
        with open(tmp, "wb") as f:
            async for line in r.content:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "error" in msg:
                    raise RaftkvError(f"snapshot: {msg['error']}", "snapshot_failed")
                blob = base64.b64decode(msg.get("result", {}).get("blob", ""))
                if blobs:
                    f.write(blobs[-1])
                blobs = [blob]
            f.flush()
            os.fsync(f.fileno())
    if not blobs:
        raise RaftkvError("snapshot: empty stream", "snapshot_failed")
    digest = blobs[0]
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.digest() != digest:
        raise RaftkvError("snapshot: sha256 mismatch (stream cut short?)", "snapshot_corrupt")
    size = tmp.stat().st_size
    tmp.replace(dest)
    return size
