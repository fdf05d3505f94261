"""schemathesis against the live `/v1/openapi.json`: every check it has, every finding
recorded.

Run as its CLI (`st run`, in a subprocess with a time budget) because that is the
only way that runs all of its phases — schema examples, coverage (including the
undeclared-method probes behind "405 without Allow"), fuzzing and stateful — and its
checks together. Its requests pass the fuzzer's safety net (st_hooks.py). The
streaming watch route is excluded: schemathesis reads a response to its end, and a
watch never ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.conftest import LiveCluster, note
from tests.fuzz.runner import time_budget

pytestmark = pytest.mark.fuzz
schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install schemathesis)"
)
ROOT = Path(__file__).resolve().parents[2]


def _failures_text(out: str) -> str:
    """The FAILURES and ERRORS sections of st's report, without the long schema dumps."""
    start = min(
        (i for i in (out.find("= ERRORS ="), out.find("= FAILURES =")) if i >= 0), default=-1
    )
    end = out.find("= SUMMARY =")
    text = out[start:end] if start >= 0 else out[-4000:]
    keep, skipping = [], False
    for line in text.splitlines():
        if line.strip() in ("Schema:", "Value:"):
            skipping = True
            continue
        if skipping and (line.startswith("    ") and not line.startswith("    Validated")):
            continue
        skipping = False
        keep.append(line)
    return "\n".join(keep)


def test_schemathesis_on_the_live_openapi_document(live: LiveCluster, tmp_path: Path) -> None:
    port = live.ports[0]
    seconds = int(time_budget(12) or 120)
    report = tmp_path / "st-report.json"
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"http://127.0.0.1:{port}/v1/openapi.json",
        "--url",
        f"http://127.0.0.1:{port}",
        "--checks",
        "all",
        # A schema-valid request may still be refused for the cluster's state: a compare
        # that does not hold (412), a compacted revision, a member that is not a voter.
        # Those are answers, not schema bugs, so "valid data must be accepted" is off.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        os.environ.get("RAFTKV_FUZZ_ST_EXAMPLES", "10"),
        "--max-time",
        str(seconds),
        "--workers",
        "1",
        "--seed",
        os.environ.get("RAFTKV_FUZZ_SEED", "1"),
        "--request-timeout",
        "10",
        "--exclude-path",
        "/v1/watch/{key}",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.fuzz.st_hooks",
        "RAFTKV_FUZZ_SAFETY": json.dumps(
            {"ids": sorted(live.net.etcd_member_ids), "ports": sorted(live.net.reserved_ports)}
        ),
    }
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=seconds + 120
    )
    out = proc.stdout + proc.stderr
    (tmp_path / "st-output.txt").write_text(out)
    assert report.exists(), f"schemathesis did not run (exit {proc.returncode}):\n{out[-3000:]}"
    data = json.loads(report.read_text())
    cases = data.get("test_cases", {})
    summary = [
        f"schemathesis {schemathesis.__version__}: {data.get('running_time', 0):.1f}s, "
        f"stop: {data.get('stop_reason')}, test cases: {json.dumps(cases)}",
    ]
    for f in data.get("failures", []):
        summary.append(f"  {f['code']} {f['title']} x{f['count']}: {', '.join(f['operations'])}")
    for e in data.get("errors", []):
        summary.append(f"  error: {json.dumps(e)[:300]}")
    note("\n".join(summary) + f"\n  full output: {tmp_path / 'st-output.txt'}")
    problem = live.health()
    assert problem is None, f"the cluster did not survive schemathesis: {problem}"
    if data.get("failures") or data.get("errors"):
        pytest.fail("\n".join(summary) + "\n\n" + _failures_text(out), pytrace=False)
