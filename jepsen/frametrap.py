"""Frame traps: scripted misdelivery of raftkv's AppendEntries on one proxied link.

Two planted bugs only show when a follower's view of the log goes wrong in a window
of milliseconds that no random fault hits on purpose:

* a follower that truncates its log on a stale or duplicate append (the planted
  ``truncate-on-stale-append``) must *receive* an old append after a newer one — TCP
  proxies keep a link's frames in order, so the trap replays it;
* a new leader that serves reads before committing an entry of its own term (the
  planted ``no-noop-read-wait``) is only wrong if it does not yet know that entries it
  holds are committed — the old leader sends the new commit index before it answers
  its clients, so the trap swallows every frame after the one that carried them.

A trap is armed by the nemesis (``lag-elect:stale-append`` and
``lag-elect:commit-unknown`` in jepsen/nemesis.py) and fires once, on an append ``F``
with entries that the follower cannot have counted as committed yet (``F.first >
F.commit``): ``duplicate`` forwards ``F`` and then again the append sent just before
it, 50 ms later (still uncommitted, so a correct follower ignores it and a buggy one
drops ``F``'s entries — after it has acknowledged them: delivered together, the
follower would replace ``F``'s entries before its ack left and withdraw the ack),
``freeze`` forwards ``F`` alone. After firing, every frame is dropped: the
sender is about to be killed and must not repair the follower first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from raftkv.raft.messages import MessageType
from raftkv.transport.codec import FRAME_HEADER, MSGS
from raftkv.transport.codec import frame as codec_frame

# Positions in a raftkv wire message (raftkv/transport/codec.py message_to_raw).
TYPE, TERM, PREV_INDEX, ENTRIES, COMMIT, REJECT = 0, 3, 5, 6, 7, 8
ENTRY_TERM, ENTRY_INDEX = 0, 1
REPLAY_AFTER = 0.05  # s between an append and its stale duplicate: the ack has left


@dataclass(frozen=True)
class Appends:
    """The AppendEntries with entries in one frame, summarised."""

    term: int
    prev: int  # index just before the first entry
    first: int
    last: int
    commit: int  # the highest commit index the frame tells the follower


def messages(frame: bytes) -> list[list[Any]]:
    """The raw Raft messages a frame carries (none for hello and snapshot frames)."""
    body = msgpack.unpackb(frame[FRAME_HEADER.size :], raw=False)
    return list(body[1]) if body[0] == MSGS else []


def appends(frame: bytes) -> Appends | None:
    """The frame's appends, or None for any other frame (hello, heartbeats, votes)."""
    apps = [m for m in messages(frame) if m[TYPE] == MessageType.APP and m[ENTRIES]]
    if not apps:
        return None
    return Appends(
        term=max(m[TERM] for m in apps),
        prev=min(m[PREV_INDEX] for m in apps),
        first=min(m[ENTRIES][0][ENTRY_INDEX] for m in apps),
        last=max(m[ENTRIES][-1][ENTRY_INDEX] for m in apps),
        commit=max(m[COMMIT] for m in apps),
    )


class FrameTrap:
    """A ``jepsen.proxy.Tap``: passes frames until armed, then fires once (see the
    module docstring) and drops every frame after."""

    def __init__(self, mode: str, min_pending: int = 1) -> None:
        if mode not in ("duplicate", "freeze"):
            raise ValueError(f"unknown trap mode {mode!r}")
        self.mode = mode
        # ``freeze`` waits for an append after which the follower holds at least this
        # many entries it cannot know are committed (the nemesis lowers it to 1 if
        # none comes): the more acknowledged writes a new leader is unsure of, the
        # likelier a read of one of them.
        self.min_pending = min_pending
        self.armed = False
        self.fired = asyncio.Event()
        self.detail: dict[str, Any] = {}
        self.dropped = 0
        self._prev: tuple[Appends, bytes] | None = None

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if self.fired.is_set():
            self.dropped += 1
            return []
        app = appends(frame)
        if app is None:
            return [frame]
        prev = self._prev
        self._prev = (app, frame)
        if not self.armed or app.first <= app.commit:
            return [frame]
        if self.mode == "freeze":
            if app.last - app.commit < self.min_pending:
                return [frame]
            self._fire(app, None)
            return [frame]
        if prev is None or prev[0].term != app.term or prev[0].last != app.prev:
            return [frame]
        if prev[0].first <= app.commit:
            return [frame]  # a replay of committed entries would only be refused
        self._fire(app, prev[0])
        return [frame, REPLAY_AFTER, prev[1]]

    def _fire(self, app: Appends, replayed: Appends | None) -> None:
        self.fired.set()
        self.detail = {"forwarded": [app.first, app.last], "commit_sent": app.commit}
        if replayed is not None:
            self.detail["replayed"] = [replayed.first, replayed.last]


class SlowAppendAcks:
    """A ``jepsen.proxy.Tap`` that delivers append responses ``hold`` seconds late and
    lets everything else (votes, heartbeat responses) overtake them.

    Put on a lagging follower's link to a new leader, it stretches the time until
    the new leader's no-op commits (the follower's rejection, then its ack, each
    arrive late) without slowing the election or the heartbeat round that confirms a
    read — the window in which only a leader that waits for its no-op stays correct.
    """

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.held = 0

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if any(m[TYPE] == MessageType.APP_RESP for m in messages(frame)):
            self.held += 1
            return [(self.hold, frame)]
        return [frame]


class HoldTrap:
    """A ``jepsen.proxy.Tap`` that, once armed, holds every frame instead of
    forwarding it, until ``release`` delivers them all in order.

    On an isolated leader's link to a follower it turns the leader's appends into
    messages from the past: released after another node has been elected and has
    replicated to that follower, they are appends of a stale term, which a correct
    follower refuses (the planted ``stale-term-accepted`` obeys them).
    """

    def __init__(self) -> None:
        self.armed = False
        self.held: list[bytes] = []
        self.released = 0
        self.attaches = 0  # connections seen: a restarted receiver means a new one
        self._writer: asyncio.StreamWriter | None = None

    def attach(self, writer: asyncio.StreamWriter) -> None:
        """The proxy hands over the connection's downstream writer (see ProxyNet);
        frames held from an earlier connection go out on the newest one."""
        self._writer = writer
        self.attaches += 1

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if not self.armed:
            return [frame]
        self.held.append(frame)
        return []

    def release(self) -> int:
        """Deliver every held frame now; later frames pass. Returns how many."""
        self.armed = False
        w = self._writer
        if w is None or w.is_closing():
            return 0
        for frame in self.held:
            w.write(frame)
        self.released, self.held = len(self.held), []
        return self.released


class PreVoteGate:
    """Two ``jepsen.proxy.Tap``s (``side(0)``, ``side(1)``) on the links between two
    followers that make them candidates of the same term with crossing vote requests.

    Stage 1 holds each one's pre-vote *grant* to the other until both have granted
    one, then delivers both at once: both pass their pre-vote together. Stage 2 holds
    each one's vote request until both have sent one: both are candidates of the same
    term before either hears of the other. Everything else overtakes what is held.

    With pre-vote, two candidates in one term are otherwise rare (the second one's
    pre-vote reaches a node that is already a candidate and is refused); this is the
    situation in which a node that grants a second vote in a term (the planted
    ``double-vote``) elects two leaders.
    """

    def __init__(self) -> None:
        self.armed = False
        self.stage = 0
        self.fired = asyncio.Event()  # both stages done
        self._held: list[list[bytes]] = [[], []]
        self._writers: list[asyncio.StreamWriter | None] = [None, None]

    def side(self, i: int) -> _GateSide:
        return _GateSide(self, i)

    def _wanted(self, m: list[Any]) -> bool:
        if self.stage == 0:
            return bool(m[TYPE] == MessageType.PRE_VOTE_RESP and not m[REJECT])
        return bool(m[TYPE] == MessageType.VOTE)

    def _offer(self, i: int, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if not self.armed or self.fired.is_set():
            return [frame]
        if not any(self._wanted(m) for m in messages(frame)):
            return [frame]  # everything else overtakes what is held
        self._held[i].append(frame)
        if not (self._held[0] and self._held[1]):
            return []
        other = self._writers[1 - i]
        if other is not None and not other.is_closing():
            for f in self._held[1 - i]:
                other.write(f)
        out: list[bytes | float | tuple[float, bytes]] = list(self._held[i])
        self._held = [[], []]
        self.stage += 1
        if self.stage == 2:
            self.fired.set()
        return out


class _GateSide:
    def __init__(self, gate: PreVoteGate, i: int) -> None:
        self.gate, self.i = gate, i

    def attach(self, writer: asyncio.StreamWriter) -> None:
        self.gate._writers[self.i] = writer

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        return self.gate._offer(self.i, frame)


class RevealTrap:
    """A ``jepsen.proxy.Tap`` on a link between followers: once armed, it lets a new
    leader's appends through until the first frame that would tell the follower
    anything of the new term is committed (an append's or heartbeat's commit index
    reaching the term's first entry), and drops that frame and every one after it.

    The follower is left holding the new leader's no-op and whatever client writes
    came with it — acknowledged by the leader once the (slowed) acks arrive — while
    it still believes none of them is committed: the one state in which a follower
    that obeys a stale leader's append (``stale-term-accepted``) can overwrite them.
    """

    def __init__(self) -> None:
        self.armed = False
        self.fired = asyncio.Event()
        self.detail: dict[str, Any] = {}
        self.dropped = 0
        self._term_start: int | None = None
        self._held_through = 0

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if self.fired.is_set():
            self.dropped += 1
            return []
        if not self.armed:
            return [frame]
        kinds = (MessageType.APP, MessageType.HEARTBEAT)
        msgs = [m for m in messages(frame) if m[TYPE] in kinds]
        if not msgs:
            return [frame]
        if self._term_start is None:
            firsts = [m[ENTRIES][0][ENTRY_INDEX] for m in msgs if m[ENTRIES]]
            if firsts:
                self._term_start = min(firsts)
        start = self._term_start
        if start is not None and any(m[COMMIT] >= start for m in msgs):
            self.fired.set()
            self.detail = {"term_start": start, "held_through": self._held_through}
            self.dropped += 1
            return []
        for m in msgs:
            if m[ENTRIES]:
                self._held_through = max(self._held_through, m[ENTRIES][-1][ENTRY_INDEX])
        return [frame]


def rewrite(frame: bytes, edit: Callable[[list[Any]], list[Any] | None]) -> bytes | None:
    """The frame with ``edit`` applied to each Raft message it carries (None drops
    the message), re-framed; None when no message is left. Other frames pass as is."""
    body = msgpack.unpackb(frame[FRAME_HEADER.size :], raw=False)
    if body[0] != MSGS:
        return frame
    kept = [out for m in body[1] if (out := edit(m)) is not None]
    return codec_frame([MSGS, kept]) if kept else None


class EntryFilter:
    """A ``jepsen.proxy.Tap`` whose mode the nemesis switches during a script:

    * ``pass`` — every frame as it is;
    * ``no-appends`` — appends that carry entries are dropped; votes, heartbeats and
      every response pass, so a new leader keeps its first entry to itself while it
      stays leader;
    * ``old-terms-only`` — from each append the entries of the sender's current term
      are cut, the rest delivered: the follower acknowledges a leader's older-term
      entries without its no-op — the one ack a leader must not commit on (Raft
      §5.4.2, Figure 8) and the planted ``figure8-commit`` does.
    """

    MODES = ("pass", "no-appends", "old-terms-only")

    def __init__(self) -> None:
        self.mode = "pass"
        self.dropped = 0  # appends dropped (no-appends)
        self.cut_entries = 0  # current-term entries cut (old-terms-only)
        self.commit_told = 0  # highest commit index delivered while old-terms-only

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if self.mode == "pass":
            return [frame]
        if self.mode not in self.MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        out = rewrite(frame, self._edit)
        return [out] if out is not None else []

    def _edit(self, m: list[Any]) -> list[Any] | None:
        if m[TYPE] in (MessageType.APP, MessageType.HEARTBEAT) and self.mode == "old-terms-only":
            self.commit_told = max(self.commit_told, m[COMMIT])
        if m[TYPE] != MessageType.APP or not m[ENTRIES]:
            return m
        if self.mode == "no-appends":
            self.dropped += 1
            return None
        old = [e for e in m[ENTRIES] if e[ENTRY_TERM] < m[TERM]]
        self.cut_entries += len(m[ENTRIES]) - len(old)
        return [*m[:ENTRIES], old, *m[ENTRIES + 1 :]]


class DropVoteRequests:
    """A ``jepsen.proxy.Tap`` that, once armed, drops the sender's pre-vote and vote
    requests and passes everything else: a node whose requests never arrive cannot be
    elected, so the election is left to the others — for ``lag-elect``, to the node
    kept behind, which a correct voter refuses."""

    def __init__(self) -> None:
        self.armed = False
        self.dropped = 0

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        if not self.armed:
            return [frame]
        out = rewrite(frame, self._edit)
        return [out] if out is not None else []

    def _edit(self, m: list[Any]) -> list[Any] | None:
        if m[TYPE] in (MessageType.PRE_VOTE, MessageType.VOTE):
            self.dropped += 1
            return None
        return m


class Chain:
    """Two taps in a row on one link (each frame through the first, what it passes
    through the second); ``attach`` reaches both."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def attach(self, writer: asyncio.StreamWriter) -> None:
        for t in (self.first, self.second):
            if (attach := getattr(t, "attach", None)) is not None:
                attach(writer)

    def __call__(self, frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
        out: list[bytes | float | tuple[float, bytes]] = []
        for item in self.first(frame):
            out.extend(self.second(item) if isinstance(item, bytes) else [item])
        return out
