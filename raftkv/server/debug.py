"""/debug/* routes for the Jepsen harness; every one answers 404 unless test mode is on.

They expose what a black-box client cannot see but a checker needs: Raft indices for
invariant checks, the committed log with request ids (to resolve writes whose outcome
the client never learned), a state digest for convergence checks, and the knobs that
trigger faults (failpoints, clock skew, forced fsync in lazy-fsync mode).
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

from aiohttp import web

from raftkv import testmode as tm
from raftkv.errors import InvalidArgument
from raftkv.node.node import Node
from raftkv.raft import EntryType
from raftkv.server.v1.errors import ApiError, bad_request
from raftkv.storage import commands as cmds

MAX_LOG_PAGE = 10_000


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json")


def _require_test_mode() -> None:
    if not tm.enabled():
        raise ApiError(404, "not_found", "debug endpoints need RAFTKV_TEST_MODE=1")


async def _body(req: web.Request) -> dict[str, Any]:
    raw = await req.read()
    try:
        body = json.loads(raw) if raw else {}
    except json.JSONDecodeError as e:
        raise bad_request(f"body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


class DebugApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def status(self, req: web.Request) -> web.StreamResponse:
        _require_test_mode()
        n = self.node
        hs = n.raft.hard_state
        s = tm.settings()
        return _json(
            {
                "name": n.cfg.name,
                "id": n.id,
                "role": n.role.name.lower(),
                "term": hs.term,
                "vote": hs.vote,
                "leader": n.leader,
                "commit": hs.commit,
                "applied": n.mvcc.applied_index(),
                "first_index": n.logstore.first_index(),
                "last_index": n.logstore.last_index(),
                "snapshot_index": n.driver.snapshot_index,
                "revision": n.mvcc.current_revision(),
                "compact_revision": n.mvcc.compact_revision(),
                "leases": {str(i): n.lessor.remaining(i) for i in n.mvcc.lease_list()},
                "mutations": sorted(s.mutations),
                "core_bugs": sorted(n.raft.bugs),
                "failpoints": dict(s.failpoints),
                "clock": s.clock.to_json(),
                "lazy_fsync": s.lazy_fsync,
                "last_fsync": n.last_fsync,
            }
        )

    async def log(self, req: web.Request) -> web.StreamResponse:
        """Committed entries [from, to] (inclusive), clipped to what the log still holds."""
        _require_test_mode()
        n = self.node
        try:
            lo = int(req.query.get("from", "1"))
            hi = int(req.query.get("to", str(n.raft.hard_state.commit)))
        except ValueError as e:
            raise bad_request("from/to must be integers") from e
        first = n.logstore.first_index()
        lo = max(lo, first)
        hi = min(hi, n.raft.hard_state.commit, n.logstore.last_index(), lo + MAX_LOG_PAGE - 1)
        entries = n.logstore.entries(lo, hi + 1) if hi >= lo else []
        return _json(
            {
                "first_index": first,
                "commit": n.raft.hard_state.commit,
                "entries": [_entry_json(e) for e in entries],
                "next": hi + 1,
            }
        )

    async def hash(self, req: web.Request) -> web.StreamResponse:
        _require_test_mode()
        return _json(self.node.mvcc.state_digest())

    async def trace(self, req: web.Request) -> web.StreamResponse:
        """The write-path marks (node/trace.py); `?clear` empties them after reading."""
        _require_test_mode()
        tr = self.node.trace
        if tr is None:
            raise ApiError(404, "not_found", "tracing is off: start the member with RAFTKV_TRACE=1")
        body = {"requests": tr.records(), "entries": tr.entry_marks()}
        if "clear" in req.query:
            tr.clear()
        return _json(body)

    async def failpoints(self, req: web.Request) -> web.StreamResponse:
        _require_test_mode()
        try:
            for name, action in (await _body(req)).items():
                tm.arm(name, str(action))
        except tm.TestModeError as e:
            raise bad_request(str(e)) from e
        return _json({"failpoints": dict(tm.settings().failpoints)})

    async def clock(self, req: web.Request) -> web.StreamResponse:
        _require_test_mode()
        body = await _body(req)
        try:
            offset = body.get("offset_ms")
            rate = body.get("rate")
            tm.settings().clock.set(
                None if offset is None else float(offset), None if rate is None else float(rate)
            )
        except (TypeError, ValueError) as e:  # TestModeError is a ValueError
            raise bad_request(f"bad clock setting: {e}") from e
        return _json({"clock": tm.settings().clock.to_json()})

    async def fsync(self, req: web.Request) -> web.StreamResponse:
        """Force an fsync; optionally copy the environment (a power-loss restore point).

        In lazy-fsync mode nothing else fsyncs, so after this call everything up to
        the reported indices is durable. A kill -9 alone loses nothing (the OS page
        cache survives the process); the harness simulates power loss by replacing
        the stopped node's `db` dir with the copy made here (`copy_to`, an empty dir).
        """
        _require_test_mode()
        n = self.node
        body = await _body(req)
        copy_to = body.get("copy_to")
        # On the LMDB worker thread: after the last queued write, not racing it.
        applied, last = await n.run_io(_sync, n, copy_to)
        n.last_fsync = {"applied": applied, "last_index": last, "time": time.time()}
        return _json(n.last_fsync)


def _sync(n: Node, copy_to: str | None) -> tuple[int, int]:
    for name, env in (("log", n.logstore.env), ("state", n.mvcc.env)):
        env.sync(True)
        if copy_to:
            target = Path(copy_to) / name
            target.mkdir(parents=True, exist_ok=True)
            env.copy(str(target))
    return n.mvcc.applied_index(), n.logstore.last_index()


def _entry_json(e: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": e.index,
        "term": e.term,
        "crc32": zlib.crc32(e.data),
        "request_id": None,
    }
    if e.type == EntryType.CONF_CHANGE:
        out["type"] = "conf_change"
    elif not e.data:
        out["type"] = "empty"  # a new leader's no-op
    else:
        try:
            c = cmds.decode(e.data)
        except InvalidArgument:
            out["type"] = "undecodable"
        else:
            out["type"] = type(c).__name__.lower()
            if c.request_id:
                out["request_id"] = c.request_id.hex()
    return out


def add_routes(r: web.UrlDispatcher, node: Node) -> None:
    api = DebugApi(node)
    r.add_get("/debug/status", api.status)
    r.add_get("/debug/log", api.log)
    r.add_get("/debug/hash", api.hash)
    r.add_get("/debug/trace", api.trace)
    r.add_post("/debug/failpoints", api.failpoints)
    r.add_post("/debug/clock", api.clock)
    r.add_post("/debug/fsync", api.fsync)
