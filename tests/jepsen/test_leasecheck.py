"""C7 lease checker fixtures: premature expiry, a key visible after its revoke returned
and a key that outlives its last renewal must each be rejected; uncertainty (a
revoke or keepalive with unknown outcome) must relax exactly the claims it touches."""

from __future__ import annotations

from jepsen.checkers import leasecheck
from jepsen.history import Op, make_op, renumber

K = "lease/1"


def base() -> list[Op]:
    return [
        make_op("grant", None, 0.0, 0.1, "ok", K, 1, {"id": 7, "ttl": 3}),
        make_op("attach", 7, 0.1, 0.2, "ok", K, 1),
    ]


def read(call: float, present: bool, process: int = 2) -> Op:
    return make_op("read", "v" if present else None, call, call + 0.05, "ok", K, process)


def ka(call: float, type_: str = "ok") -> Op:
    ret = None if type_ == "info" else call + 0.05
    return make_op("keepalive", 7, call, ret, type_, K, 3, {"ttl": 3} if type_ == "ok" else {})


def test_kept_alive_then_expired_passes() -> None:
    ops = base() + [ka(1.0), ka(2.0), read(4.0, True), read(5.5, False), read(12.0, False)]
    ops += busy(0, 13)
    r = leasecheck.check(renumber(ops))
    assert r.verdict == "valid" and "1 past" in r.summary


def test_premature_expiry_rejected() -> None:
    # Renewed at 2.0 with TTL 3: the key must still be there at 4.0.
    r = leasecheck.check(renumber(base() + [ka(2.0), read(4.0, False)]))
    assert r.verdict == "invalid" and "premature expiry" in r.summary


def test_renewal_invoked_after_the_read_still_proves_liveness() -> None:
    # The keepalive at 3.5 succeeded, so the lease was alive at 3.0 too.
    r = leasecheck.check(renumber(base() + [ka(1.0), read(3.0, False), ka(3.5)]))
    assert r.verdict == "invalid" and "premature expiry" in r.summary


def test_visible_after_revoke_rejected() -> None:
    revoke = make_op("revoke", 7, 0.5, 0.6, "ok", K, 3, {"revision": 9})
    r = leasecheck.check(renumber(base() + [revoke, read(0.7, True)]))
    assert r.verdict == "invalid" and "visible after revoke" in r.summary


def test_revoke_in_flight_allows_absence() -> None:
    revoke = make_op("revoke", 7, 0.5, None, "info", K, 3)
    assert leasecheck.check(renumber(base() + [revoke, read(1.0, False)])).verdict == "valid"


def busy(t0: float, t1: float) -> list[Op]:
    """Other clients' ok ops every 0.5 s: the cluster had a leader throughout."""
    n = int((t1 - t0) / 0.5)
    return [
        make_op("read", None, t0 + i * 0.5, t0 + i * 0.5 + 0.01, "ok", "x", 9) for i in range(n)
    ]


def test_never_expired_rejected_unless_a_renewal_is_unknown() -> None:
    ops = base() + [ka(1.0), read(20.0, True)] + busy(0, 20)
    r = leasecheck.check(renumber(ops))
    assert r.verdict == "invalid" and "never expired" in r.summary
    ops = base() + [ka(1.0), ka(2.0, "info"), read(20.0, True)] + busy(0, 20)
    assert leasecheck.check(renumber(ops)).verdict == "valid"


def test_time_without_a_leader_does_not_count_towards_expiry() -> None:
    # Renewed at 1.0 (TTL 3, grace 6): due by 10.05, but nothing succeeded anywhere
    # from 2.0 to 9.0 (a killed majority), so the bound moves to about 17.
    ops = base() + [ka(1.0), read(14.0, True)] + busy(0, 2.1) + busy(9.0, 20)
    assert leasecheck.check(renumber(ops)).verdict == "valid"
    ops = base() + [ka(1.0), read(18.0, True)] + busy(0, 2.1) + busy(9.0, 20)
    r = leasecheck.check(renumber(ops))
    assert r.verdict == "invalid" and "never expired" in r.summary
    # An outage never excuses a premature expiry (a safety clause).
    ops = base() + [ka(1.0), read(3.0, False)] + busy(0, 0.6) + busy(2.9, 20)
    assert "premature expiry" in leasecheck.check(renumber(ops)).summary
    assert leasecheck.expiry_bound(1.0, 9.0, [(2.0, 9.0), (30.0, 40.0)]) == 17.0


def test_no_reads_is_unknown() -> None:
    assert leasecheck.check(renumber(base())).verdict == "unknown"


def test_the_wait_before_the_final_reads_is_not_an_outage() -> None:
    final = make_op("read", "v", 20.0, 20.05, "ok", K, 100_000, {"final": True})
    ops = base() + [ka(1.0), final] + busy(0, 3)
    r = leasecheck.check(renumber(ops))
    assert r.verdict == "invalid" and "never expired" in r.summary
