"""The watch workload against real etcd: etcd's /v3/watch results translated into
raftkv's /v1/watch messages (pure, no etcd needed), then one short real run."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from jepsen.etcd import prefix_end, watch_messages
from jepsen.nemesis import Fault
from jepsen.runner import RunConfig, run


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_prefix_end_matches_etcd() -> None:
    assert prefix_end(b"watch/") == b"watch0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"


def test_created_and_progress_carry_no_events() -> None:
    hdr = {"cluster_id": "1", "revision": "13", "raft_term": "2"}
    assert watch_messages({"header": hdr, "created": True}) == [{"created": True, "revision": 13}]
    assert "events" not in watch_messages({"header": hdr, "watch_id": "-1"})[0]


def test_batched_replay_is_split_per_revision() -> None:
    # etcd 3.4 replays history as one message whose header is the current revision
    # (captured in /work/shared/etcd); raftkv sends one message per revision.
    res = {
        "header": {"revision": "18"},
        "events": [
            {"kv": {"key": b64("w/a"), "mod_revision": "14", "value": b64("1")}},
            {"kv": {"key": b64("w/b"), "mod_revision": "16", "value": b64("3")}},
            {"kv": {"key": b64("w/c"), "mod_revision": "16", "value": b64("4")}},
            {"type": "DELETE", "kv": {"key": b64("w/a"), "mod_revision": "17"}},
        ],
    }
    msgs = watch_messages(res)
    assert [m["revision"] for m in msgs] == [14, 16, 17]
    assert [e["kv"]["value"] for e in msgs[1]["events"]] == ["3", "4"]
    assert msgs[0]["events"][0]["type"] == "PUT"
    assert msgs[2]["events"][0] == {
        "type": "DELETE",
        "kv": {"key": "w/a", "value": None, "mod_revision": 17},
    }


def test_compaction_ends_the_stream() -> None:
    res = {"header": {"raft_term": "2"}, "canceled": True, "compact_revision": "15"}
    assert watch_messages(res) == [{"compact_revision": 15}]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("etcd") is None, reason="etcd not on PATH (apt install etcd-server)"
)
def test_etcd_watch_under_kill_is_valid(tmp_path: Path) -> None:
    plan = [Fault(2.0, 4.0, "kill", "leader", 1)]
    code, summary = run(
        RunConfig(
            workload="watch",
            nemesis="kill",
            time=8,
            seed=1,
            store=tmp_path,
            faults=plan,
            db="etcd",
        )
    )
    assert code == 0, summary.get("checkers")
    assert summary["windows"], "the nemesis never fired"
    watch = next(c for c in summary["checkers"] if c["name"] == "watch")
    assert "revisions delivered" in watch["summary"] and " 0 revisions" not in watch["summary"]
