"""Frame traps misdeliver exactly what they claim: a stale append replayed after the
newer one (and after a pause), a freeze after the first append with entries the
follower cannot know committed, append responses held while others overtake them —
both on frames built by raftkv's own codec and through a real proxied connection."""

from __future__ import annotations

import asyncio

import pytest

from jepsen.frametrap import (
    REPLAY_AFTER,
    Chain,
    DropVoteRequests,
    EntryFilter,
    FrameTrap,
    HoldTrap,
    PreVoteGate,
    RevealTrap,
    SlowAppendAcks,
    appends,
    messages,
    rewrite,
)
from jepsen.proxy import ProxyNet
from raftkv.raft.messages import Entry, Message, MessageType
from raftkv.transport import codec


def app(prev: int, n: int, commit: int, term: int = 2) -> bytes:
    ents = tuple(Entry(term, prev + 1 + i, data=b"x") for i in range(n))
    m = Message(MessageType.APP, to=2, frm=1, term=term, log_term=term, index=prev,
                entries=ents, commit=commit)  # fmt: skip
    return codec.frame([codec.MSGS, [codec.message_to_raw(m)]])


def msg(kind: MessageType) -> bytes:
    m = Message(kind, to=1, frm=2, term=2)
    return codec.frame([codec.MSGS, [codec.message_to_raw(m)]])


HELLO = codec.frame([codec.HELLO, {"id": 1, "name": "n1", "client_url": "http://x"}])
HEARTBEAT = msg(MessageType.HEARTBEAT)


async def frame_sink(got: list[bytes]) -> asyncio.Server:
    """A peer that records every whole frame it receives, in order."""

    async def collect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await r.readexactly(4)
                got.append(head + await r.readexactly(int.from_bytes(head, "big")))
            except asyncio.IncompleteReadError:
                return

    return await asyncio.start_server(collect, "127.0.0.1", 0)


def test_appends_summarises_only_appends_with_entries() -> None:
    a = appends(app(10, 3, 9))
    assert a is not None and (a.prev, a.first, a.last, a.commit, a.term) == (10, 11, 13, 9, 2)
    assert appends(app(10, 0, 9)) is None  # an empty append carries no entries
    assert appends(HELLO) is None and appends(HEARTBEAT) is None


def test_duplicate_trap_replays_the_previous_uncommitted_append_then_goes_silent() -> None:
    trap = FrameTrap("duplicate")
    p, f = app(10, 2, 9), app(12, 1, 10)
    assert trap(HELLO) == [HELLO] and trap(p) == [p] and trap(f) == [f]  # not armed
    trap.armed = True
    committed = app(13, 1, 14)  # its entry is already known committed: no replay
    assert trap(committed) == [committed]
    p2, f2 = app(14, 2, 14), app(16, 2, 14)
    assert trap(p2) == [p2]
    assert trap(f2) == [f2, REPLAY_AFTER, p2]
    assert trap.fired.is_set()
    assert trap.detail == {"forwarded": [17, 18], "commit_sent": 14, "replayed": [15, 16]}
    assert trap(HEARTBEAT) == [] and trap(app(18, 1, 18)) == [] and trap.dropped == 2


def test_duplicate_trap_never_replays_a_non_contiguous_or_older_term_append() -> None:
    trap = FrameTrap("duplicate")
    trap.armed = True
    assert trap(app(10, 2, 5, term=2)) == [app(10, 2, 5, term=2)]
    gap = app(20, 1, 5, term=2)  # does not follow the previous append
    assert trap(gap) == [gap]
    newer = app(21, 1, 5, term=3)  # follows it, but in a new term
    assert trap(newer) == [newer] and not trap.fired.is_set()


def test_freeze_trap_waits_for_enough_pending_entries() -> None:
    trap = FrameTrap("freeze", min_pending=4)
    trap.armed = True
    small, big = app(10, 2, 9), app(12, 3, 9)
    assert trap(small) == [small] and not trap.fired.is_set()  # 12 - 9 = 3 pending
    assert trap(big) == [big] and trap.fired.is_set()  # 15 - 9 = 6 pending
    assert "replayed" not in trap.detail and trap(HEARTBEAT) == []


def test_slow_acks_hold_only_append_responses() -> None:
    slow = SlowAppendAcks(0.7)
    resp = msg(MessageType.APP_RESP)
    assert slow(resp) == [(0.7, resp)] and slow.held == 1
    for other in (msg(MessageType.VOTE_RESP), msg(MessageType.HEARTBEAT_RESP), HELLO):
        assert slow(other) == [other]


async def test_a_tapped_link_duplicates_and_delays_frames_end_to_end() -> None:
    got: list[bytes] = []
    server = await frame_sink(got)
    net = ProxyNet()
    port = await net.add("n1", "n2", server.sockets[0].getsockname()[1])
    slow = SlowAppendAcks(0.3)
    net.tap("n1", "n2", slow)
    resp, vote = msg(MessageType.APP_RESP), msg(MessageType.VOTE_RESP)
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(HELLO + resp + vote)
        await w.drain()
        await asyncio.sleep(0.15)
        assert got == [HELLO, vote]  # the vote overtook the held append response
        await asyncio.sleep(0.4)
        assert got == [HELLO, vote, resp]
        net.cut_between(["n1"], ["n2"], one_way=True)
        w.write(vote)  # dropped whole: the stream keeps its framing
        await asyncio.sleep(0.1)
        net.heal(keep_taps=[("n1", "n2")])
        w.write(HELLO)
        await asyncio.sleep(0.2)
        assert got == [HELLO, vote, resp, HELLO]  # same connection, still framed
        w.close()
    finally:
        await net.close()
        server.close()


def prevote_grant(reject: bool = False) -> bytes:
    m = Message(MessageType.PRE_VOTE_RESP, to=1, frm=2, term=3, reject=reject)
    return codec.frame([codec.MSGS, [codec.message_to_raw(m)]])


def test_prevote_gate_crosses_grants_then_vote_requests() -> None:
    gate = PreVoteGate()
    a, b = gate.side(0), gate.side(1)
    grant, refusal, vote = prevote_grant(), prevote_grant(reject=True), msg(MessageType.VOTE)
    assert a(grant) == [grant]  # not armed yet
    gate.armed = True
    assert a(refusal) == [refusal] and a(grant) == [] and a(HEARTBEAT) == [HEARTBEAT]
    assert b(grant) == [grant] and gate.stage == 1  # both granted: both go out now
    assert b(vote) == [] and a(grant) == [grant]  # stage 2 holds vote requests only
    assert a(vote) == [vote] and gate.fired.is_set()
    assert a(vote) == [vote] and b(grant) == [grant]  # done: everything passes


def test_hold_trap_holds_while_armed_and_releases_in_order() -> None:
    hold = HoldTrap()
    first, second = app(10, 1, 9), app(11, 1, 9)
    assert hold(HELLO) == [HELLO]
    hold.armed = True
    assert hold(first) == [] and hold(second) == []
    assert hold.release() == 0  # no connection attached: nothing delivered
    assert hold(HEARTBEAT) == [HEARTBEAT]  # disarmed by release


async def test_a_hold_trap_delivers_what_it_held_through_the_proxy() -> None:
    got: list[bytes] = []
    server = await frame_sink(got)
    net = ProxyNet()
    port = await net.add("n1", "n2", server.sockets[0].getsockname()[1])
    hold = HoldTrap()
    net.tap("n1", "n2", hold)
    first, second = app(10, 1, 9), app(11, 1, 9)
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(HELLO)
        await w.drain()
        await asyncio.sleep(0.1)
        hold.armed = True
        w.write(first + second)
        await asyncio.sleep(0.2)
        assert got == [HELLO]
        assert hold.release() == 2
        await asyncio.sleep(0.1)
        assert got == [HELLO, first, second]
        w.close()
    finally:
        await net.close()
        server.close()


def heartbeat(commit: int) -> bytes:
    m = Message(MessageType.HEARTBEAT, to=2, frm=1, term=3, commit=commit)
    return codec.frame([codec.MSGS, [codec.message_to_raw(m)]])


def test_reveal_trap_drops_the_first_frame_that_would_reveal_the_new_terms_commit() -> None:
    trap = RevealTrap()
    early = app(40, 1, 40)
    assert trap(early) == [early]  # not armed
    trap.armed = True
    noop, writes = app(50, 1, 50, term=3), app(51, 3, 50, term=3)  # term starts at 51
    assert trap(noop) == [noop] and trap(writes) == [writes]
    assert trap(heartbeat(50)) == [heartbeat(50)]  # still says nothing of the new term
    assert trap(heartbeat(51)) == [] and trap.fired.is_set()
    assert trap.detail == {"term_start": 51, "held_through": 54}
    assert trap(app(54, 1, 54, term=3)) == [] and trap.dropped == 2


def test_chain_feeds_the_first_taps_output_through_the_second() -> None:
    trap, slow = FrameTrap("freeze"), SlowAppendAcks(0.2)
    chain = Chain(trap, slow)
    resp = msg(MessageType.APP_RESP)
    assert chain(resp) == [(0.2, resp)] and chain(HELLO) == [HELLO]
    trap.armed = True
    pending = app(10, 2, 9)
    assert chain(pending) == [pending] and chain(resp) == []  # frozen: the first drops it


def test_a_hold_trap_counts_connections_so_a_restarted_receiver_is_seen() -> None:
    hold = HoldTrap()
    hold.attach(object())  # type: ignore[arg-type]
    hold.attach(object())  # type: ignore[arg-type]
    assert hold.attaches == 2


def mixed(prev: int, old: int, new: int, term: int = 4) -> bytes:
    """One frame: an append of ``old`` entries of term 2 then ``new`` of ``term``,
    a heartbeat and a vote response."""
    ents = [Entry(2, prev + 1 + i, data=b"x") for i in range(old)]
    ents += [Entry(term, prev + 1 + old + i, data=b"y") for i in range(new)]
    a = Message(MessageType.APP, to=2, frm=1, term=term, log_term=2, index=prev,
                entries=tuple(ents), commit=prev)  # fmt: skip
    hb = Message(MessageType.HEARTBEAT, to=2, frm=1, term=term, commit=prev)
    vr = Message(MessageType.VOTE_RESP, to=2, frm=1, term=term)
    return codec.frame([codec.MSGS, [codec.message_to_raw(m) for m in (a, hb, vr)]])


def test_rewrite_edits_messages_and_keeps_other_frames() -> None:
    f = mixed(10, 2, 1)
    assert rewrite(f, lambda m: m) == f  # an identity edit re-frames the same bytes
    assert rewrite(HELLO, lambda m: None) == HELLO
    assert rewrite(f, lambda m: None) is None
    only_hb = rewrite(f, lambda m: m if m[0] == MessageType.HEARTBEAT else None)
    assert only_hb is not None and [m[0] for m in messages(only_hb)] == [MessageType.HEARTBEAT]


def test_entry_filter_modes() -> None:
    tap = EntryFilter()
    f = mixed(10, 2, 1)
    assert tap(f) == [f]  # pass
    tap.mode = "no-appends"
    (out,) = tap(f)
    assert [m[0] for m in messages(out)] == [MessageType.HEARTBEAT, MessageType.VOTE_RESP]
    assert tap(app(10, 0, 9)) == [app(10, 0, 9)]  # an empty append is a probe: it passes
    assert tap.dropped == 1
    tap.mode = "old-terms-only"
    (out,) = tap(f)
    a = appends(out)
    assert a is not None and (a.first, a.last, a.term) == (11, 12, 4)  # the term-4 entry cut
    assert tap.cut_entries == 1 and tap.commit_told == 10
    (only_new,) = tap(mixed(12, 0, 2))  # every entry of the current term: an empty append
    assert appends(only_new) is None and len(messages(only_new)) == 3
    tap.mode = "bogus"
    with pytest.raises(ValueError):
        tap(f)


def test_drop_vote_requests_drops_only_the_senders_requests_once_armed() -> None:
    mute = DropVoteRequests()
    pre, vote = msg(MessageType.PRE_VOTE), msg(MessageType.VOTE)
    assert mute(pre) == [pre] and mute(vote) == [vote]  # not armed
    mute.armed = True
    assert mute(pre) == [] and mute(vote) == []
    grant, f = prevote_grant(), mixed(10, 1, 1)
    assert mute(grant) == [grant] and mute(f) == [f] and mute(HELLO) == [HELLO]
    assert mute.dropped == 2
