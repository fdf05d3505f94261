"""Command encoding: round trips, and malformed bytes only ever give InvalidArgument."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.errors import (
    Compacted,
    DuplicateKey,
    FutureRevision,
    InternalError,
    Invalid,
    InvalidArgument,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NoSpace,
    RaftkvError,
    RequestIdConflict,
    ResultTooLarge,
    from_wire,
)
from raftkv.storage.commands import (
    MAX_CLIENT_ID,
    Alarm,
    AlarmType,
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
    has_put,
    txn_ops_depth,
    validate,
)
from raftkv.storage.results import (
    AlarmResponse,
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
cids = st.none() | st.binary(min_size=1, max_size=MAX_CLIENT_ID)


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
    st.sampled_from(SortOrder), st.sampled_from(SortTarget), u63, u63, u63, u63, rids, cids,
)  # fmt: skip
puts = st.builds(Put, keys, st.binary(max_size=32), u63, st.booleans(), st.booleans(),
                 st.booleans(), rids, cids)  # fmt: skip
deletes = st.builds(DeleteRange, keys, st.just(b"") | keys, st.booleans(), rids, cids)


def ops(depth: int) -> st.SearchStrategy:  # type: ignore[type-arg]
    leaf = ranges | puts | deletes
    if depth == 0:
        return leaf
    return leaf | txns(depth - 1)


def txns(depth: int = 2) -> st.SearchStrategy[Txn]:
    seq = st.lists(ops(depth), max_size=3).map(tuple)
    return st.builds(
        Txn, st.lists(compares(), max_size=3).map(tuple), seq, seq, rids, cids, u63, u63
    )


commands: st.SearchStrategy[Command] = st.one_of(
    puts,
    deletes,
    ranges,
    txns(),
    st.builds(Compact, u63, rids, cids),
    st.builds(LeaseGrant, u63, u63, rids, cids),
    st.builds(LeaseRevoke, u63, rids, cids),
    st.builds(LeaseCheckpoint, st.lists(st.tuples(u63, u63), max_size=3).map(tuple), rids, cids),
    st.builds(Alarm, u63, st.sampled_from(AlarmType), st.booleans(), rids, cids),
    st.builds(Noop, rids, cids),
)


@settings(max_examples=300, deadline=None)
@given(commands)
def test_round_trip(cmd: Command) -> None:
    assert decode(cmd.encode()) == cmd


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | commands.map(lambda c: c.encode()[:-1]))
def test_garbage_is_a_bad_request(data: bytes) -> None:
    try:
        decode(data)
    except InvalidArgument as e:
        assert e.reason == Invalid.MALFORMED_COMMAND


@pytest.mark.parametrize(
    "raw",
    [
        [1, "str-rid", None, b"k", b"v", 0, False, False, False],
        [1, None, "str-cid", b"k", b"v", 0, False, False, False],
        [1, None, None, "text-key", b"v", 0, False, False, False],
        [1, None, None, b"k", b"v", "0", False, False, False],
        [1, None, None, b"k", b"v", 0, 0, False, False],  # booleans must be real bools
        [1, None, None, b"k", b"v", True, False, False, False],  # ...and ints real ints
        [1, None, None, b"k"],
        [1, None, b"k", b"v", 0, False, False, False],  # the old [tag, rid, *fields] form
        [3, None, None, [[b"k", 9, 0, 0, b""]], [], [], 0, 0],  # unknown compare target
        [3, None, None, [], [[5, None, None, 3]], [], 0, 0],  # Compact is not a txn op
        [3, None, None, [], [], []],  # a txn without its read budget
        [9, None, None, 1, 7, True],  # unknown alarm type
        [9, None, None, 1, 1, 1],  # `active` is not a bool
        [0, None, None, 1],  # noop takes no fields
        [99, None, None],
        [0, None],
        {"not": "a list"},
    ],
)
def test_malformed_commands(raw: object) -> None:
    with pytest.raises(InvalidArgument) as e:
        decode(msgpack.packb(raw))
    assert e.value.reason == Invalid.MALFORMED_COMMAND


def test_nesting_is_bounded_when_decoding() -> None:
    t = Txn()
    for _ in range(300):
        t = Txn((), (t,), ())
    with pytest.raises(InvalidArgument) as e:
        decode(t.encode())
    assert e.value.reason == Invalid.MALFORMED_COMMAND
    with pytest.raises(InvalidArgument) as e:
        validate(t, 511)
    assert e.value.reason == Invalid.NESTING_TOO_DEEP
    deep = msgpack.packb(
        [
            3,
            None,
            None,
            [],
            [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        ]
    )
    with pytest.raises(InvalidArgument):
        decode(deep)


def test_validation_mirrors_etcd() -> None:
    validate(Txn((), (Put(b"a", b""), Put(b"b", b"")), ()), 511)
    with pytest.raises(DuplicateKey):
        validate(Txn((), (Put(b"a", b""), DeleteRange(b"a")), ()), 511)
    with pytest.raises(DuplicateKey):  # put inside a delete range of an outer level
        validate(Txn((), (DeleteRange(b"a", b"c"), Txn((), (Put(b"b", b""),), ())), ()), 511)
    validate(Txn((), (DeleteRange(b"a", b"c"), DeleteRange(b"b", b"d")), ()), 511)
    validate(Txn((), (Put(b"c", b""), DeleteRange(b"a", b"c")), ()), 511)  # end is exclusive
    with pytest.raises(InvalidArgument) as e:
        validate(Txn((Compare(b"", CompareTarget.VERSION, CompareResult.EQUAL, 0),)), 511)
    assert e.value == InvalidArgument(Invalid.EMPTY_KEY)
    with pytest.raises(InvalidArgument) as e:
        validate(Range(b"k", revision=-1), 511)
    assert e.value.reason == Invalid.NEGATIVE_FIELD


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (Put(b"", b"v"), Invalid.EMPTY_KEY),
        (Put(b"k" * 512, b"v"), Invalid.KEY_TOO_LARGE),
        (Put(b"k", b"v", ignore_value=True), Invalid.VALUE_PROVIDED),
        (Put(b"k", lease=5, ignore_lease=True), Invalid.LEASE_PROVIDED),
        (Put(b"k", lease=-1), Invalid.LEASE_ID_RANGE),
        (Put(b"k", lease=2**63), Invalid.LEASE_ID_RANGE),
        (LeaseGrant(10, -5), Invalid.LEASE_ID_RANGE),
        (LeaseGrant(-1), Invalid.NEGATIVE_TTL),
        (LeaseRevoke(-1), Invalid.LEASE_ID_RANGE),
        (Compact(-1), Invalid.NEGATIVE_FIELD),
        (Range(b"k", limit=-1), Invalid.NEGATIVE_FIELD),
        (Range(b"k", min_create_revision=-3), Invalid.NEGATIVE_FIELD),
        (Txn(max_range_keys=-1), Invalid.NEGATIVE_FIELD),
        (Txn(max_range_bytes=-1), Invalid.NEGATIVE_FIELD),
        (Noop(client_id=b""), Invalid.REQUEST_ID_TOO_LONG),
        (Noop(client_id=b"c" * (MAX_CLIENT_ID + 1)), Invalid.REQUEST_ID_TOO_LONG),
    ],
)
def test_validation_reasons(cmd: Command, reason: Invalid) -> None:
    with pytest.raises(InvalidArgument) as e:
        validate(cmd, 511)
    assert e.value.reason == reason


def test_validation_accepts_the_limits() -> None:
    validate(Put(b"k" * 511, b"v", lease=2**63 - 1), 511)
    validate(Noop(client_id=b"c" * MAX_CLIENT_ID), 511)
    validate(LeaseGrant(0, 2**63 - 1), 511)
    validate(Txn(max_range_keys=10, max_range_bytes=0), 511)


def test_too_many_txn_ops_and_has_put() -> None:
    flat = Txn((), tuple(Put(b"k%d" % i) for i in range(3)), ())
    txn_ops_depth(flat, 3)
    with pytest.raises(InvalidArgument) as e:
        txn_ops_depth(flat, 2)
    assert e.value.reason == Invalid.TOO_MANY_OPS
    nested = Txn((), (Txn((), (Range(b"a"), Range(b"b")), ()),), ())
    txn_ops_depth(nested, 3)
    with pytest.raises(InvalidArgument):  # the nested txn gets what the outer one left
        txn_ops_depth(nested, 2)
    assert not has_put(Txn((), (Range(b"a"), DeleteRange(b"a")), ()))
    assert has_put(Txn((), (), (Put(b"a"),)))  # whichever branch holds it
    assert has_put(Txn((), (Txn((), (), (Txn((), (Put(b"a"),), ()),)),), ()))


def test_digest_ignores_ids_and_stamped_budgets_only() -> None:
    t = Txn((), (Put(b"k", b"v"),), ())
    same = dataclasses.replace(
        t, request_id=b"r", client_id=b"c", max_range_keys=5, max_range_bytes=9
    )
    assert t.digest() == same.digest() and len(t.digest()) == 16
    assert t.digest() != Txn((), (Put(b"k", b"w"),), ()).digest()
    assert t.digest() != Txn((), (), (Put(b"k", b"v"),)).digest()
    assert Put(b"k", request_id=b"1").digest() == Put(b"k", client_id=b"2").digest()
    assert Put(b"k").digest() != Put(b"k", prev_kv=True).digest()
    assert Put(b"k").digest() != DeleteRange(b"k").digest()


def test_outcome_of_an_empty_entry() -> None:
    assert decode_outcome(encode_outcome(3, None, None)) == (3, None, None)


@pytest.mark.parametrize(
    "response",
    [
        PutResponse(5, KeyValue(b"k", 1, 2, 3, b"v", 4)),
        DeleteRangeResponse(6, 2, [KeyValue(b"a", 1, 1, 1, b"", 0)]),
        TxnResponse(7, True, [RangeResponse(6, [KeyValue(b"k", 1, 1, 1)], 1, True),
                              TxnResponse(0, False, [])]),
        AlarmResponse(8, [(1, int(AlarmType.NOSPACE)), (3, int(AlarmType.CORRUPT))]),
    ],
)  # fmt: skip
def test_outcomes_round_trip(response: object) -> None:
    assert decode_outcome(encode_outcome(7, response, None)) == (7, response, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "err",
    [
        InvalidArgument(Invalid.EMPTY_KEY),
        InvalidArgument(Invalid.KEY_TOO_LARGE, "raftkv: key is too large (600 > 511 bytes)"),
        DuplicateKey(),
        KeyNotFound(),
        Compacted(5),
        FutureRevision(3),
        LeaseNotFound(7),
        LeaseExists(2**63 - 1),
        LeaseTTLTooLarge(9_000_000_001),
        NoSpace(),
        ResultTooLarge("keys", 10),
        RequestIdConflict(),
        InternalError("Put: ZeroDivisionError"),
    ],
)
def test_error_outcomes_round_trip(err: RaftkvError) -> None:
    rev, resp, got = decode_outcome(encode_outcome(9, None, err))
    assert (rev, resp, got) == (9, None, err)
    assert type(got) is type(err)
    if isinstance(got, InvalidArgument):
        assert type(got.reason) is Invalid  # enum fields come back as enums


def test_unknown_error_codes_decode_as_internal_errors() -> None:
    assert isinstance(from_wire([12345, []]), InternalError)
    assert isinstance(from_wire([int(LeaseNotFound.code), [1, 2, 3]]), InternalError)


def test_compare_operand_types_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="operand") as e:
        validate(Txn((Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, 5),)), 511)
    assert e.value.reason == Invalid.BAD_FIELD
    with pytest.raises(InvalidArgument, match="operand"):
        validate(Txn((Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, b"5"),)), 511)
    with pytest.raises(InvalidArgument, match="operand"):
        validate(Txn((Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, True),)), 511)
    validate(Txn((Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, 5),)), 511)
