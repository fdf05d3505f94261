"""The membership record stored in the state machine (and so in snapshots)."""

from __future__ import annotations

from raftkv.node.membership import (
    Member,
    MembershipRecord,
    decode_membership,
    encode_membership,
)
from raftkv.raft.messages import ConfState
from raftkv.storage import codec


def test_round_trip_keeps_addresses_and_the_highest_id() -> None:
    rec = MembershipRecord(
        ConfState(frozenset({1, 2}), frozenset({4})),
        (
            Member(2, "n2", "http://127.0.0.1:2"),
            Member(1, "n1", "http://127.0.0.1:1"),
            Member(4, "n4", "http://127.0.0.1:4"),
        ),
        {1: "http://127.0.0.1:11", 4: "http://127.0.0.1:44"},
        max_id=7,
    )
    back = decode_membership(encode_membership(rec))
    assert back.conf_state == rec.conf_state
    assert [m.id for m in back.members] == [1, 2, 4]
    assert back.client_urls == rec.client_urls
    assert back.max_id == 7
    assert encode_membership(back) == encode_membership(rec)  # deterministic bytes


def test_old_records_hold_a_bare_conf_state() -> None:
    raw = codec.encode_conf_state(ConfState(frozenset({1, 2, 3})))
    back = decode_membership(raw)
    assert back.conf_state.voters == {1, 2, 3}
    assert back.members == () and back.max_id == 3
