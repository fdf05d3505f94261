"""The membership record stored in the state machine (and so in snapshots)."""

from __future__ import annotations

import pytest

from raftkv.node.membership import (
    Member,
    Membership,
    MembershipRecord,
    decode_membership,
    encode_context,
    encode_membership,
)
from raftkv.raft.messages import ConfChange, ConfChangeType, ConfState


def test_round_trip_keeps_addresses_and_the_highest_id() -> None:
    rec = MembershipRecord(
        ConfState(frozenset({1, 2}), frozenset({4})),
        (
            Member(2, "n2", "http://127.0.0.1:2"),
            Member(1, "n1", "http://127.0.0.1:1", "http://127.0.0.1:11"),
            Member(4, "n4", "http://127.0.0.1:4", "http://127.0.0.1:44"),
        ),
        max_id=7,
    )
    back = decode_membership(encode_membership(rec))
    assert back.conf_state == rec.conf_state
    assert [m.id for m in back.members] == [1, 2, 4]
    assert [m.client_url for m in back.members] == [
        "http://127.0.0.1:11",
        "",
        "http://127.0.0.1:44",
    ]
    assert back.max_id == 7
    assert encode_membership(back) == encode_membership(rec)  # deterministic bytes


def test_unknown_record_versions_are_refused() -> None:
    with pytest.raises(ValueError):
        decode_membership(b"\x93\x01\x02\x03")


def test_conf_changes_add_update_and_remove_members() -> None:
    ms = Membership(1, {1: Member(1, "n1", "http://h:1")}, ConfState(frozenset({1})))
    ctx = encode_context("n2", "http://h:2", "http://h:22")
    change = ms.apply(ConfChange(ConfChangeType.ADD_LEARNER, 2, ctx))
    assert change.added == Member(2, "n2", "http://h:2", "http://h:22")
    assert ms.is_learner(2) and not ms.is_voter(2)
    ms.apply(ConfChange(ConfChangeType.ADD_NODE, 2))
    assert ms.is_voter(2)
    ms.apply(ConfChange(ConfChangeType.UPDATE_NODE, 1, encode_context("n1", "", "http://h:11")))
    assert ms.client_url(1) == "http://h:11" and ms.get(1).peer_url == "http://h:1"  # type: ignore[union-attr]
    change = ms.apply(ConfChange(ConfChangeType.REMOVE_NODE, 2))
    assert change.removed_id == 2 and ms.get(2) is None and not ms.removed
    assert ms.next_id() == 3  # never reused
    ms.apply(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    assert ms.removed
