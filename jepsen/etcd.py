"""``--db etcd``: the same workloads against a real etcd 3.4 on loopback.

``EtcdCluster`` starts three (or five) etcd members whose peer traffic goes through a
``SniffingNet`` (per-link fault semantics, see proxy.py); ``EtcdHttp`` speaks etcd's
v3 JSON gateway but answers in raftkv's ``/v1`` shapes, so every workload and checker
runs unchanged and the two systems are judged by the same code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp

from jepsen.client import Http, Reply
from jepsen.cluster import Cluster, _fresh
from jepsen.proxy import SniffingNet

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
TOKEN = "jepsen"


def member_id(peer_urls: list[str], token: str) -> str:
    """etcd's member ID for an initial member: sha1(sorted URLs + cluster token)[:8]."""
    h = hashlib.sha1(("".join(sorted(peer_urls)) + token).encode()).digest()
    return format(int.from_bytes(h[:8], "big"), "x")


class EtcdCluster(Cluster):
    async def setup(self) -> None:
        (self.root / "nodes").mkdir(parents=True, exist_ok=True)
        tmp = SniffingNet(0, {})
        ports = {n: await tmp.add_inbound(n, self.names) for n in self.names}
        ids = {n: member_id([f"http://127.0.0.1:{ports[n]}"], TOKEN) for n in self.names}
        self.ids = ids
        self.net = tmp
        tmp.by_id = {mid: name for name, mid in ids.items()}
        taken = set(ports.values())
        for node in self.nodes.values():
            node.client_port, node.peer_port = _fresh(taken), _fresh(taken)
            tmp.set_target(node.name, node.peer_port)
        self.initial_all = ",".join(f"{n}=http://127.0.0.1:{ports[n]}" for n in self.names)
        self.proxy_ports = ports
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        for n in self.names:
            self.start(n)

    def start(self, name: str) -> None:
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            return
        node.data_dir.mkdir(parents=True, exist_ok=True)
        state = "existing" if any(node.data_dir.iterdir()) else "new"
        cmd = [
            ETCD,
            "--name", name,
            "--data-dir", str(node.data_dir / "etcd"),
            "--listen-client-urls", node.url,
            "--advertise-client-urls", node.url,
            "--listen-peer-urls", f"http://127.0.0.1:{node.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.proxy_ports[name]}",
            "--initial-cluster", self.initial_all,
            "--initial-cluster-token", TOKEN,
            "--initial-cluster-state", state,
            "--logger", "zap",
        ]  # fmt: skip
        with open(node.log, "ab") as out:
            out.write(f"=== jepsen: start {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            node.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "ETCD_UNSUPPORTED_ARCH": ""},
            )
        node.paused = False

    async def status(self, name: str) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            url = self.nodes[name].url + "/v3/maintenance/status"
            async with self._http.post(url, data=b"{}") as r:
                if r.status != 200:
                    return None
                d: dict[str, Any] = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return None
        by_id = {v: k for k, v in self.ids.items()}
        leader = format(int(d.get("leader", 0)), "x")
        return {
            "leader_name": by_id.get(leader),
            "applied": int(d.get("raftAppliedIndex") or d.get("raftIndex", 0)),
            "revision": int(d["header"].get("revision", 0)),
            "raw": d,
        }


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _unb64(s: str | None) -> str:
    return base64.b64decode(s or "").decode(errors="replace")


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte below 0xff
    incremented (what ``clientv3.WithPrefix`` computes); all-0xff means "to the end"."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


def watch_messages(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One etcd ``/v3/watch`` result as raftkv ``/v1/watch`` NDJSON messages.

    raftkv sends one message per revision; etcd batches a replay of history (several
    revisions) into one message whose header carries the *current* revision, so events
    are regrouped by their own ``kv.mod_revision``, keeping their order. A revision
    that etcd split across two results therefore stays split, and the checker sees it.
    """
    if "compact_revision" in result:
        return [{"compact_revision": int(result["compact_revision"])}]
    if result.get("canceled"):
        return [{"canceled": True, "reason": result.get("cancel_reason", "")}]
    rev = int(result.get("header", {}).get("revision", 0))
    if result.get("created"):
        return [{"created": True, "revision": rev}]
    out: list[dict[str, Any]] = []
    for e in result.get("events") or []:
        kv = e.get("kv") or {}
        mod = int(kv.get("mod_revision", 0))
        ev = {
            "type": e.get("type", "PUT"),  # PUT is enum 0, omitted on the wire
            "kv": {
                "key": _unb64(kv.get("key")),
                "value": _unb64(kv["value"]) if "value" in kv else None,
                "mod_revision": mod,
            },
        }
        if out and out[-1]["revision"] == mod:
            out[-1]["events"].append(ev)
        else:
            out.append({"revision": mod, "events": [ev]})
    if not out and not result.get("events"):
        out.append({"progress": True, "revision": rev})
    return out


def _kv(kv: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": _unb64(kv.get("key")),
        "value": _unb64(kv.get("value")),
        "create_revision": int(kv.get("create_revision", 0)),
        "mod_revision": int(kv.get("mod_revision", 0)),
        "version": int(kv.get("version", 0)),
        "lease": int(kv.get("lease", 0)),
    }


class EtcdHttp(Http):
    """raftkv's ``/v1`` calls translated to etcd's ``/v3`` gateway, one request each."""

    async def _v3(self, base: str, path: str, body: dict[str, Any]) -> Reply:
        return await Http.call(self, "POST", f"{base}/v3/{path}", body)

    async def request(
        self, method: str, base: str, key: str, query: str = "", body: bytes | None = None
    ) -> Reply:
        q = {k: (v[0] if v else "") for k, v in parse_qs(query.lstrip("?"), True).items()}
        if method == "GET":
            rep = await self._v3(
                base, "kv/range", {"key": _b64(key), "serializable": "serializable" in q}
            )
            if rep.kind != "http" or rep.status != 200:
                return rep
            rev = int(rep.body["header"]["revision"])
            kvs = rep.body.get("kvs") or []
            if not kvs:
                return Reply("http", 404, {"revision": rev})
            return Reply("http", 200, {**_kv(kvs[0]), "revision": rev})
        if method == "DELETE":
            rep = await self._v3(base, "kv/deleterange", {"key": _b64(key)})
            if rep.kind == "http" and rep.status == 200:
                rev = int(rep.body["header"]["revision"])
                return Reply(
                    "http", 200, {"deleted": int(rep.body.get("deleted", 0)), "revision": rev}
                )
            return rep
        put: dict[str, Any] = {"key": _b64(key), "value": _b64(body or b"")}
        if "lease" in q:
            put["lease"] = int(q["lease"])
        cmp: list[dict[str, Any]] = []
        if "if_absent" in q:
            cmp.append(
                {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": 0}
            )
        if "if_value" in q:
            cmp.append(
                {
                    "key": _b64(key),
                    "target": "VALUE",
                    "result": "EQUAL",
                    "value": _b64(q["if_value"]),
                }
            )
        if "if_mod_revision" in q:
            cmp.append(
                {
                    "key": _b64(key),
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": int(q["if_mod_revision"]),
                }
            )
        if not cmp:
            rep = await self._v3(base, "kv/put", put)
            if rep.kind == "http" and rep.status == 200:
                return Reply("http", 200, {"revision": int(rep.body["header"]["revision"])})
            return rep
        txn = {
            "compare": cmp,
            "success": [{"request_put": put}],
            "failure": [{"request_range": {"key": _b64(key)}}],
        }
        rep = await self._v3(base, "kv/txn", txn)
        if rep.kind != "http" or rep.status != 200:
            return rep
        rev = int(rep.body["header"]["revision"])
        if rep.body.get("succeeded"):
            return Reply("http", 200, {"revision": rev})
        kvs = (rep.body.get("responses") or [{}])[0].get("response_range", {}).get("kvs") or []
        return Reply("http", 412, {"current": _kv(kvs[0]) if kvs else None, "revision": rev})

    async def watch(
        self, session: aiohttp.ClientSession, base: str, prefix: str, start: int
    ) -> AsyncIterator[dict[str, Any]]:
        """raftkv's ``GET /v1/watch/<prefix>?prefix&start_revision=N`` stream, from
        etcd's streaming ``POST /v3/watch``: one create_request in the body (etcd keeps
        the response open after the body ends), then each ``{"result": ...}`` line
        translated by ``watch_messages``. Transport errors propagate as they would
        from the native stream; an etcd error body ends the stream with ValueError."""
        create = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(prefix_end(prefix.encode())),
                "start_revision": start,
            }
        }
        async with session.post(f"{base}/v3/watch", data=json.dumps(create).encode()) as r:
            if r.status != 200:
                raise ValueError(f"watch: HTTP {r.status} {(await r.read())[:200]!r}")
            async for line in r.content:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "result" not in msg:
                    raise ValueError(f"watch: {msg.get('error') or msg}")
                for m in watch_messages(msg["result"]):
                    yield m

    async def call(self, method: str, url: str, body: Any = None) -> Reply:
        base, _, path = url.partition("/v1/")
        if path == "txn":
            return await self._txn(base, body)
        if path == "lease/grant":
            rep = await self._v3(base, "lease/grant", {"TTL": body["ttl"], "ID": body.get("id", 0)})
            if rep.kind == "http" and rep.status == 200 and not rep.body.get("error"):
                return Reply("http", 200, {"id": int(rep.body["ID"]), "ttl": int(rep.body["TTL"])})
            return rep if rep.kind != "http" or rep.status != 200 else Reply("http", 400, rep.body)
        lease = int(path.split("/")[1])
        if path.endswith("/keepalive"):
            rep = await self._v3(base, "lease/keepalive", {"ID": lease})
            if rep.kind == "http" and rep.status == 200:
                res = rep.body.get("result") or {}
                ttl = int(res.get("TTL", 0))
                return (
                    Reply("http", 200, {"id": lease, "ttl": ttl})
                    if ttl > 0
                    else Reply("http", 404, res)
                )
            return rep
        rep = await self._v3(base, "lease/revoke", {"ID": lease})
        if rep.kind == "http" and rep.status == 200:
            return Reply("http", 200, {"revision": int(rep.body["header"]["revision"])})
        return rep

    async def _txn(self, base: str, t: dict[str, Any]) -> Reply:
        def cmp(c: dict[str, Any]) -> dict[str, Any]:
            out = {**c, "key": _b64(c["key"])}
            if "value" in out:
                out["value"] = _b64(out["value"])
            return out

        def op(o: dict[str, Any]) -> dict[str, Any]:
            if "put" in o:
                p = o["put"]
                return {
                    "request_put": {**p, "key": _b64(p["key"]), "value": _b64(p.get("value", ""))}
                }
            if "delete" in o:
                return {"request_delete_range": {"key": _b64(o["delete"]["key"])}}
            return {"request_range": {"key": _b64(o["range"]["key"])}}

        body = {
            "compare": [cmp(c) for c in t.get("compare", [])],
            "success": [op(o) for o in t.get("success", [])],
            "failure": [op(o) for o in t.get("failure", [])],
        }
        rep = await self._v3(base, "kv/txn", body)
        if rep.kind == "http" and rep.status == 200:
            out = {
                "succeeded": bool(rep.body.get("succeeded")),
                "revision": int(rep.body["header"]["revision"]),
            }
            return Reply("http", 200, out)
        return rep
