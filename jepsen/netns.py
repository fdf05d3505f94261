"""Optional network backend: one network namespace per node, faults in the kernel.

The default backend (jepsen/proxy.py) needs no privileges but only reaches traffic
that goes through its proxies, and it models loss as a dead connection. With root,
this backend gives every node its own namespace and address, so raftkv dials its
peers directly and every fault acts on real packets:

* topology: a per-run bridge ``rkj<tag>br`` in the root namespace holds
  ``10.213.<net>.1/24``; node i lives in namespace ``rkj<tag>-<name>`` with a veth
  (``eth0`` inside, ``rkj<tag>h<i>`` on the bridge) at ``10.213.<net>.<10+i>``.
  The harness, in the root namespace, reaches every node through the bridge, and no
  fault ever touches harness↔node traffic (faults match node addresses only, in
  the nodes' own namespaces) — the same scope as the proxy backend.
* ``<tag>`` is the harness pid (6 hex digits; Linux pids are < 2**22) plus a per-process
  counter (2 hex digits), so concurrent runs never share a name, and a leftover from a
  crashed run names a pid that is gone: ``cleanup_stale`` removes only those.
* cut src→dst: ``-A OUTPUT -d <dst> -j DROP`` in src's namespace (a blackhole, like
  the proxy's cut: senders see silence, not errors). A one-way cut drops *packets*,
  so it also starves dst→src TCP streams of their ACKs — what a real one-way
  firewall does, and stricter than the proxy, which only silences src's own stream.
* drop: ``-m statistic --mode random --probability p -j DROP`` on src→dst packets.
  The proxy's ``drop`` is the chance that a *chunk* (a read of up to 64 KiB, in
  practice one Raft message) kills its connection; here the same number is the chance
  that one *packet* is lost. Raft messages between these nodes are mostly one segment
  each, so loss events happen at the same rate, but each costs less: TCP retransmits
  the segment after its RTO (>= 200 ms) instead of the stream being torn down.
  Using iptables rather than netem's ``loss`` keeps loss available on kernels built
  without sch_netem (like the one this was written on).
* delay src→dst: an HTB root on src's ``eth0`` (default class unshaped), one class per
  delayed destination with a ``netem delay`` leaf and a u32 filter on the destination
  address. Needs sch_netem; without it ``set(delay=...)`` raises ``NetnsUnsupported``
  (``netem_available()`` lets a caller refuse up front).

Rules are rebuilt per source namespace from the link states on every change
(``iptables-restore`` swaps the whole filter table at once, so a change never opens a
window without the rules that should stay).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jepsen.cluster import Cluster, Node
from jepsen.proxy import LinkState

PREFIX = "rkj"
CLIENT_PORT = 2379  # every node has its own address, so fixed ports never collide
PEER_PORT = 2380
_counter = itertools.count()
# Names this module creates, and nothing else: the cleanup of crashed runs matches these.
_NS_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})([0-9a-f]{{2}})-[A-Za-z0-9_.]+$")
_LINK_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})([0-9a-f]{{2}})(br|h\d+)$")


class NetnsUnsupported(RuntimeError):
    """A fault this host's kernel or tools cannot express."""


def missing_requirements() -> str | None:
    """Why this backend cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the netns backend needs root (network namespaces, veths, iptables)"
    for tool in ("ip", "iptables", "iptables-restore", "tc"):
        if shutil.which(tool) is None:
            return f"the netns backend needs `{tool}` on PATH"
    return None


def _run(*cmd: str, stdin: str | None = None, check: bool = True) -> str:
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete namespaces and links left by crashed runs of this harness: names in this
    module's own format whose creating pid no longer exists. Live runs (other pids
    that still exist, including our own) are never touched. Returns what went."""
    gone: list[str] = []
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NS_RE.match(name)
        if m and not _pid_alive(int(m.group(1), 16)):
            _run("ip", "netns", "del", name, check=False)
            gone.append(name)
    for line in _run("ip", "-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _LINK_RE.match(name)
        if m and not _pid_alive(int(m.group(1), 16)):
            _run("ip", "link", "del", name, check=False)
            gone.append(name)
    return gone


def netem_available() -> bool:
    """Whether the kernel has sch_netem (needed for delay only), probed on a throwaway
    veth pair of our own."""
    probe = f"{PREFIX}{os.getpid():06x}{next(_counter) % 256:02x}h99"
    try:
        _run("ip", "link", "add", probe, "type", "veth", "peer", "name", probe + "p")
    except RuntimeError:
        return False
    try:
        p = subprocess.run(
            ["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"],
            capture_output=True,
            timeout=10,
        )
        return p.returncode == 0
    finally:
        _run("ip", "link", "del", probe, check=False)


@dataclass
class NetnsLink:
    """One ordered node pair; ``state`` has the proxy's fields (cut, delay, drop)."""

    src: str
    dst: str
    state: LinkState = field(default_factory=LinkState)


class NetnsNet:
    """Namespaces, veths and bridge of one cluster, and the faults between them.

    Same interface as ProxyNet for the nemesis: ``links`` keyed by (src, dst),
    ``set``, ``cut_between``, ``heal``, ``close``.
    """

    def __init__(self, seed: int = 0) -> None:
        del seed  # the kernel draws packet loss; kept for ProxyNet's signature
        self.tag = f"{os.getpid():06x}{next(_counter) % 256:02x}"
        self.bridge = f"{PREFIX}{self.tag}br"
        self.links: dict[tuple[str, str], NetnsLink] = {}
        self.ns: dict[str, str] = {}  # node name -> namespace
        self.ip: dict[str, str] = {}
        self.veth: dict[str, str] = {}  # node name -> host-side veth
        self.subnet = ""  # "10.213.N"
        self._bridge_made = False
        self._netem: bool | None = None
        self._shaped: set[str] = set()  # namespaces with a root qdisc of ours
        self._filtered: set[str] = set()  # namespaces with rules of ours

    # --- topology ---

    def _pick_subnet(self) -> str:
        """A 10.213.N.0/24 that no address or route on this host uses yet."""
        used = _run("ip", "-4", "-o", "addr", "show") + _run("ip", "-4", "route", "show")
        start = (os.getpid() + int(self.tag[-2:], 16)) % 254
        for k in range(254):
            n = 1 + (start + k) % 254
            if f"10.213.{n}." not in used:
                return f"10.213.{n}"
        raise RuntimeError("no free 10.213.N.0/24 subnet for the netns backend")

    def setup(self, names: list[str]) -> None:
        """Create the bridge and one namespace per node; on any failure, undo it all."""
        why = missing_requirements()
        if why:
            raise NetnsUnsupported(why)
        with contextlib.suppress(Exception):
            cleanup_stale()
        atexit.register(self._teardown)
        try:
            self.subnet = self._pick_subnet()
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self._bridge_made = True
            _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for name in names:
                self.add_node(name)
        except BaseException:
            self._teardown()
            raise

    def add_node(self, name: str) -> str:
        """A namespace for ``name`` on the bridge (also for members added at runtime);
        returns its address. Links to and from every existing node appear."""
        i = len(self.ns)
        if i > 200:
            raise RuntimeError("the netns backend numbers at most 200 nodes per run")
        ns, veth, ip = f"{PREFIX}{self.tag}-{name}", f"{PREFIX}{self.tag}h{i}", ""
        _run("ip", "netns", "add", ns)
        self.ns[name] = ns
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.veth[name] = veth
        ip = f"{self.subnet}.{10 + i}"
        _run("ip", "link", "set", veth, "master", self.bridge, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        for other in self.ip:
            self.links[(name, other)] = NetnsLink(name, other)
            self.links[(other, name)] = NetnsLink(other, name)
        self.ip[name] = ip
        return ip

    def exec_prefix(self, name: str) -> list[str]:
        """argv prefix that runs a command in ``name``'s namespace. ``ip netns exec``
        execs the command in place (no fork), so the pid Popen returns is the
        command's own and kill/pause signal the right process."""
        return ["ip", "netns", "exec", self.ns[name]]

    # --- faults ---

    def set(self, src: str, dst: str, **kw: float | bool) -> None:
        link = self.links.get((src, dst))
        if link is None:
            return
        if kw.get("delay") and not self.netem_ok():
            raise NetnsUnsupported(
                "link delay needs the netem qdisc (sch_netem), which this kernel lacks; "
                "use the proxy backend for link:delay"
            )
        for k, v in kw.items():
            setattr(link.state, k, v)
        self._apply(src)

    def cut_between(self, a: list[str], b: list[str], one_way: bool = False) -> None:
        for x in a:
            for y in b:
                if x != y:
                    self.set(x, y, cut=True)
                    if not one_way:
                        self.set(y, x, cut=True)

    def heal(self) -> None:
        """Every link back to normal: empty filter tables, no qdiscs of ours."""
        for link in self.links.values():
            link.state = LinkState()
        for name in list(self.ns):
            self._apply(name)

    def netem_ok(self) -> bool:
        if self._netem is None:
            self._netem = netem_available()
        return self._netem

    def _apply(self, src: str) -> None:
        """Rebuild src's filter table and qdisc from the states of its links."""
        ns = self.ns[src]
        out = [(lk.dst, lk.state) for (s, _d), lk in self.links.items() if s == src]
        rules = []
        for dst, st in out:
            if st.cut:
                rules.append(f"-A OUTPUT -d {self.ip[dst]}/32 -j DROP")
            elif st.drop:
                p = min(max(float(st.drop), 0.0), 1.0)
                rules.append(
                    f"-A OUTPUT -d {self.ip[dst]}/32 -m statistic --mode random "
                    f"--probability {p:.6f} -j DROP"
                )
        if rules or ns in self._filtered:
            table = "\n".join(
                [
                    "*filter",
                    ":INPUT ACCEPT [0:0]",
                    ":FORWARD ACCEPT [0:0]",
                    ":OUTPUT ACCEPT [0:0]",
                    *rules,
                    "COMMIT",
                    "",
                ]
            )
            _run("ip", "netns", "exec", ns, "iptables-restore", "-w", "5", stdin=table)
            if rules:
                self._filtered.add(ns)
            else:
                self._filtered.discard(ns)
        delayed = [(dst, float(st.delay)) for dst, st in out if st.delay and not st.cut]
        if ns in self._shaped:
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root")
            self._shaped.discard(ns)
        if delayed:
            tc = ["ip", "netns", "exec", ns, "tc"]
            _run(*tc, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1")
            self._shaped.add(ns)
            _run(
                *tc,
                "class",
                "add",
                "dev",
                "eth0",
                "parent",
                "1:",
                "classid",
                "1:1",
                "htb",
                "rate",
                "10gbit",
            )
            for k, (dst, d) in enumerate(delayed, start=2):
                _run(
                    *tc,
                    "class",
                    "add",
                    "dev",
                    "eth0",
                    "parent",
                    "1:",
                    "classid",
                    f"1:{k}",
                    "htb",
                    "rate",
                    "10gbit",
                )
                _run(
                    *tc,
                    "qdisc",
                    "add",
                    "dev",
                    "eth0",
                    "parent",
                    f"1:{k}",
                    "handle",
                    f"{k}:",
                    "netem",
                    "delay",
                    f"{int(d * 1000)}ms",
                )
                _run(
                    *tc,
                    "filter",
                    "add",
                    "dev",
                    "eth0",
                    "parent",
                    "1:",
                    "protocol",
                    "ip",
                    "u32",
                    "match",
                    "ip",
                    "dst",
                    f"{self.ip[dst]}/32",
                    "flowid",
                    f"1:{k}",
                )

    # --- teardown ---

    def created(self) -> list[str]:
        """Names of everything this instance made that still exists (for tests)."""
        ns = set(_run("ip", "netns", "list", check=False).split())
        links = {
            ln.split(":")[1].strip().split("@")[0]
            for ln in _run("ip", "-o", "link", "show", check=False).splitlines()
            if ln.count(":") >= 2
        }
        mine = f"{PREFIX}{self.tag}"
        return sorted(n for n in ns | links if n.startswith(mine))

    def _teardown(self) -> None:
        """Best effort and idempotent: host veths first (that removes both ends even if
        a stray process keeps a namespace alive), then namespaces, then the bridge."""
        for veth in self.veth.values():
            _run("ip", "link", "del", veth, check=False)
        for ns in self.ns.values():
            _run("ip", "netns", "del", ns, check=False)
        if self._bridge_made:
            _run("ip", "link", "del", self.bridge, check=False)
        self.veth.clear()
        self.ns.clear()
        self._bridge_made = False
        self._filtered.clear()
        self._shaped.clear()
        atexit.unregister(self._teardown)

    async def close(self) -> None:
        self._teardown()


@dataclass
class NetnsNode(Node):
    """A node listening on its namespace's address (fixed ports)."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


class NetnsCluster(Cluster):
    """Cluster with one namespace per node and peers dialling each other directly.

    Unlike the proxy backend, a member added at runtime is reachable by every fault:
    all peer URLs are real addresses, so there is no link the harness cannot cut.
    """

    def __init__(self, root: Path, size: int, seed: int = 0) -> None:
        super().__init__(root, size, seed)
        self.net = NetnsNet(seed)  # type: ignore[assignment]
        self.nodes: dict[str, Node] = {n: self._node(n) for n in self.names}

    def _node(self, name: str) -> NetnsNode:
        return NetnsNode(
            name,
            CLIENT_PORT,
            PEER_PORT,
            self.root / "data" / name,
            self.root / "nodes" / f"{name}.log",
        )

    async def setup(self) -> None:
        import aiohttp

        (self.root / "nodes").mkdir(parents=True, exist_ok=True)
        self.net.setup(self.names)
        for n in self.names:
            node = self.nodes[n]
            assert isinstance(node, NetnsNode)
            node.host = self.net.ip[n]
        initial = ",".join(f"{n}={self.nodes[n].peer_url}" for n in self.names)
        self.initial = {n: initial for n in self.names}
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        for n in self.names:
            self.start(n)

    def _command(self, name: str) -> list[str]:
        return [*self.net.exec_prefix(name), *super()._command(name)]

    def new_node(self, name: str) -> Node:
        node = self._node(name)
        node.host = self.net.add_node(name)
        self.nodes[name] = node
        return node

    def describe(self) -> dict[str, Any]:
        """Where everything lives, for logs and debugging."""
        return {"bridge": self.net.bridge, "ns": dict(self.net.ns), "ip": dict(self.net.ip)}
