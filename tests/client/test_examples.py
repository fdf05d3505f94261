"""Every example script, run against a live cluster; each asserts its own outcome
(exit 0) and the test checks the key lines of what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import endpoints
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(c: Cluster, name: str) -> str:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "RAFTKV_ENDPOINTS": ",".join(endpoints(c))},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_distributed_lock(cluster: Cluster) -> None:
    out = run_example(cluster, "distributed_lock.py")
    assert "final count 40, expected 40" in out


def test_leader_election(cluster: Cluster) -> None:
    out = run_example(cluster, "leader_election.py")
    assert "killing it" in out and "new leader: worker-" in out


def test_service_discovery(cluster: Cluster) -> None:
    out = run_example(cluster, "service_discovery.py")
    assert "live instances: ['api-1', 'api-2']" in out and "api-0 expired after" in out


def test_config_registry(cluster: Cluster) -> None:
    out = run_example(cluster, "config_registry.py")
    assert "config followed every change" in out and "rejected" in out
