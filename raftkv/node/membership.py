"""Cluster membership from `--initial-cluster`, pinned in the data dir at bootstrap.

Node IDs are the 1-based positions of the members in `--initial-cluster`
(n1=...,n2=...,n3=... gives 1, 2, 3), so every founding member derives the same IDs
without coordination, and every member must be given the list in the same order. The
list is written to `<data-dir>/members.json` when the data dir is created; a restart
reads it from there and ignores the flag, so a node recovers from its data dir alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgpack

from raftkv.raft.messages import ConfState
from raftkv.storage import codec as scodec

MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_url: str

    @property
    def peer_host_port(self) -> tuple[str, int]:
        u = urlsplit(self.peer_url)
        if not u.hostname or not u.port:
            raise ValueError(f"peer url {self.peer_url!r} needs a host and a port")
        return u.hostname, u.port


def parse_initial_cluster(spec: str) -> list[Member]:
    """`n1=http://h:p,n2=...` -> members with IDs 1..N in the given order."""
    members: list[Member] = []
    seen: set[str] = set()
    for i, part in enumerate(p for p in spec.split(",") if p.strip()):
        name, sep, url = part.strip().partition("=")
        if not sep or not name or not url:
            raise ValueError(f"bad --initial-cluster member {part!r}: want name=url")
        if name in seen:
            raise ValueError(f"duplicate member name {name!r}")
        seen.add(name)
        m = Member(i + 1, name, url)
        m.peer_host_port  # noqa: B018 - validates the URL early
        members.append(m)
    if not members:
        raise ValueError("--initial-cluster is empty")
    return members


def load_or_bootstrap_members(
    data_dir: Path, initial_cluster: str | None
) -> tuple[list[Member], bool]:
    """The members (from the data dir if present) and whether this is a fresh bootstrap."""
    path = data_dir / MEMBERS_FILE
    if path.exists():
        raw = json.loads(path.read_text())
        return [Member(**m) for m in raw["members"]], False
    if not initial_cluster:
        raise ValueError(f"{data_dir} has no {MEMBERS_FILE}: --initial-cluster is required")
    members = parse_initial_cluster(initial_cluster)
    return members, True


def save_members(data_dir: Path, members: list[Member]) -> None:
    """Write members.json atomically (after the Raft log is bootstrapped)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (MEMBERS_FILE + ".tmp")
    tmp.write_text(json.dumps({"members": [asdict(m) for m in members]}, indent=1))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, data_dir / MEMBERS_FILE)


@dataclass(frozen=True)
class MembershipRecord:
    """Membership as of an applied index, stored in the state machine.

    It is written in the same LMDB transaction as the entries that changed it, so it
    travels inside snapshots: a node that catches up by snapshot learns every
    member's address (which otherwise lives only in the compacted conf-change
    entries), and `max_id` keeps a removed member's id from ever being reused.
    """

    conf_state: ConfState
    members: tuple[Member, ...]
    client_urls: dict[int, str]
    max_id: int


_RECORD_VERSION = 1


def encode_membership(rec: MembershipRecord) -> bytes:
    return msgpack.packb(
        {
            "v": _RECORD_VERSION,
            "conf": scodec.encode_conf_state(rec.conf_state),
            "members": [
                [m.id, m.name, m.peer_url, rec.client_urls.get(m.id, "")]
                for m in sorted(rec.members, key=lambda m: m.id)
            ],
            "max_id": rec.max_id,
        }
    )


def decode_membership(raw: bytes) -> MembershipRecord:
    """Also reads the bare conf state older data dirs stored (no member addresses)."""
    obj = msgpack.unpackb(raw)
    if not isinstance(obj, dict):
        cs = scodec.decode_conf_state(raw)
        return MembershipRecord(cs, (), {}, max(cs.all_nodes(), default=0))
    if obj.get("v") != _RECORD_VERSION:
        raise ValueError(f"unknown membership record version {obj.get('v')!r}")
    members = tuple(Member(int(i), str(n), str(p)) for i, n, p, _ in obj["members"])
    urls = {int(i): str(c) for i, _, _, c in obj["members"] if c}
    return MembershipRecord(
        scodec.decode_conf_state(obj["conf"]), members, urls, int(obj["max_id"])
    )
