"""Fixtures for the etcdctl suite: one live 3-member raftkv cluster per test module.

A module shares its cluster (starting three processes costs seconds); tests keep to
their own keys so that order does not matter, except where a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.etcdctl.ctl import ETCDCTL, Ctl, endpoints
from tests.integration.cluster import Cluster

# Small snapshot thresholds, as the integration suite's FAST_ARGS: snapshots and log
# compaction happen during the suite too.
CLUSTER_ARGS = ["--snapshot-count", "200", "--snapshot-keep", "50", "--request-timeout", "2"]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    if ETCDCTL is None:  # the modules skip first; this is only a guard
        pytest.skip("etcdctl is not on PATH")
    c = Cluster(tmp_path_factory.mktemp("etcdctl"), 3, list(CLUSTER_ARGS))
    failed_before = request.session.testsfailed
    c.start_all()
    try:
        c.wait_leader(30)
        c.wait_healthy()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        if request.session.testsfailed > failed_before:
            print(c.logs())
        c.close()


@pytest.fixture
def ctl(cluster: Cluster) -> Iterator[Ctl]:
    """etcdctl with --endpoints listing every running member; background processes
    started through it are killed when the test ends."""
    c = Ctl(endpoints(cluster))
    try:
        yield c
    finally:
        c.close()
