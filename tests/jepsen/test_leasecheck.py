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


def test_never_expired_rejected_unless_a_renewal_is_unknown() -> None:
    ops = base() + [ka(1.0), read(20.0, True)]
    r = leasecheck.check(renumber(ops))
    assert r.verdict == "invalid" and "never expired" in r.summary
    ops = base() + [ka(1.0), ka(2.0, "info"), read(20.0, True)]
    assert leasecheck.check(renumber(ops)).verdict == "valid"


def test_no_reads_is_unknown() -> None:
    assert leasecheck.check(renumber(base())).verdict == "unknown"
