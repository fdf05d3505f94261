"""Say loudly, at the end of the run, when the live etcd comparison did not happen."""

from __future__ import annotations

from typing import Any

from tests.conformance.test_conformance import LIVE, SKIPPED_NOTE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not LIVE:
        terminalreporter.write_sep("=", "conformance: " + SKIPPED_NOTE, yellow=True, bold=True)
