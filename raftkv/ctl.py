"""`raftkv <command>`: etcdctl-like client commands (everything but `serve`).

Output is readable text by default and JSON with `-w json` (one document per command,
one line per event for `watch`), so scripts never parse the text form. Endpoints come
from `--endpoints` or `RAFTKV_ENDPOINTS`. Exit codes: 0 success, 1 a failed request
or condition, 2 a usage error or an unsupported operation; `lock` exits with its
command's code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from raftkv.client import AsyncClient, KeyNotFound, KeyValue, RaftkvError, default_endpoints
from raftkv.client.snapshot import SnapshotUnsupported, save_snapshot
from raftkv.recipes import Election

COMMANDS = (
    "get",
    "put",
    "del",
    "watch",
    "txn",
    "lease",
    "lock",
    "elect",
    "member",
    "endpoint",
    "snapshot",
    "compact",
)

Out = Callable[[Any, str], None]


def lease_id(raw: str) -> int:
    """Lease ids are hexadecimal, as etcdctl prints and reads them."""
    return int(raw, 16)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raftkv", description="raftkv client commands")
    p.add_argument("--endpoints", default=None, help="comma-separated (env RAFTKV_ENDPOINTS)")
    p.add_argument("-w", "--write-out", choices=("simple", "json"), default="simple")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request attempt")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("get", help="get a key or a prefix")
    s.add_argument("key")
    s.add_argument("--prefix", action="store_true")
    s.add_argument("--rev", type=int, default=0)
    s.add_argument("--keys-only", action="store_true")
    s = sub.add_parser("put", help="put a key")
    s.add_argument("key")
    s.add_argument("value")
    s.add_argument("--lease", type=lease_id, default=0, help="lease id (hex)")
    s.add_argument("--prev-kv", action="store_true")
    s = sub.add_parser("del", help="delete a key or a prefix")
    s.add_argument("key")
    s.add_argument("--prefix", action="store_true")
    s.add_argument("--prev-kv", action="store_true")
    s = sub.add_parser("watch", help="stream changes of a key or prefix")
    s.add_argument("key")
    s.add_argument("--prefix", action="store_true")
    s.add_argument("--rev", type=int, default=0, help="start revision (replays history)")
    s.add_argument("--prev-kv", action="store_true")
    s = sub.add_parser("txn", help="a /v1/txn JSON body from FILE or stdin")
    s.add_argument("file", nargs="?", default="-")
    s = sub.add_parser("lease", help="lease grant|keepalive|revoke|ttl|list")
    ls = s.add_subparsers(dest="action", required=True)
    ls.add_parser("grant").add_argument("ttl", type=int)
    ka = ls.add_parser("keepalive")
    ka.add_argument("id", type=lease_id)
    ka.add_argument("--once", action="store_true")
    ls.add_parser("revoke").add_argument("id", type=lease_id)
    t = ls.add_parser("ttl")
    t.add_argument("id", type=lease_id)
    t.add_argument("--keys", action="store_true")
    ls.add_parser("list")
    s = sub.add_parser("lock", help="run COMMAND while holding the lock NAME")
    s.add_argument("name")
    s.add_argument("--ttl", type=int, default=10)
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    s = sub.add_parser("elect", help="campaign with VALUE, or print/observe the leader")
    s.add_argument("name")
    s.add_argument("value", nargs="?")
    s.add_argument("--ttl", type=int, default=10)
    s.add_argument("-l", "--listen", action="store_true", help="observe leader changes")
    s = sub.add_parser("member", help="member list|add|promote|remove")
    ms = s.add_subparsers(dest="action", required=True)
    ms.add_parser("list")
    a = ms.add_parser("add")
    a.add_argument("name")
    a.add_argument("--peer-urls", required=True)
    a.add_argument("--client-urls", default=None)
    ms.add_parser("promote").add_argument("id", type=lambda x: int(x, 0))
    ms.add_parser("remove").add_argument("id", type=lambda x: int(x, 0))
    s = sub.add_parser("endpoint", help="endpoint status|health across all endpoints")
    s.add_argument("action", choices=("status", "health"))
    s = sub.add_parser("snapshot", help="snapshot save FILE")
    s.add_argument("action", choices=("save",))
    s.add_argument("file")
    s = sub.add_parser("compact", help="forget history before REV")
    s.add_argument("rev", type=int)
    return p


def _printer(fmt: str) -> Out:
    def out(obj: Any, text: str) -> None:
        print(json.dumps(obj) if fmt == "json" else text, flush=True)

    return out


def _kv_text(kv: KeyValue) -> str:
    return f"{kv.key_str}\n{kv.value_str}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# --- commands ---------------------------------------------------------------------------
async def cmd_get(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    if a.prefix:
        r = await c.get_prefix(a.key, revision=a.rev, keys_only=a.keys_only)
        kvs = r.kvs
    else:
        try:
            kvs = [await c.get(a.key, revision=a.rev)]
        except KeyNotFound:
            kvs = []
    text = "\n".join(kv.key_str if a.keys_only else _kv_text(kv) for kv in kvs)
    out({"kvs": [kv.to_json() for kv in kvs], "count": len(kvs)}, text)
    return 0


async def cmd_put(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    r = await c.put(a.key, a.value, lease=a.lease, prev_kv=a.prev_kv)
    prev = r.prev_kv.to_json() if r.prev_kv else None
    text = "OK" + (f"\n{_kv_text(r.prev_kv)}" if r.prev_kv else "")
    out({"revision": r.revision, "prev_kv": prev}, text)
    return 0


async def cmd_del(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    r = await c.delete(a.key, prefix=a.prefix, prev_kv=a.prev_kv)
    text = "\n".join([str(r.deleted), *(_kv_text(kv) for kv in r.prev_kvs)])
    out({"deleted": r.deleted, "revision": r.revision}, text)
    return 0


async def cmd_watch(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    async for e in c.watch(a.key, prefix=a.prefix, start_revision=a.rev, prev_kv=a.prev_kv):
        obj = {"type": e.type, "revision": e.revision, "kv": e.kv.to_json()}
        if e.prev_kv:
            obj["prev_kv"] = e.prev_kv.to_json()
        out(obj, f"{e.type}\n{_kv_text(e.kv)}")
    return 0


async def cmd_txn(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    raw = sys.stdin.read() if a.file == "-" else open(a.file).read()  # noqa: SIM115
    r = await c.txn_raw(json.loads(raw))
    text = ("SUCCESS" if r.succeeded else "FAILURE") + f" (revision {r.revision})"
    for resp in r.responses:
        for kv in getattr(resp, "kvs", []):
            text += "\n" + _kv_text(kv)
    out({"succeeded": r.succeeded, "revision": r.revision}, text)
    return 0 if r.succeeded else 1


async def cmd_lease(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    if a.action == "grant":
        info = await c.grant(a.ttl)
        out(
            {"id": info.id, "id_hex": f"{info.id:x}", "ttl": info.ttl},
            f"lease {info.id:x} granted with TTL({info.ttl}s)",
        )
    elif a.action == "keepalive":
        while True:
            ttl = await c.keepalive_once(a.id)
            out({"id": a.id, "ttl": ttl}, f"lease {a.id:x} keepalived with TTL({ttl})")
            if a.once:
                break
            await asyncio.sleep(max(ttl / 3, 0.5))
    elif a.action == "revoke":
        await c.revoke(a.id)
        out({"id": a.id, "revoked": True}, f"lease {a.id:x} revoked")
    elif a.action == "ttl":
        info = await c.ttl(a.id, keys=a.keys)
        keys = [k.decode("utf-8", "replace") for k in info.keys]
        text = f"lease {a.id:x} granted with TTL({info.granted_ttl}s), remaining({info.ttl}s)"
        if a.keys:
            text += f", attached keys({', '.join(keys)})"
        out({"id": a.id, "ttl": info.ttl, "granted_ttl": info.granted_ttl, "keys": keys}, text)
    else:
        ids = await c.leases()
        out({"leases": ids}, f"found {len(ids)} leases" + "".join(f"\n{i:x}" for i in ids))
    return 0


async def cmd_lock(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        print("raftkv lock: a command is required: raftkv lock NAME -- COMMAND", file=sys.stderr)
        return 2
    async with c.lock(a.name, ttl=a.ttl) as lock:
        env = {**os.environ, "RAFTKV_LOCK_TOKEN": str(lock.fencing_token)}
        env["RAFTKV_LOCK_KEY"] = lock.key
        proc = await asyncio.create_subprocess_exec(*cmd, env=env)
        lost = asyncio.ensure_future(lock.lost.wait())
        done = asyncio.ensure_future(proc.wait())
        await asyncio.wait({lost, done}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():  # the lock is gone: its holder must not go on
            print(f"raftkv lock: lock {a.name} lost, stopping the command", file=sys.stderr)
            proc.terminate()
            await done
            return 1
        lost.cancel()
        return int(done.result())


async def cmd_elect(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    e = Election(c, a.name, ttl=a.ttl)
    if a.value is None:
        if not a.listen:
            kv = await e.leader()
            out({"leader": kv.to_json() if kv else None}, _kv_text(kv) if kv else "")
            return 0 if kv else 1
        async for kv in e.observe():
            out({"leader": kv.to_json() if kv else None}, _kv_text(kv) if kv else "(no leader)")
        return 0
    await e.campaign(a.value)
    out({"elected": True, "key": e.key, "value": a.value}, f"{e.key}\n{a.value}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lost = asyncio.ensure_future(e.lost.wait())
    await asyncio.wait({lost, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED")
    if e.lost.is_set():
        print("raftkv elect: leadership lost (lease expired)", file=sys.stderr)
        return 1
    await e.resign()
    return 0


async def cmd_member(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    if a.action == "list":
        ms = await c.members()
        rows = [["ID", "NAME", "PEER URL", "CLIENT URL", "LEADER", "LEARNER"]]
        for m in ms:
            rows.append(
                [
                    f"{m['id']}",
                    m["name"],
                    m["peer_url"],
                    m.get("client_url") or "",
                    str(m["is_leader"]).lower(),
                    str(m["is_learner"]).lower(),
                ]
            )
        out({"members": ms}, _table(rows))
    elif a.action == "add":
        r = await c.member_add(a.name, a.peer_urls, a.client_urls)
        out(r, f"member {a.name} added as learner with id {r['member']['id']}")
    elif a.action == "promote":
        r = await c.member_promote(a.id)
        out(r, f"member {a.id} promoted")
    else:
        r = await c.member_remove(a.id)
        out(r, f"member {a.id} removed")
    return 0


async def cmd_endpoint(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    results: list[dict[str, Any]] = []
    for ep in c.endpoints:
        t0 = time.monotonic()
        try:
            if a.action == "status":
                st = await c.status(ep)
                results.append({"endpoint": ep, **st})
            else:
                h = await c.health(ep)
                results.append({"endpoint": ep, "health": bool(h.get("health")), "error": ""})
        except RaftkvError as e:
            results.append({"endpoint": ep, "health": False, "error": e.message})
        results[-1]["took_ms"] = round((time.monotonic() - t0) * 1000, 1)
    if a.action == "status":
        rows = [["ENDPOINT", "NAME", "ID", "IS LEADER", "LEADER", "TERM", "REVISION", "DB SIZE"]]
        for r in results:
            if "error" in r:
                rows.append([r["endpoint"], "-", "-", "-", "-", "-", "-", r["error"][:40]])
                continue
            rows.append(
                [
                    r["endpoint"],
                    r["name"],
                    str(r["id"]),
                    str(r["role"] == "leader").lower(),
                    str(r.get("leader_name")),
                    str(r["term"]),
                    str(r["revision"]),
                    _size(int(r["db_size"])),
                ]
            )
        out(results, _table(rows))
        return 0 if all("error" not in r for r in results) else 1
    lines = [
        f"{r['endpoint']} is healthy: took {r['took_ms']}ms"
        if r["health"]
        else f"{r['endpoint']} is unhealthy: {r['error'] or 'not healthy'}"
        for r in results
    ]
    out(results, "\n".join(lines))
    return 0 if all(r["health"] for r in results) else 1


async def cmd_snapshot(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    try:
        size = await save_snapshot(c.transport, a.file)
    except SnapshotUnsupported:
        print("raftkv snapshot: not supported by this server", file=sys.stderr)
        return 2
    out({"file": a.file, "size": size}, f"Snapshot saved at {a.file} ({_size(size)})")
    return 0


async def cmd_compact(c: AsyncClient, a: argparse.Namespace, out: Out) -> int:
    rev = await c.compact(a.rev)
    out({"compact_revision": rev}, f"compacted revision {rev}")
    return 0


HANDLERS: dict[str, Callable[[AsyncClient, argparse.Namespace, Out], Awaitable[int]]] = {
    "get": cmd_get,
    "put": cmd_put,
    "del": cmd_del,
    "watch": cmd_watch,
    "txn": cmd_txn,
    "lease": cmd_lease,
    "lock": cmd_lock,
    "elect": cmd_elect,
    "member": cmd_member,
    "endpoint": cmd_endpoint,
    "snapshot": cmd_snapshot,
    "compact": cmd_compact,
}


async def run(a: argparse.Namespace) -> int:
    eps = a.endpoints.split(",") if a.endpoints else default_endpoints()
    async with AsyncClient(eps, timeout=a.timeout) as c:
        return await HANDLERS[a.command](c, a, _printer(a.write_out))


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    try:
        return asyncio.run(run(a))
    except KeyboardInterrupt:
        return 130
    except (RaftkvError, ValueError, OSError) as e:
        print(f"raftkv {a.command}: {getattr(e, 'message', None) or e}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
