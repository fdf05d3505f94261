"""The suite's exit code: plain runs must be valid, controls and mutants invalid, and
etcd runs every workload of the suite but skips the raftkv-only mutants."""

from __future__ import annotations

from typing import Any

import pytest

from jepsen import cli
from jepsen.runner import RunConfig


def _fake(verdicts: dict[tuple[str, str, str], int], seen: list[RunConfig]) -> Any:
    def run(cfg: RunConfig) -> tuple[int, dict[str, Any]]:
        seen.append(cfg)
        code = verdicts.get((cfg.workload, cfg.nemesis, cfg.mutations), 0)
        return code, {"ops": 1, "counts": {}, "verdict": ["valid", "invalid"][code]}

    return run


def _expected_invalid() -> dict[tuple[str, str, str], int]:
    bad = {(w, n, ""): 1 for w, n in cli.CONTROLS}
    bad.update({m: 1 for m in cli.MUTANTS})
    return bad


def test_suite_passes_when_controls_and_mutants_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []
    monkeypatch.setattr(cli, "run", _fake(_expected_invalid(), seen))
    assert cli.suite({"db": "raftkv"}) == 0
    assert {c.mutations for c in seen} >= {m for _, _, m in cli.MUTANTS}


def test_suite_fails_when_a_mutant_goes_unnoticed(monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts = _expected_invalid()
    verdicts[cli.MUTANTS[0]] = 0
    monkeypatch.setattr(cli, "run", _fake(verdicts, []))
    assert cli.suite({"db": "raftkv"}) == 1


def test_etcd_suite_runs_watch_but_skips_mutants(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []
    monkeypatch.setattr(cli, "run", _fake(_expected_invalid(), seen))
    assert cli.suite({"db": "etcd"}) == 0
    assert any(c.workload == "watch" for c in seen)
    assert not any(c.mutations for c in seen)
