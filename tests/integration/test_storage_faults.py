"""A member's disk: damaged data stops it with a runbook, a full disk only pauses it.

Real processes. The full-disk test mounts a small tmpfs (root only; skipped otherwise)
under one member's data dir and fills it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _exit_of(c: Cluster, name: str, timeout: float = 30) -> tuple[int, str]:
    p = c.members[name].proc
    assert p is not None
    rc = p.wait(timeout)
    log = c.members[name].log
    return rc, log.read_text(errors="replace") if log else ""


def _damage_every_copy(data: Path, damage) -> None:  # type: ignore[no-untyped-def]
    """Damage every copy of the victim value in the file (LMDB keeps old page versions
    around, so the live one is not necessarily the first)."""
    raw = bytearray(data.read_bytes())
    at = raw.find(b"Z" * 3000)
    assert at > 0
    while at >= 0:
        damage(raw, at)
        at = raw.find(b"Z" * 3000, at + 3000)
    data.write_bytes(bytes(raw))


def _written_cluster(tmp_path: Path) -> Cluster:
    c = Cluster(tmp_path, 3, list(FAST_ARGS))
    c.start_all()
    leader = c.wait_leader()
    assert c.put(leader, "victim", b"Z" * 3000).status == 200
    for i in range(20):
        assert c.put(leader, f"k{i}", "v").status == 200
    st = c.status(leader)
    assert st is not None
    c.wait_applied(list(c.members), st["applied"])
    return c


def test_a_truncated_state_file_is_refused_with_the_runbook(tmp_path: Path) -> None:
    c = _written_cluster(tmp_path)
    try:
        victim = c.followers(c.wait_leader())[0]
        c.stop(victim)
        data = c.members[victim].data_dir / "state" / "data.mdb"
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        c.start(victim)
        rc, log = _exit_of(c, victim)
        assert rc == 2, log[-2000:]
        assert "truncated" in log and "remove it from the cluster" in log, log[-2000:]
        assert "Fatal Python error" not in log  # refused before any page was touched
    finally:
        c.close()


def test_damaged_data_pages_are_refused_with_the_runbook(tmp_path: Path) -> None:
    c = _written_cluster(tmp_path)
    try:
        victim = c.followers(c.wait_leader())[0]
        c.stop(victim)
        data = c.members[victim].data_dir / "state" / "data.mdb"
        _damage_every_copy(
            data, lambda raw, at: raw.__setitem__(slice(at + 1000, at + 1016), b"?" * 16)
        )
        c.start(victim)
        rc, log = _exit_of(c, victim)
        assert rc == 2, log[-2000:]
        assert "damaged data" in log and "wipe its data dir" in log, log[-2000:]
        # The rest of the cluster is unaffected.
        leader = c.wait_leader(among=[n for n in c.members if n != victim])
        assert c.put(leader, "after", "ok").status == 200
    finally:
        c.close()


def test_a_damaged_log_entry_is_refused(tmp_path: Path) -> None:
    c = _written_cluster(tmp_path)
    try:
        victim = c.followers(c.wait_leader())[0]
        c.stop(victim)
        data = c.members[victim].data_dir / "log" / "data.mdb"
        _damage_every_copy(data, lambda raw, at: raw.__setitem__(at + 10, raw[at + 10] ^ 0xFF))
        c.start(victim)
        rc, log = _exit_of(c, victim)
        assert rc == 2 and "damaged" in log, log[-2000:]
    finally:
        c.close()


@contextlib.contextmanager
def _tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs")
def test_a_full_disk_pauses_a_member_which_resumes_when_space_is_freed(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 3, list(FAST_ARGS))
    victim = "n3"
    disk = c.members[victim].data_dir
    with _tmpfs(disk, 48):
        filler = disk / "filler"
        c.start_all()
        try:
            leader = c.wait_leader()
            if leader == victim:
                others = [n for n in c.members if n != victim]
                r = c.req(leader, "POST", "/v1/leader/transfer", body={"to": int(others[0][1:])})
                assert r.status == 200, r.body
                leader = c.wait_leader(among=others)
            # Leave little room, then write until the victim cannot persist.
            free = shutil.disk_usage(disk).free
            with open(filler, "wb") as f:
                f.write(b"\0" * max(0, free - 6 * 1024 * 1024))
            value = b"y" * (256 * 1024)
            for i in range(60):
                assert c.put(leader, f"fill/{i}", value).status == 200
            _wait(
                lambda: (c.req(victim, "GET", "/health").json().get("reason", "")).startswith(
                    "disk full"
                ),
                30,
                "the victim to report a full disk",
            )
            r = c.put(victim, "via-victim", "x")
            assert r.status == 507 and r.json()["error"]["code"] == "disk_full", r.body
            assert c.get(victim, "fill/0", "?serializable").status == 200  # reads go on
            assert c.put(leader, "while-full", "ok").status == 200  # the cluster goes on
            filler.unlink()
            _wait(lambda: c.req(victim, "GET", "/health").status == 200, 60, "the victim to resume")
            st = c.status(leader)
            assert st is not None
            c.wait_applied([victim], st["applied"])
            assert c.get(victim, "while-full", "?serializable").json()["value"] == "ok"
            assert c.put(victim, "after-full", "ok").status == 200
            proc = c.members[victim].proc
            assert proc is not None and proc.poll() is None  # never restarted
        except BaseException:
            print(c.logs())
            raise
        finally:
            c.close()
