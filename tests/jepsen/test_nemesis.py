"""The fault schedule is a pure function of the seed and always heals in time."""

from __future__ import annotations

from jepsen.nemesis import SHAPES, Fault, Nemesis, schedule, valid_kind
from jepsen.proxy import Link, ProxyNet


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


def test_shapes_are_dealt_in_rotation_so_a_few_seeds_cover_them_all() -> None:
    for kind in ("kill", "partition"):
        seen = [f.shape for seed in (1, 2, 3) for f in schedule([kind], 25, seed)]
        assert set(seen) == set(SHAPES[kind]), (kind, seen)
    assert schedule(["kill:leader"], 25, 2)[0].shape == "leader"  # a fixed shape stays


def test_none_schedules_nothing() -> None:
    assert schedule(["none"], 120, 1) == []


class _StubCluster:
    """Just names and a link table: enough to see what a fault does to the network."""

    def __init__(self, n: int) -> None:
        self.names = [f"n{i + 1}" for i in range(n)]
        self.net = ProxyNet()
        for a in self.names:
            for b in self.names:
                if a != b:
                    self.net.links[(a, b)] = Link(a, b, 0)


def _cut(c: _StubCluster) -> set[tuple[str, str]]:
    return {k for k, link in c.net.links.items() if link.state.cut}


def _apply(c: _StubCluster, shape: str, kind: str, targets: list[str]) -> None:
    nem = Nemesis.__new__(Nemesis)
    nem.cluster = c  # type: ignore[assignment]
    nem._apply(Fault(0, 1, kind, shape, 0), targets)


def test_bridge_leaves_only_the_bridge_connected_to_both_sides() -> None:
    c = _StubCluster(5)
    _apply(c, "bridge", "partition", ["n3", "n1", "n2", "n4", "n5"])
    sides = ({"n1", "n2"}, {"n4", "n5"})
    want = {(a, b) for a in sides[0] for b in sides[1]} | {
        (b, a) for a in sides[0] for b in sides[1]
    }
    assert _cut(c) == want
    assert not any("n3" in k for k in _cut(c))


def test_one_way_pair_cuts_exactly_one_direction() -> None:
    c = _StubCluster(3)
    _apply(c, "one-way-pair", "partition", ["n2", "n1"])
    assert _cut(c) == {("n2", "n1")}


def test_link_delay_and_drop_touch_only_the_target_links_and_heal() -> None:
    c = _StubCluster(3)
    _apply(c, "delay", "link", ["n1"])
    slow = {k for k, link in c.net.links.items() if link.state.delay > 0}
    assert slow == {k for k in c.net.links if "n1" in k} and not _cut(c)
    c.net.heal()
    _apply(c, "drop", "link", ["n2"])
    lossy = {k for k, link in c.net.links.items() if link.state.drop > 0}
    assert lossy == {k for k in c.net.links if "n2" in k}
    c.net.heal()
    assert all(link.state.drop == 0 and link.state.delay == 0 for link in c.net.links.values())


def test_kind_shape_pins_the_shape() -> None:
    plan = schedule(["partition:bridge", "link:delay"], 120, 3)
    assert plan and {(f.kind, f.shape) for f in plan} <= {
        ("partition", "bridge"),
        ("link", "delay"),
    }
    assert valid_kind("partition:bridge") and not valid_kind("partition:nope")
