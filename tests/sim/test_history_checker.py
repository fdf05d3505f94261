"""Fixture histories: the register checker must reject each anomaly."""

from __future__ import annotations

from raftkv.sim.history import Op, check_register


def w(i: int, value: int, invoke: int, complete: int | None, status: str = "ok") -> Op:
    return Op(i, i, "w", value, 1, invoke, complete, status)


def r(i: int, value: int | None, invoke: int, complete: int) -> Op:
    return Op(i, i, "r", value, 1, invoke, complete, "ok")


def test_valid_history_passes() -> None:
    ops = [w(0, 1, 1, 2), r(1, 1, 3, 4), w(2, 2, 5, 8), r(3, 1, 6, 7), r(4, 2, 9, 10)]
    assert check_register(ops, {1: 5, 2: 6}) == []


def test_concurrent_read_may_see_either_value() -> None:
    ops = [w(0, 1, 1, 2), w(1, 2, 3, 10), r(2, 1, 4, 5), r(3, 2, 6, 7)]
    assert check_register(ops, {1: 5, 2: 6}) == []


def test_stale_read_is_rejected() -> None:
    ops = [w(0, 1, 1, 2), w(1, 2, 3, 4), r(2, 1, 5, 6)]
    assert any("stale read" in v for v in check_register(ops, {1: 5, 2: 6}))


def test_lost_write_is_rejected() -> None:
    ops = [w(0, 1, 1, 2), w(1, 2, 3, 4)]
    assert any("lost write" in v for v in check_register(ops, {1: 5}))


def test_dirty_read_is_rejected() -> None:
    ops = [w(0, 1, 1, 10, "info"), r(1, 1, 2, 3)]
    assert any("dirty read" in v for v in check_register(ops, {}))


def test_read_going_back_in_time_is_rejected() -> None:
    ops = [w(0, 1, 1, 20, "info"), w(1, 2, 1, 20, "info"), r(2, 2, 3, 4), r(3, 1, 5, 6)]
    assert any("back in time" in v for v in check_register(ops, {1: 5, 2: 6}))


def test_read_from_the_future_is_rejected() -> None:
    ops = [r(0, 1, 1, 2), w(1, 1, 3, 4)]
    assert any("future" in v for v in check_register(ops, {1: 5}))


def test_write_order_against_real_time_is_rejected() -> None:
    ops = [w(0, 1, 1, 2), w(1, 2, 3, 4)]
    assert any("write order" in v for v in check_register(ops, {1: 6, 2: 5}))


def test_unknown_write_may_take_effect_or_not() -> None:
    ops = [w(0, 1, 1, 30, "info"), r(1, None, 2, 3), r(2, 1, 4, 5)]
    assert check_register(ops, {1: 5}) == []
