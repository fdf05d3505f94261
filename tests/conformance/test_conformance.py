"""Differential conformance: every scenario against a live etcd 3.4 and raftkv.

With `etcd` on PATH both servers get the same requests and the normalised answers
must be equal step by step. Without it (or with RAFTKV_CONFORMANCE_RECORDED=1) raftkv
is compared with the answers recorded from etcd in expected/ (see record.py), and the
run says that the live comparison was skipped.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.harness import Target, etcd_binary, run_etcd, run_raftkv
from tests.conformance.scenarios import SCENARIOS

EXPECTED = Path(__file__).parent / "expected"
LIVE = etcd_binary() is not None and not os.environ.get("RAFTKV_CONFORMANCE_RECORDED")
SKIPPED_NOTE = (
    "live etcd comparison SKIPPED (etcd not on PATH, or RAFTKV_CONFORMANCE_RECORDED set); "
    "raftkv compared with the answers recorded from etcd 3.4.23 in tests/conformance/expected/"
)


def _run_etcd(name: str, root: Path, out: dict[str, Any]) -> None:
    try:
        with run_etcd(root) as port:
            t = Target(port, is_etcd=True)
            SCENARIOS[name](t)
            out["record"] = t.record
    except BaseException as e:  # re-raised in the test thread
        out["error"] = e


def _compare(name: str, got: list[list[Any]], want: list[list[Any]], source: str) -> None:
    # JSON round trip: recorded expectations went through it too (tuples -> lists)
    got = json.loads(json.dumps(got))
    want = json.loads(json.dumps(want))
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g[0] == w[0], f"{name}: step {i} is {g[0]!r} here but {w[0]!r} in {source}"
        assert g[1] == w[1], (
            f"{name}: step {i} {g[0]!r} differs from {source}\n"
            f"raftkv: {json.dumps(g[1], sort_keys=True)}\n"
            f"etcd:   {json.dumps(w[1], sort_keys=True)}"
        )
    assert len(got) == len(want), f"{name}: {len(got)} steps here, {len(want)} in {source}"


# Scenarios whose answers do not depend on the cluster size also run on a follower of
# a 3-member cluster (maintenance lists members, so it is leader-only).
CASES = [(n, False) for n in SCENARIOS] + [
    (n, True) for n in ("kv", "errors", "leases", "watch", "lock", "election")
]


@pytest.mark.parametrize(
    ("name", "follower"), CASES, ids=[f"{n}-{'follower' if f else 'single'}" for n, f in CASES]
)
def test_matches_etcd(name: str, follower: bool, tmp_path: Path) -> None:
    etcd_out: dict[str, Any] = {}
    th = None
    if LIVE:
        th = threading.Thread(target=_run_etcd, args=(name, tmp_path / "etcd", etcd_out))
        (tmp_path / "etcd").mkdir()
        th.start()
    try:
        with run_raftkv(tmp_path, follower) as port:
            t = Target(port, is_etcd=False)
            SCENARIOS[name](t)
    finally:
        if th is not None:
            th.join(120)
    if LIVE:
        if "error" in etcd_out:
            raise etcd_out["error"]
        _compare(name, t.record, etcd_out["record"], "live etcd")
    else:
        warnings.warn(SKIPPED_NOTE, stacklevel=1)
        want = json.loads((EXPECTED / f"{name}.json").read_text())
        _compare(name, t.record, want, "recorded etcd answers")


def test_expectations_recorded_for_every_scenario() -> None:
    """The fallback mode needs a recording per scenario (run record.py after changes)."""
    missing = [n for n in SCENARIOS if not (EXPECTED / f"{n}.json").exists()]
    assert missing == []
