"""The fault schedule is a pure function of the seed and always heals in time."""

from __future__ import annotations

from jepsen.nemesis import SHAPES, schedule


def test_schedule_is_seeded_and_bounded() -> None:
    a = schedule(["kill", "pause", "partition"], 120, 5)
    assert a == schedule(["kill", "pause", "partition"], 120, 5)
    assert a != schedule(["kill", "pause", "partition"], 120, 6)
    assert len(a) >= 8
    for f in a:
        assert f.shape in SHAPES[f.kind]
        assert f.duration >= 3 and f.start + f.duration <= 117
    assert {f.kind for f in a} == {"kill", "pause", "partition"}
    starts = [f.start for f in a]
    assert all(x.start + x.duration < y for x, y in zip(a, starts[1:], strict=False))


def test_none_schedules_nothing() -> None:
    assert schedule(["none"], 120, 1) == []
