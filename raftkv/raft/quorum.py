"""Majority quorum math as pure functions (etcd-io/raft quorum/majority.go)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum


class VoteResult(Enum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    return n // 2 + 1


def committed_index(voters: Iterable[int], match: Mapping[int, int]) -> int:
    """The largest index replicated on a majority of voters.

    Sort the voters' match indexes descending; the value at position `majority - 1`
    is held by at least a majority. An empty voter set commits nothing.
    """
    ids = list(voters)
    if not ids:
        return 0
    indexes = sorted((match.get(i, 0) for i in ids), reverse=True)
    return indexes[majority(len(ids)) - 1]


def vote_result(voters: Iterable[int], votes: Mapping[int, bool]) -> VoteResult:
    ids = list(voters)
    if not ids:
        return VoteResult.WON
    granted = sum(1 for i in ids if votes.get(i) is True)
    rejected = sum(1 for i in ids if votes.get(i) is False)
    need = majority(len(ids))
    if granted >= need:
        return VoteResult.WON
    if len(ids) - rejected >= need:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Iterable[int], active: Iterable[int]) -> bool:
    ids = set(voters)
    return len(ids & set(active)) >= majority(len(ids)) if ids else True
