"""Calibration against real etcd 3.4 (skipped without etcd on PATH): the harness must
reach the verdicts Jepsen reached on a system nobody here wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jepsen.runner import RunConfig, run


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("etcd") is None, reason="etcd not on PATH (apt install etcd-server)"
)
def test_etcd_unfenced_lock_loses_an_update_as_jepsen_found(tmp_path: Path) -> None:
    """Calibration on a system nobody here wrote: etcd's lease-based lock without a
    fencing token loses an update when a holder stalls past its TTL (Jepsen, etcd
    3.4.3), and the harness must say so."""
    code, summary = run(
        RunConfig(workload="unfenced-lock", time=8, seed=1, store=tmp_path, db="etcd")
    )
    assert code == 1, summary.get("checkers")
    lock = next(c for c in summary["checkers"] if c["name"] == "lock")
    assert "lost update" in lock["summary"]
