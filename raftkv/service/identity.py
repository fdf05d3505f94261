"""etcd-style identities: 64-bit member and cluster ids derived from the membership.

raftkv's members have small Raft ids (1, 2, 3...); etcd's clients expect opaque
uint64 member ids and a cluster id in every response header. Both etcd faces (JSON
gateway, gRPC) use this one mapping, so a member id read from one works in the other.
"""

from __future__ import annotations

import hashlib

from raftkv.node.membership import Membership


def etcd_id(text: str) -> int:
    """A stable, nonzero uint64 like etcd's sha1-derived member ids."""
    v = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")
    return v or 1


class Identity:
    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self._key: tuple[tuple[int, str, str], ...] = ()
        self._ids: dict[int, int] = {}
        self._cluster = 0

    def _refresh(self) -> dict[int, int]:
        """raft id -> etcd member id, recomputed only when the membership changes (every
        watch event carries a header, so this is on a hot path)."""
        key = tuple((m.id, m.name, m.peer_url) for m in self.membership.sorted())
        if key != self._key:
            self._key = key
            self._ids = {i: etcd_id(f"raftkv-member/{n}/{u}") for i, n, u in key}
            first = min(key, default=(0, "", ""))  # the oldest member still present
            self._cluster = etcd_id(f"raftkv-cluster/{first[1]}/{first[2]}")
        return self._ids

    def member_id(self, raft_id: int) -> int:
        return self._refresh().get(raft_id, 0)

    def raft_id(self, member_id: int) -> int | None:
        for rid, mid in self._refresh().items():
            if mid == member_id:
                return rid
        return None

    @property
    def cluster_id(self) -> int:
        """Derived from the oldest member still in the cluster (raftkv stores no cluster
        id; it changes only if that member is removed)."""
        self._refresh()
        return self._cluster
