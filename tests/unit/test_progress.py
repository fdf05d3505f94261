"""Progress lines for long work: throttled full lines in logs, redrawn on a TTY."""

from __future__ import annotations

import io
import subprocess
import sys

from raftkv.progress import Progress


def test_log_lines_are_throttled_and_the_last_one_always_printed() -> None:
    out = io.StringIO()
    p = Progress("sim", 100, unit="seeds", stream=out, every=3600, tty=False)
    for i in range(100):
        p.update(failed=int(i == 7))
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first update, then the last (done == total)
    assert lines[-1].startswith("sim: 100/100 (100%)") and "failures 1" in lines[-1]
    assert "seeds/s" in lines[-1] and "ETA" not in lines[-1]


def test_a_terminal_gets_one_line_redrawn_with_an_eta() -> None:
    out = io.StringIO()
    p = Progress("matrix", 10, stream=out, tty=True)
    p.update(note="register-kill")
    text = out.getvalue()
    assert text.startswith("\r\x1b[2Kmatrix: 1/10 (10%)") and "\n" not in text
    assert "ETA" in text and "register-kill" in text and "failures 0" in text
    p.close()
    assert out.getvalue().endswith("\n")


def test_a_simulator_campaign_reports_progress() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "raftkv.sim", "--seeds", "3", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sim: 3/3 (100%)" in r.stderr and "failures 0" in r.stderr
