"""A 3-node cluster (real processes) shared by a module's tests, and client fixtures.

Tests that kill members use the function-scoped `own_cluster` instead, so one test's
failures never leak into another's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from raftkv.client import AsyncClient
from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS


def endpoints(c: Cluster) -> list[str]:
    return [f"http://127.0.0.1:{m.client_port}" for m in c.members.values()]


def _start(root: Path) -> Cluster:
    c = Cluster(root, 3, list(FAST_ARGS))
    c.start_all()
    try:
        c.wait_leader(30)
    except BaseException:
        print(c.logs())
        c.close()
        raise
    return c


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = _start(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = _start(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(endpoints(cluster), timeout=3) as c:
        yield c
