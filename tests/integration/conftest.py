"""Fixtures: a fresh 3-node cluster per test (real processes, tmp data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

# Small snapshot thresholds so every test also exercises snapshots and log compaction.
FAST_ARGS = ["--snapshot-count", "200", "--snapshot-keep", "50", "--request-timeout", "2"]


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3, list(FAST_ARGS))
    c.start_all()
    try:
        c.wait_leader(30)
        c.wait_healthy()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(c.logs())
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)
