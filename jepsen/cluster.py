"""A fresh raftkv cluster of real processes, with peer traffic through ProxyNet.

Each node's ``--initial-cluster`` lists the same names in the same order (member IDs
are positions), but the *other* members' peer URLs point at the proxy for link
self→other; only its own entry is its real peer URL. Only processes started here are
ever signalled, always by pid.

Membership changes (the membership nemesis) keep ``names`` equal to the current
members, so workers picking a node, final reads and ``wait_healthy`` look at the
members there are; ``nodes`` keeps every node ever started (a worker bound to a
removed node still resolves its URL and sees refusals, and ``close`` stops it). A
member added at runtime joins with ``--initial-cluster-state existing``: raftkv
advertises the peer URL a node listens on and every member dials that one URL, so
its inbound peer traffic cannot go through per-link proxies, and it dials the others
at the URLs of the member that let it in (that member's proxies, or that member
directly). Network faults therefore only partly reach a joined node (links the
proxies do not carry are never cut); kill, pause, clock and failpoints reach it fully.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from jepsen.proxy import ProxyNet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh(taken: set[int]) -> int:
    while (p := free_port()) in taken:
        pass
    taken.add(p)
    return p


@dataclass
class Node:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    joined: bool = False  # added at runtime: starts with --initial-cluster-state existing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class Cluster:
    def __init__(self, root: Path, size: int, seed: int = 0) -> None:
        self.root = root
        self.names = [f"n{i + 1}" for i in range(size)]
        self.nodes = {
            n: Node(n, 0, 0, root / "data" / n, root / "nodes" / f"{n}.log") for n in self.names
        }
        self.net = ProxyNet(seed)
        self.initial: dict[str, str] = {}
        self._http: aiohttp.ClientSession | None = None
        # Extra environment for every node, e.g. raftkv's test mode with planted bugs
        # (RAFTKV_MUTATIONS) to show a checker can catch them.
        self.extra_env: dict[str, str] = {}
        self._taken: set[int] = set()

    async def setup(self) -> None:
        (self.root / "nodes").mkdir(parents=True, exist_ok=True)
        # Proxies bind first (they keep their ports); node ports are then picked so
        # they cannot collide with a proxy listener.
        for src in self.names:
            for dst in self.names:
                if dst != src:
                    await self.net.add(src, dst, 0)
        taken = self._taken
        taken |= {link.port for link in self.net.links.values()}
        for node in self.nodes.values():
            node.client_port, node.peer_port = _fresh(taken), _fresh(taken)
        for (_src, dst), link in self.net.links.items():
            link.target_port = self.nodes[dst].peer_port
        for src in self.names:
            parts = []
            for dst in self.names:
                port = self.nodes[dst].peer_port if dst == src else self.net.links[(src, dst)].port
                parts.append(f"{dst}=http://127.0.0.1:{port}")
            self.initial[src] = ",".join(parts)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        for n in self.names:
            self.start(n)

    def _command(self, name: str) -> list[str]:
        """The argv that starts ``name``; a subclass wraps it (e.g. ``ip netns exec``)."""
        node = self.nodes[name]
        cmd = [
            sys.executable,
            "-m",
            "raftkv.cli",
            "serve",
            "--name",
            name,
            "--data-dir",
            str(node.data_dir),
            "--client-url",
            node.url,
            "--peer-url",
            node.peer_url,
        ]
        if node.joined:
            # Its membership (with its id) comes from the cluster, then from members.json.
            cmd += ["--initial-cluster-state", "existing"]
        else:
            cmd += ["--initial-cluster", self.initial[name]]
        return cmd

    def start(self, name: str) -> None:
        """Start or restart a node; a restart reuses its data dir and flags."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            return
        cmd = self._command(name)
        with open(node.log, "ab") as out:
            out.write(f"=== jepsen: start {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            node.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.extra_env}
            )
        node.paused = False

    def kill(self, name: str) -> None:
        """SIGKILL: a crash with no shutdown path."""
        node = self.nodes[name]
        p = node.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
        node.paused = False

    def pause(self, name: str) -> None:
        p = self.nodes[name].proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGSTOP)
            self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        p = self.nodes[name].proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
        self.nodes[name].paused = False

    def alive(self, name: str) -> bool:
        p = self.nodes[name].proc
        return p is not None and p.poll() is None

    async def status(self, name: str) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            async with self._http.get(self.nodes[name].url + "/v1/status") as r:
                if r.status != 200:
                    return None
                data: dict[str, Any] = await r.json()
                return data
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return None

    async def leader(self) -> str | None:
        """The leader named by a majority of reachable nodes, if any."""
        sts = await asyncio.gather(*(self.status(n) for n in self.names))
        votes: dict[str, int] = {}
        for st in sts:
            if st and st.get("leader_name"):
                votes[st["leader_name"]] = votes.get(st["leader_name"], 0) + 1
        for name, v in votes.items():
            if v > len(self.names) // 2:
                return name
        return None

    async def wait_healthy(self, timeout: float) -> dict[str, dict[str, Any]] | None:
        """Every node up, one leader seen by all, applied and revision equal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = await asyncio.gather(*(self.status(n) for n in self.names))
            if all(sts):
                leaders = {s["leader_name"] for s in sts if s}
                applied = {s["applied"] for s in sts if s}
                revs = {s["revision"] for s in sts if s}
                if len(leaders) == 1 and None not in leaders and len(applied) == len(revs) == 1:
                    return {n: s for n, s in zip(self.names, sts, strict=True) if s}
            await asyncio.sleep(0.2)
        return None

    # --- white-box and membership helpers (raftkv only; /debug needs test mode) ---

    async def call(
        self, name: str, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """One JSON request to a node; (0, error text) when it never answered."""
        assert self._http is not None
        try:
            async with self._http.request(
                method,
                self.nodes[name].url + path,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:
                text = await r.text()
                try:
                    data: Any = json.loads(text) if text else None
                except ValueError:
                    data = text
                return r.status, data
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            return 0, repr(e)

    async def debug_status(self, name: str, timeout: float = 2.0) -> dict[str, Any]:
        """The node's /debug/status (role, term, vote, commit, last index...), or {}
        when it did not answer."""
        code, st = await self.call(name, "GET", "/debug/status", timeout=timeout)
        return st if code == 200 and isinstance(st, dict) else {}

    async def members(self, via: str) -> dict[str, dict[str, Any]] | None:
        """The membership as ``via`` sees it, by member name."""
        code, data = await self.call(via, "GET", "/v1/members")
        if code != 200 or not isinstance(data, dict):
            return None
        return {m["name"]: m for m in data.get("members", [])}

    async def remove_member(self, name: str, leader: str) -> dict[str, Any]:
        """Remove ``name`` through the leader, then stop it (a removed member stops
        serving by itself; the kill makes sure) and take it out of ``names``."""
        mem = await self.members(leader)
        if not mem or name not in mem:
            raise RuntimeError(f"{name} is not a member as {leader} sees it: {mem}")
        mid = mem[name]["id"]
        code, data = await self.call(leader, "DELETE", f"/v1/members/{mid}")
        if code != 200:
            raise RuntimeError(f"remove {name} (id {mid}) via {leader}: {code} {data}")
        self.kill(name)
        self.names.remove(name)
        return {"removed": name, "removed_id": mid}

    def new_node(self, name: str) -> Node:
        """A node that is not yet a member, on fresh ports (the replace shape)."""
        node = Node(
            name,
            _fresh(self._taken),
            _fresh(self._taken),
            self.root / "data" / name,
            self.root / "nodes" / f"{name}.log",
        )
        self.nodes[name] = node
        return node

    async def join_member(self, name: str, leader: str, timeout: float = 30.0) -> dict[str, Any]:
        """Add ``name`` (empty data dir) as a learner through the leader, start it with
        ``--initial-cluster-state existing`` and promote it once it has caught up."""
        node = self.nodes[name]
        body = {"name": name, "peer_url": node.peer_url, "client_url": node.url}
        code, data = await self.call(leader, "POST", "/v1/members", body)
        if code != 201:
            raise RuntimeError(f"add {name} via {leader}: {code} {data}")
        mid = data["member"]["id"]
        node.joined = True
        self.start(name)
        self.names.append(name)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            # The leader may have changed meanwhile; any member proxies to the leader.
            via = await self.leader() or leader
            code, last = await self.call(via, "POST", f"/v1/members/{mid}/promote")
            if code == 200:
                return {"added": name, "id": mid, "promoted": True}
            if code == 412 and isinstance(last, dict) and last.get("code") == "not_learner":
                return {"added": name, "id": mid, "promoted": True}
            await asyncio.sleep(0.3)
        return {"added": name, "id": mid, "promoted": False, "last": last}

    def wipe(self, name: str) -> None:
        shutil.rmtree(self.nodes[name].data_dir, ignore_errors=True)

    async def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.proc.pid, signal.SIGCONT)
                    os.kill(node.proc.pid, signal.SIGKILL)
                node.proc.wait(10)
        await self.net.close()
        if self._http is not None:
            await self._http.close()
