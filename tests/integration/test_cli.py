"""`raftkv serve` settings validation and restart from the data dir alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.timeout(60)


def _serve(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftkv.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_invalid_settings_exit_2(tmp_path: Path) -> None:
    r = _serve(["--name", "n1", "--data-dir", str(tmp_path), "--client-url", "ftp://x"])
    assert r.returncode == 2 and "client_url" in r.stderr
    r = _serve(["--name", "n1", "--data-dir", str(tmp_path / "d")])
    assert r.returncode == 2 and "--initial-cluster is required" in r.stderr
    port = free_port()
    r = _serve(
        [
            "--name",
            "n1",
            "--data-dir",
            str(tmp_path / "e"),
            "--client-url",
            f"http://127.0.0.1:{free_port()}",
            "--peer-url",
            "http://127.0.0.1:1",
            "--initial-cluster",
            f"n1=http://127.0.0.1:{port}",
        ]
    )
    assert r.returncode == 2 and "differs" in r.stderr


def test_env_vars_configure_serve(tmp_path: Path) -> None:
    env = {"RAFTKV_NAME": "n9", "RAFTKV_DATA_DIR": str(tmp_path), "RAFTKV_TICK_MS": "0"}
    r = _serve([], env={**env, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "tick_ms" in r.stderr


def test_restart_from_data_dir_alone(cluster: Cluster) -> None:
    assert cluster.put("n1", "persist", "yes").status == 200
    leader = cluster.wait_leader()
    victim = cluster.followers(leader)[0]
    assert cluster.stop(victim) == 0
    assert cluster.put(leader, "while-down", "1").status == 200
    cluster.start(victim, with_initial_cluster=False)
    st = cluster.status(leader)
    assert st is not None
    cluster.wait_applied([victim], st["applied"])
    assert cluster.get(victim, "while-down", "?serializable").json()["value"] == "1"
    assert cluster.get(victim, "persist").json()["value"] == "yes"


def test_taken_client_port_is_a_clear_error(tmp_path: Path) -> None:
    """A port in use must end `serve` with one clear line and status 2, not hang."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        peer = free_port()
        proc = subprocess.run(
            [sys.executable, "-m", "raftkv.cli", "serve", "--name", "n1",
             "--data-dir", str(tmp_path / "n1"), "--client-url", f"http://127.0.0.1:{port}",
             "--peer-url", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"n1=http://127.0.0.1:{peer}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot listen on http://127.0.0.1:{port}" in proc.stderr
