"""Leader-side lease expiry clocks.

Lease state (ids, TTLs, attached keys) is replicated in the MVCC store; the clocks
are not, because wall time is not deterministic. Only the leader runs them: when a
node becomes leader it gives every lease a fresh full TTL (a lease can only live
longer than asked across a leader change, never shorter, as in etcd), and an expired
lease is revoked by proposing LeaseRevoke through Raft.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from raftkv.storage.results import LeaseInfo


def min_ttl(election_tick: int, tick_seconds: float) -> int:
    """1.5 x the longest randomized election timeout (2 x election_tick), rounded up.

    With 10 ticks of 100 ms that is 1.5 x 2 s = 3 s: a lease must outlive the time a
    new leader may need to be elected, or it could expire during a failover.
    """
    return math.ceil(1.5 * 2 * election_tick * tick_seconds)


class Lessor:
    def __init__(
        self,
        minimum_ttl: int,
        clock: Callable[[], float] = time.monotonic,
        keep_deadlines: bool = False,
    ) -> None:
        """`clock` is skewable in test mode; `keep_deadlines` is the lease-no-ttl-refresh
        mutation (a new leader trusts deadlines it remembers from an earlier term)."""
        self.min_ttl = minimum_ttl
        self._now = clock
        self._keep_deadlines = keep_deadlines
        self.deadlines: dict[int, float] = {}
        self.ttls: dict[int, int] = {}
        self.revoking: dict[int, float] = {}

    def effective_ttl(self, ttl: int) -> int:
        return max(ttl, self.min_ttl)

    def promote(self, leases: list[LeaseInfo]) -> None:
        now = self._now()
        old = dict(self.deadlines) if self._keep_deadlines else {}
        self.deadlines.clear()
        self.revoking.clear()
        for info in leases:
            ttl = self.effective_ttl(info.ttl)
            self.ttls[info.id] = ttl
            # MUTATION lease-no-ttl-refresh: keep a stale deadline instead of a full TTL.
            self.deadlines[info.id] = old.get(info.id, now + ttl)

    def demote(self) -> None:
        if not self._keep_deadlines:
            self.deadlines.clear()
        self.revoking.clear()

    def granted(self, lease_id: int, ttl: int, leader: bool) -> None:
        self.ttls[lease_id] = ttl
        # MUTATION lease-no-ttl-refresh: followers start a clock at grant that no
        # keepalive (served by the leader) ever refreshes; a new leader then trusts it.
        if leader or self._keep_deadlines:
            self.deadlines[lease_id] = self._now() + self.effective_ttl(ttl)

    def revoked(self, lease_id: int) -> None:
        self.deadlines.pop(lease_id, None)
        self.ttls.pop(lease_id, None)
        self.revoking.pop(lease_id, None)

    def keepalive(self, lease_id: int) -> int | None:
        """Renew on the leader; the TTL granted, or None if the lease is unknown."""
        if lease_id not in self.deadlines:
            return None
        ttl = self.effective_ttl(self.ttls.get(lease_id, self.min_ttl))
        self.deadlines[lease_id] = self._now() + ttl
        return ttl

    def remaining(self, lease_id: int) -> int | None:
        d = self.deadlines.get(lease_id)
        if d is None:
            return None
        return max(0, math.ceil(d - self._now()))

    def expired(self) -> list[int]:
        """Expired leases not already being revoked (retried after 3 s if lost)."""
        now = self._now()
        out = []
        for lid, d in self.deadlines.items():
            if d <= now and now - self.revoking.get(lid, -1e9) > 3.0:
                self.revoking[lid] = now
                out.append(lid)
        return out
