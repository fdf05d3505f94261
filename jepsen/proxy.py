"""Per-link TCP proxies: one listener per ordered node pair i→j.

Node i dials node j's peer URL through the proxy for link (i, j), so the harness can
cut, delay or lose one direction of Raft traffic without root or netns. raftkv keeps
one TCP connection per peer and direction, so cutting link (i, j) silences exactly
what i sends to j.

A cut link *blackholes* (accepts and discards, like a firewall DROP) rather than
refusing, so senders see silence, not fast errors. Discarding bytes breaks the
length-prefixed framing, so every connection that lived through a cut is closed on
heal and the sender reconnects cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

FRAME_HEADER = struct.Struct(">I")  # raftkv's peer frames: 4-byte length, then msgpack

# A tap sees each whole frame a link carries (header included) and returns what to
# forward instead: [frame] passes it, [] drops it, [frame, 0.05, older] adds a
# duplicate 50 ms later (a number is a pause in seconds before what follows), and
# [(0.5, frame)] delivers the frame 0.5 s later while later frames overtake it.
Tap = Callable[[bytes], list[bytes | float | tuple[float, bytes]]]


@dataclass
class LinkState:
    cut: bool = False
    delay: float = 0.0  # seconds added to every chunk
    drop: float = 0.0  # probability a chunk kills its connection (models loss)


@dataclass
class Link:
    src: str
    dst: str
    target_port: int
    state: LinkState = field(default_factory=LinkState)
    port: int = 0
    server: asyncio.base_events.Server | None = None
    conns: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    tainted: set[asyncio.StreamWriter] = field(default_factory=set)
    # Set by ``ProxyNet.tap``; a connection accepted while it is set is pumped frame by
    # frame in the src -> dst direction (frames must start at the connection's start).
    tap: Tap | None = None


def _write_unless_closed(w: asyncio.StreamWriter, data: bytes) -> None:
    if not w.is_closing():
        w.write(data)


class ProxyNet:
    """All links of one cluster, in the harness's event loop."""

    def __init__(self, seed: int = 0) -> None:
        self.links: dict[tuple[str, str], Link] = {}
        self.rng = random.Random(seed)

    async def add(self, src: str, dst: str, target_port: int) -> int:
        link = Link(src, dst, target_port)
        link.server = await asyncio.start_server(
            lambda r, w: self._accept(link, r, w), "127.0.0.1", 0
        )
        link.port = link.server.sockets[0].getsockname()[1]
        self.links[(src, dst)] = link
        return link.port

    def set(self, src: str, dst: str, **kw: float | bool) -> None:
        link = self.links.get((src, dst))
        if link is None:
            # A member added at runtime talks to some peers directly (see
            # jepsen/cluster.py): there is no proxy to degrade on that link.
            return
        was_cut = link.state.cut
        for k, v in kw.items():
            setattr(link.state, k, v)
        if link.state.cut and not was_cut:
            # Connections open at the cut are poisoned too: drop in-flight data.
            link.tainted |= set(link.writers)

    def tap(self, src: str, dst: str, tap: Tap) -> None:
        """Route link src -> dst's frames through ``tap`` (a scripted fault that must
        see message boundaries). Open connections are closed so that the sender
        reconnects and the next connection is framed from its first byte."""
        link = self.links[(src, dst)]
        link.tap = tap
        for w in list(link.writers):
            w.close()

    def heal(self, keep_taps: Collection[tuple[str, str]] = ()) -> None:
        """Restore every link and reset connections whose stream lost bytes. Links in
        ``keep_taps`` keep their tap and their connections: a tapped link drops whole
        frames while cut, so its stream is intact and needs no reconnect."""
        for key, link in self.links.items():
            if link.tap is not None and key in keep_taps:
                link.tainted.clear()
            elif link.tap is not None:
                link.tap = None
                link.tainted |= set(link.writers)  # its connections skipped frames
            link.state = LinkState()
            for w in list(link.tainted):
                w.close()
            link.tainted.clear()

    def cut_between(self, a: list[str], b: list[str], one_way: bool = False) -> None:
        for x in a:
            for y in b:
                if x != y:
                    self.set(x, y, cut=True)
                    if not one_way:
                        self.set(y, x, cut=True)

    async def _accept(self, link: Link, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        link.writers.add(w)
        if link.state.cut:
            link.tainted.add(w)
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", link.target_port)
        except OSError:
            w.close()
            link.writers.discard(w)
            return
        link.writers.add(uw)
        if link.state.cut:
            link.tainted.add(uw)
        pair = (w, uw)
        forward = self._pump if link.tap is None else self._pump_frames
        a = asyncio.ensure_future(forward(link, r, uw, pair))
        b = asyncio.ensure_future(self._pump(link, ur, w, pair))
        link.conns |= {a, b}
        try:
            await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (a, b):
                t.cancel()
            for x in pair:
                x.close()
                link.writers.discard(x)
                link.tainted.discard(x)
            link.conns -= {a, b}

    async def _pump(
        self,
        link: Link,
        r: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        while True:
            data = await r.read(65536)
            if not data:
                return
            st = link.state
            if st.cut:
                for x in pair:
                    link.tainted.add(x)
                continue
            if st.drop and self.rng.random() < st.drop:
                return  # a lost segment: the stream is no longer usable
            if st.delay:
                await asyncio.sleep(st.delay)
            w.write(data)
            await w.drain()

    async def _pump_frames(
        self,
        link: Link,
        r: asyncio.StreamReader,
        w: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        """Like ``_pump``, one whole frame at a time through the link's tap (cut,
        delay and drop still apply). Ends, dropping the connection, when the tap is
        removed: the stream then continues unframed. A tap with an ``attach`` method
        gets the downstream writer, to deliver frames it held on its own schedule."""
        if (attach := getattr(link.tap, "attach", None)) is not None:
            attach(w)
        while (tap := link.tap) is not None:
            try:
                head = await r.readexactly(FRAME_HEADER.size)
                (n,) = FRAME_HEADER.unpack(head)
                frame = head + await r.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            st = link.state
            if st.cut:
                continue  # whole frames dropped: the framing survives
            if st.drop and self.rng.random() < st.drop:
                return
            if st.delay:
                await asyncio.sleep(st.delay)
            for out in tap(frame):
                if isinstance(out, bytes):
                    w.write(out)
                elif isinstance(out, tuple):
                    asyncio.get_running_loop().call_later(out[0], _write_unless_closed, w, out[1])
                else:
                    await w.drain()
                    await asyncio.sleep(out)
            await w.drain()

    async def close(self) -> None:
        for link in self.links.values():
            if link.server is not None:
                link.server.close()
            for t in list(link.conns):
                t.cancel()
            for w in list(link.writers):
                with contextlib.suppress(Exception):
                    w.close()
        for link in self.links.values():
            if link.server is not None:
                with contextlib.suppress(Exception):
                    await link.server.wait_closed()


class SniffingNet(ProxyNet):
    """One inbound listener per destination for peers that must all dial one URL.

    etcd derives member IDs from the advertised peer URLs, so every member has to dial
    member j at the same address and a listener cannot know its source from its port.
    Every etcd peer request names its sender in an ``X-Server-From: <member id hex>``
    header, so the listener reads the first request head, attributes the connection
    to link (src, dst) and from then on treats it exactly like a per-link proxy.
    Connections without the header (version and membership probes) are attributed to
    a pseudo-source that no nemesis ever cuts.
    """

    def __init__(self, seed: int, ids: dict[str, str]) -> None:
        super().__init__(seed)
        self.by_id = {mid: name for name, mid in ids.items()}
        self.inbound: dict[str, asyncio.base_events.Server] = {}
        self.ports: dict[str, int] = {}

    async def add_inbound(self, dst: str, names: list[str]) -> int:
        for src in [*names, "?"]:
            if src != dst:
                self.links[(src, dst)] = Link(src, dst, 0)
        srv = await asyncio.start_server(lambda r, w: self._sniff(dst, r, w), "127.0.0.1", 0)
        self.inbound[dst] = srv
        self.ports[dst] = srv.sockets[0].getsockname()[1]
        return self.ports[dst]

    def set_target(self, dst: str, port: int) -> None:
        for (_s, d), link in self.links.items():
            if d == dst:
                link.target_port = port

    async def _sniff(self, dst: str, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = b""
        with contextlib.suppress(Exception):
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = await asyncio.wait_for(r.read(4096), 10)
                if not chunk:
                    break
                head += chunk
        src = "?"
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-server-from:"):
                src = self.by_id.get(line.split(b":", 1)[1].strip().decode(), "?")
        link = self.links[(src, dst)]
        replay = asyncio.StreamReader()
        replay.feed_data(head)

        async def feed() -> None:
            while data := await r.read(65536):
                replay.feed_data(data)
            replay.feed_eof()

        pump = asyncio.ensure_future(feed())
        try:
            await self._accept(link, replay, w)
        finally:
            pump.cancel()

    async def close(self) -> None:
        for srv in self.inbound.values():
            srv.close()
        await super().close()
