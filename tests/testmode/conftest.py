"""Fixtures for test-mode tests: real `raftkv serve` clusters started with test-mode env.

The Cluster helper's children inherit os.environ, so env vars set through monkeypatch
before a start apply to that start only (a restart after delenv runs without them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

FAST_ARGS = ["--tick-ms", "50", "--request-timeout", "2"]
TEST_ENV = (
    "RAFTKV_TEST_MODE",
    "RAFTKV_MUTATIONS",
    "RAFTKV_FAILPOINTS",
    "RAFTKV_LAZY_FSYNC",
    "RAFTKV_CLOCK_OFFSET_MS",
    "RAFTKV_CLOCK_RATE",
)

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[MakeCluster]:
    """make_cluster(size, test_mode=True, **env) -> a started cluster with a leader."""
    made: list[Cluster] = []
    for k in TEST_ENV:
        monkeypatch.delenv(k, raising=False)

    def make(size: int = 3, test_mode: bool = True, **env: str) -> Cluster:
        if test_mode:
            monkeypatch.setenv("RAFTKV_TEST_MODE", "1")
        for k, v in env.items():
            monkeypatch.setenv(f"RAFTKV_{k.upper()}", v)
        root = tmp_path / f"c{len(made)}"
        root.mkdir()
        c = Cluster(root, size, list(FAST_ARGS))
        made.append(c)
        c.start_all()
        c.wait_leader(30)
        return c

    try:
        yield make
    finally:
        rep = getattr(request.node, "rep_call", None)
        for c in made:
            if rep is not None and rep.failed:
                print(c.logs())
            c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, "rep_" + rep.when, rep)
