"""Run reports colour every fault kind and say which colour is which."""

from __future__ import annotations

from pathlib import Path

from jepsen import report
from jepsen.history import Op
from jepsen.nemesis import SHAPES


def test_every_nemesis_kind_has_its_own_colour() -> None:
    assert set(SHAPES) <= set(report.FAULT_COLORS)
    colours = [report.FAULT_COLORS[k] for k in SHAPES]
    assert len(set(colours)) == len(colours)
    assert report.UNKNOWN_FAULT not in colours


def test_the_timeline_has_a_legend_of_the_faults_it_shows(tmp_path: Path) -> None:
    windows = [
        {"kind": "clock", "shape": "skew", "start": 1.0, "stop": 2.0},
        {"kind": "hostile", "shape": "txn-ranges", "start": 3.0, "stop": 4.0},
    ]
    ops = [Op(id=1, process=0, f="read", key="k", value=None, call=0.5, ret=0.6, type="ok")]
    report._timeline(tmp_path / "t.html", ops, windows, 5.0, {"dir": "d", "verdict": "valid",
                                                               "checkers": []})  # fmt: skip
    page = (tmp_path / "t.html").read_text()
    for kind in ("clock", "hostile"):
        assert f"{report.FAULT_COLORS[kind]}'></span>{kind}" in page  # legend swatch
        assert f"background:{report.FAULT_COLORS[kind]}'></div>" in page  # the band
    assert report.UNKNOWN_FAULT not in page
