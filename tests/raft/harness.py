"""A tiny synchronous network of Raft cores for scripted protocol tests.

Messages are delivered in FIFO order by `deliver()`; links can be cut with `cut()`.
Each node's Ready is handled exactly as the contract says: persist, send, apply,
advance. Applied normal entries are recorded per node.
"""

from __future__ import annotations

import random

from raftkv.raft import (
    Config,
    EntryType,
    MemoryStorage,
    Message,
    Raft,
    Ready,
    bootstrap,
)


class Net:
    def __init__(self, ids: list[int], **cfg: object) -> None:
        self.cfg = cfg
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, Raft] = {}
        self.applied: dict[int, list[bytes]] = {}
        self.reads: dict[int, list[tuple[int, bytes]]] = {}
        self.inbox: list[Message] = []
        self.cut_links: set[tuple[int, int]] = set()
        self.sent: list[Message] = []
        entries, hs, cs = bootstrap(ids)
        for nid in ids:
            st = MemoryStorage()
            st.append(entries)
            st.set_hard_state(hs)
            st.conf_state = cs
            self.storages[nid] = st
            self.start(nid)
        self.flush()  # apply the founding conf changes, as a driver's first Ready does

    def start(self, nid: int, storage: MemoryStorage | None = None) -> Raft:
        if storage is not None:
            self.storages[nid] = storage
        st = self.storages[nid]
        cfg = Config(id=nid, applied=st.snapshot().meta.index, **self.cfg)  # type: ignore[arg-type]
        self.nodes[nid] = Raft(cfg, st, random.Random(nid))
        self.applied.setdefault(nid, [])
        self.reads.setdefault(nid, [])
        return self.nodes[nid]

    def stop(self, nid: int) -> None:
        del self.nodes[nid]

    def cut(self, a: int, b: int) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, a: int) -> None:
        for b in self.storages:
            if b != a:
                self.cut(a, b)

    def heal(self) -> None:
        self.cut_links.clear()

    def handle_ready(self, nid: int) -> Ready | None:
        r = self.nodes[nid]
        if not r.has_ready():
            return None
        rd = r.ready()
        for m in rd.early_messages:  # may go before persisting (contract step 0)
            self.sent.append(m)
            if (m.frm, m.to) not in self.cut_links:
                self.inbox.append(m)
        st = self.storages[nid]
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        for m in rd.messages:
            self.sent.append(m)
            if (m.frm, m.to) not in self.cut_links:
                self.inbox.append(m)
        for e in rd.committed_entries:
            if e.type == EntryType.NORMAL and e.data:
                self.applied[nid].append(e.data)
        self.reads[nid].extend((rs.index, rs.context) for rs in rd.read_states)
        r.advance(rd)
        return rd

    def flush(self) -> None:
        """Handle every node's Ready until none has output (no delivery)."""
        progress = True
        while progress:
            progress = any(self.handle_ready(nid) is not None for nid in sorted(self.nodes))

    def deliver(self, max_rounds: int = 10_000) -> None:
        """Flush and deliver messages until the network is quiet."""
        for _ in range(max_rounds):
            self.flush()
            if not self.inbox:
                return
            batch, self.inbox = self.inbox, []
            for m in batch:
                if m.to in self.nodes and (m.frm, m.to) not in self.cut_links:
                    self.nodes[m.to].step(m)
        raise AssertionError("network never went quiet")

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].tick()

    def tick_all(self, n: int = 1, deliver: bool = True) -> None:
        for _ in range(n):
            for nid in sorted(self.nodes):
                self.nodes[nid].tick()
            if deliver:
                self.deliver()

    def elect(self, nid: int) -> None:
        self.nodes[nid].campaign()
        self.deliver()

    def leader(self) -> int | None:
        from raftkv.raft import Role

        leaders = [n for n, r in self.nodes.items() if r.role == Role.LEADER]
        return max(leaders, key=lambda n: self.nodes[n].term) if leaders else None
