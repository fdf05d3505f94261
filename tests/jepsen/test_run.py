"""Slim end-to-end runs against a real 3-node cluster (about 40 s in all).

One run must come out valid under partitions; the positive control (serializable
reads, which may be stale by design) must come out invalid — proof that the whole
pipeline, from recording client to checker, can reject a history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jepsen.runner import RunConfig, run

pytestmark = pytest.mark.slow


def test_register_under_partition_is_valid(tmp_path: Path) -> None:
    code, summary = run(
        RunConfig(workload="register", nemesis="partition", time=15, seed=1, store=tmp_path)
    )
    assert code == 0, summary.get("checkers")
    out = Path(summary["dir"])
    assert summary["windows"], "the nemesis never fired"
    assert summary["counts"]["ok"] > 200
    for name in ("history.jsonl", "nemesis.jsonl", "results.json", "timeline.html"):
        assert (out / name).stat().st_size > 0
    assert (out / "latency.png").exists() and (out / "throughput.png").exists()
    assert json.loads((out / "results.json").read_text())["verdict"] == "valid"


def test_stale_read_control_is_invalid(tmp_path: Path) -> None:
    code, summary = run(
        RunConfig(workload="stale-register", nemesis="partition", time=20, seed=1, store=tmp_path)
    )
    assert summary["windows"], "the nemesis never fired"
    assert code == 1, summary.get("checkers")
    assert summary["witness"]["checker"] in ("linearizable", "revision-order")
