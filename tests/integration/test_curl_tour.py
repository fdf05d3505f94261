"""examples/curl_tour.sh runs cleanly against a live cluster, and README.md shows it.

The tour is the API's user-facing documentation; running it here means a renamed
flag, route or field breaks the build instead of silently breaking the docs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "examples" / "curl_tour.sh"
README = ROOT / "README.md"
START, END = "<!-- curl-tour:start -->", "<!-- curl-tour:end -->"


def tour_commands() -> list[str]:
    """The tour's command lines as a reader types them (without the `run` wrapper)."""
    text = TOUR.read_text()
    body = text.split("# tour:begin", 1)[1]
    out = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("run ").removesuffix(" || true")
        out.append(line)
    return out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_tour_runs_against_a_live_cluster(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]  # also exercises forwarding and proxying
    url = f"http://127.0.0.1:{cluster.members[follower].client_port}"
    p = subprocess.run(
        ["bash", str(TOUR)],
        env={"RAFTKV": url, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = p.stdout
    assert p.returncode == 0, out[-3000:] + p.stderr[-3000:]
    assert '"value": "hello raftkv"' in out
    assert "\nhello raftkv\n" in out, "?raw prints the bare value"
    assert '"value": "red"' in out, "the historical read returns the old value"
    assert re.search(r'"compare_failed".*\n\s*HTTP 412', out), "if_absent on an existing key"
    assert '"succeeded": true' in out, "the txn's compare held"
    assert '"prev_kv": {' in out
    assert '"id": 7777' in out and '"keys": ["tour/session"]' in out
    assert '"created": true' in out and '"type": "PUT"' in out, "the watch replayed history"
    assert '"health": true' in out
    assert '"reachable": true' in out and '"healthy": true' in out, "/v1/cluster/status"
    assert "metrics: HTTP 200" in out and "openapi: HTTP 200 application/json" in out
    assert '"key_not_found"' in out and "HTTP 404" in out
    # Every command printed before it ran (the tour is a transcript).
    assert out.count("\n$ curl") == sum(1 for c in tour_commands() if c.startswith("curl"))


def test_readme_shows_every_tour_command() -> None:
    readme = README.read_text() if README.exists() else ""
    if START not in readme or END not in readme:
        pytest.skip(f"README.md has no {START} ... {END} section yet")
    section = readme.split(START, 1)[1].split(END, 1)[0]
    missing = [c for c in tour_commands() if c not in section]
    assert not missing, "commands of examples/curl_tour.sh missing from README.md:\n" + "\n".join(
        missing
    )
