"""Command encoding: round trips, and malformed bytes only ever give BadRequestError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.storage.commands import (
    Command,
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseRevoke,
    Noop,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
    decode,
    validate,
)
from raftkv.storage.errors import BadRequestError, DuplicateKeyError, MvccError
from raftkv.storage.results import (
    DeleteRangeResponse,
    KeyValue,
    PutResponse,
    RangeResponse,
    TxnResponse,
    decode_outcome,
    encode_outcome,
)

keys = st.binary(min_size=1, max_size=12)
u63 = st.integers(0, 2**63 - 1)
rids = st.none() | st.binary(min_size=1, max_size=16)


def compares() -> st.SearchStrategy[Compare]:
    def build(
        target: CompareTarget, result: CompareResult, key: bytes, end: bytes, n: int, v: bytes
    ):  # type: ignore[no-untyped-def]
        return Compare(key, target, result, v if target == CompareTarget.VALUE else n, end)

    return st.builds(
        build, st.sampled_from(CompareTarget), st.sampled_from(CompareResult), keys,
        st.just(b"") | keys, u63, st.binary(max_size=8),
    )  # fmt: skip


ranges = st.builds(
    Range, keys, st.just(b"") | keys, u63, u63, st.booleans(), st.booleans(),
    st.sampled_from(SortOrder), st.sampled_from(SortTarget), u63, u63, u63, u63, rids,
)  # fmt: skip
puts = st.builds(Put, keys, st.binary(max_size=32), u63, st.booleans(), st.booleans(),
                 st.booleans(), rids)  # fmt: skip
deletes = st.builds(DeleteRange, keys, st.just(b"") | keys, st.booleans(), rids)


def ops(depth: int) -> st.SearchStrategy:  # type: ignore[type-arg]
    leaf = ranges | puts | deletes
    if depth == 0:
        return leaf
    return leaf | txns(depth - 1)


def txns(depth: int = 2) -> st.SearchStrategy[Txn]:
    seq = st.lists(ops(depth), max_size=3).map(tuple)
    return st.builds(Txn, st.lists(compares(), max_size=3).map(tuple), seq, seq, rids)


commands: st.SearchStrategy[Command] = st.one_of(
    puts,
    deletes,
    ranges,
    txns(),
    st.builds(Compact, u63, rids),
    st.builds(LeaseGrant, u63, u63, rids),
    st.builds(LeaseRevoke, u63, rids),
    st.builds(LeaseCheckpoint, st.lists(st.tuples(u63, u63), max_size=3).map(tuple), rids),
    st.builds(Noop, rids),
)


@settings(max_examples=300, deadline=None)
@given(commands)
def test_round_trip(cmd: Command) -> None:
    assert decode(cmd.encode()) == cmd


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | commands.map(lambda c: c.encode()[:-1]))
def test_garbage_is_a_bad_request(data: bytes) -> None:
    with contextlib.suppress(BadRequestError):
        decode(data)


@pytest.mark.parametrize(
    "raw",
    [
        [1, "str-rid", b"k", b"v", 0, False, False, False],
        [1, None, "text-key", b"v", 0, False, False, False],
        [1, None, b"k", b"v", "0", False, False, False],
        [1, None, b"k"],
        [3, None, [[b"k", 9, 0, 0, b""]], [], []],  # unknown compare target
        [3, None, [], [[5, None, 3]], []],  # Compact is not a txn op
        [0, None, 1],
        {"not": "a list"},
    ],
)
def test_malformed_commands(raw: object) -> None:
    with pytest.raises(BadRequestError):
        decode(msgpack.packb(raw))


def test_validation_mirrors_etcd() -> None:
    validate(Txn((), (Put(b"a", b""), Put(b"b", b"")), ()), 511)
    with pytest.raises(DuplicateKeyError):
        validate(Txn((), (Put(b"a", b""), DeleteRange(b"a")), ()), 511)
    with pytest.raises(DuplicateKeyError):  # put inside a delete range of an outer level
        validate(Txn((), (DeleteRange(b"a", b"c"), Txn((), (Put(b"b", b""),), ())), ()), 511)
    validate(Txn((), (DeleteRange(b"a", b"c"), DeleteRange(b"b", b"d")), ()), 511)
    validate(Txn((), (Put(b"c", b""), DeleteRange(b"a", b"c")), ()), 511)  # end is exclusive
    with pytest.raises(BadRequestError):
        validate(Txn((Compare(b"", CompareTarget.VERSION, CompareResult.EQUAL, 0),)), 511)
    with pytest.raises(BadRequestError):
        validate(Range(b"k", revision=-1), 511)


def test_outcome_of_an_empty_entry() -> None:
    assert decode_outcome(encode_outcome(3, None, None)) == (3, None, None)


@pytest.mark.parametrize(
    "response",
    [
        PutResponse(5, KeyValue(b"k", 1, 2, 3, b"v", 4)),
        DeleteRangeResponse(6, 2, [KeyValue(b"a", 1, 1, 1, b"", 0)]),
        TxnResponse(7, True, [RangeResponse(6, [KeyValue(b"k", 1, 1, 1)], 1, True),
                              TxnResponse(0, False, [])]),
    ],
)  # fmt: skip
def test_outcomes_round_trip(response: object) -> None:
    assert decode_outcome(encode_outcome(7, response, None)) == (7, response, None)  # type: ignore[arg-type]


def test_error_outcomes_round_trip() -> None:
    err = BadRequestError("etcdserver: key is not provided")
    rev, resp, got = decode_outcome(encode_outcome(9, None, err))
    assert (rev, resp, got) == (9, None, err)
    assert isinstance(got, MvccError) and type(got) is BadRequestError


def test_compare_operand_types_are_checked() -> None:
    with pytest.raises(BadRequestError, match="operand"):
        validate(Txn((Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, 5),)), 511)
    with pytest.raises(BadRequestError, match="operand"):
        validate(Txn((Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, b"5"),)), 511)
    validate(Txn((Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, 5),)), 511)
