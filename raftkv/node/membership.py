"""Cluster membership: one object owning members, their URLs, the conf state, removal.

Membership changes only by applying committed conf-change entries (or by adopting the
record restored from a snapshot), so every member computes the same membership at the
same applied index. The record is stored in the state machine in the same LMDB
transaction as the entries that changed it, so it survives restarts and travels in
snapshots; `members.json` in the data dir is only the bootstrap input (the list
`--initial-cluster` or a join gave before the state machine held anything).

Node IDs of founding members are their 1-based positions in `--initial-cluster`
(n1=...,n2=...,n3=... gives 1, 2, 3), so every founding member derives the same IDs
without coordination; later members get ids the leader assigns (never reused).
Client URLs are attributes: a new member's arrive in its ADD_LEARNER context, and
every member publishes its own advertised client URL through Raft (UPDATE_NODE) after
it starts, as etcd publishes member attributes, so every member's list agrees.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import msgpack

from raftkv.raft.confchange import apply_conf_change
from raftkv.raft.messages import ConfChange, ConfChangeType, ConfState
from raftkv.storage import codec as scodec

MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_url: str
    client_url: str = ""

    @property
    def peer_host_port(self) -> tuple[str, int]:
        return host_port(self.peer_url)


def host_port(url: str) -> tuple[str, int]:
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise ValueError(f"bad URL {url!r}: {e}") from None
    if not u.hostname or not port:
        raise ValueError(f"URL {url!r} needs a host and a port")
    return u.hostname, port


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
        m = Member(i + 1, name, url.rstrip("/"))
        m.peer_host_port  # noqa: B018 - validates the URL early
        members.append(m)
    if not members:
        raise ValueError("--initial-cluster is empty")
    return members


def load_members_file(data_dir: Path) -> list[Member] | None:
    path = data_dir / MEMBERS_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return [Member(**m) for m in raw["members"]]


def save_members_file(data_dir: Path, members: list[Member]) -> None:
    """Write members.json atomically (the bootstrap input for this data dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (MEMBERS_FILE + ".tmp")
    tmp.write_text(json.dumps({"members": [asdict(m) for m in members]}, indent=1))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, data_dir / MEMBERS_FILE)


def encode_context(name: str, peer_url: str, client_url: str | None) -> bytes:
    """The member a conf change adds or updates, carried inside the entry."""
    return json.dumps({"name": name, "peer_url": peer_url, "client_url": client_url}).encode()


def decode_context(raw: bytes) -> dict[str, str] | None:
    """The member described by a ConfChange context; None for bootstrap entries."""
    if not raw:
        return None
    try:
        ctx = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(ctx, dict) or not isinstance(ctx.get("name"), str):
        return None
    return {k: str(v) for k, v in ctx.items() if isinstance(v, str)}


@dataclass
class Change:
    """What applying one conf change did, for the node to act on."""

    added: Member | None = None
    removed_id: int = 0
    self_removed: bool = False


@dataclass
class Membership:
    self_id: int
    members: dict[int, Member]
    conf_state: ConfState = field(default_factory=ConfState)
    max_id: int = 0
    removed: bool = False

    def __post_init__(self) -> None:
        self.max_id = max(self.max_id, *self.members, 0)

    # --- reads ----------------------------------------------------------------------
    def get(self, nid: int) -> Member | None:
        return self.members.get(nid)

    def sorted(self) -> list[Member]:
        return [self.members[i] for i in sorted(self.members)]

    def by_name(self, name: str) -> Member | None:
        return next((m for m in self.members.values() if m.name == name), None)

    def is_learner(self, nid: int) -> bool:
        return nid in self.conf_state.learners

    def is_voter(self, nid: int) -> bool:
        return nid in self.conf_state.voters

    def client_url(self, nid: int) -> str | None:
        m = self.members.get(nid)
        return m.client_url or None if m else None

    def next_id(self) -> int:
        """Never reuse an id, even of a removed member: the record keeps the highest."""
        return max(self.max_id, *self.members, *self.conf_state.all_nodes(), 0) + 1

    # --- changes (applied entries only) --------------------------------------------
    def apply(self, cc: ConfChange) -> Change:
        """Apply a committed conf change (idempotent: replays after restarts)."""
        self.conf_state = apply_conf_change(self.conf_state, cc)
        self.max_id = max(self.max_id, cc.node_id)
        ctx = decode_context(cc.context)
        change = Change()
        nid = cc.node_id
        if cc.type in (ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_NODE):
            if ctx is not None and nid not in self.members and ctx.get("peer_url"):
                m = Member(nid, ctx["name"], ctx["peer_url"].rstrip("/"), ctx.get("client_url", ""))
                self.members[nid] = m
                change.added = m
        elif cc.type == ConfChangeType.UPDATE_NODE:
            m = self.members.get(nid)
            if m is not None and ctx is not None:
                self.members[nid] = replace(
                    m,
                    peer_url=ctx.get("peer_url") or m.peer_url,
                    client_url=ctx.get("client_url") or m.client_url,
                )
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.members.pop(nid, None)
            change.removed_id = nid
            if nid == self.self_id:
                self.removed = change.self_removed = True
        return change

    def adopt(self, rec: MembershipRecord) -> tuple[list[Member], list[int]]:
        """Take the membership restored from a snapshot: (members to dial, ids gone)."""
        self.conf_state = rec.conf_state
        self.max_id = max(self.max_id, rec.max_id)
        if not rec.members:
            return [], []
        wanted = {m.id: m for m in rec.members}
        new = [m for i, m in wanted.items() if i not in self.members and i != self.self_id]
        gone = [i for i in self.members if i not in wanted and i != self.self_id]
        self.members = wanted
        if self.self_id not in wanted:
            self.removed = True
        return new, gone

    def record(self) -> MembershipRecord:
        return MembershipRecord(self.conf_state, tuple(self.sorted()), self.max_id)


@dataclass(frozen=True)
class MembershipRecord:
    """Membership as of an applied index, stored in the state machine."""

    conf_state: ConfState
    members: tuple[Member, ...]
    max_id: int


_RECORD_VERSION = 2


def encode_membership(rec: MembershipRecord) -> bytes:
    return msgpack.packb(
        {
            "v": _RECORD_VERSION,
            "conf": scodec.encode_conf_state(rec.conf_state),
            "members": [
                [m.id, m.name, m.peer_url, m.client_url]
                for m in sorted(rec.members, key=lambda m: m.id)
            ],
            "max_id": rec.max_id,
        }
    )


def decode_membership(raw: bytes) -> MembershipRecord:
    obj = msgpack.unpackb(raw)
    if not isinstance(obj, dict) or obj.get("v") != _RECORD_VERSION:
        raise ValueError("unknown membership record version")
    members = tuple(Member(int(i), str(n), str(p), str(c)) for i, n, p, c in obj["members"])
    return MembershipRecord(scodec.decode_conf_state(obj["conf"]), members, int(obj["max_id"]))
