"""Test mode: failpoints, mutations, a skewable clock and lazy fsync, for the Jepsen harness.

Everything here is inert unless the process starts with RAFTKV_TEST_MODE=1. The harness
needs white-box help (trigger a crash at a precise point, skew a node's clock, lose
writes that were never fsynced, plant known bugs to prove its checkers can fail), but a
production server must never be able to run with any of it. So the environment is read
once, by `configure()` at startup; any test-only variable without test mode is an error
(`raftkv serve` exits 2), and every hook's fast path is a plain attribute test.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_TEST_MODE = "RAFTKV_TEST_MODE"
ENV_MUTATIONS = "RAFTKV_MUTATIONS"
ENV_FAILPOINTS = "RAFTKV_FAILPOINTS"
ENV_LAZY_FSYNC = "RAFTKV_LAZY_FSYNC"
ENV_CLOCK_OFFSET = "RAFTKV_CLOCK_OFFSET_MS"
ENV_CLOCK_RATE = "RAFTKV_CLOCK_RATE"
GATED_ENV = (ENV_MUTATIONS, ENV_FAILPOINTS, ENV_LAZY_FSYNC, ENV_CLOCK_OFFSET, ENV_CLOCK_RATE)

# Mutations that are planted bugs of the Raft core (Config.bugs), by harness name.
CORE_BUG_MUTATIONS: dict[str, str] = {
    "leader-reads-no-readindex": "read_no_quorum",
    "no-noop-read-wait": "read_before_noop",
    "double-vote": "double_vote",
    "skip-log-uptodate-check": "vote_no_log_check",
    "figure8-commit": "commit_old_term",
    "truncate-on-stale-append": "truncate_on_append",
    "stale-term-accepted": "accept_stale_term",
}
# Mutations implemented in the node, storage or server layers.
NODE_MUTATIONS = frozenset(
    {
        "follower-local-reads",  # linearizable GET on a follower skips ReadIndex
        "ack-before-fsync",  # Ready messages (append acks, votes) go out before LogStore.save
        "no-persist-term-vote",  # LogStore.save keeps the start-up term/vote, never the new ones
        "non-atomic-apply",  # applied index committed in its own txn before the state change
        "no-dedup",  # the state machine's request-id de-duplication table is off
        "watch-resume-skip",  # a watch from start_revision=r starts at r+1
        "watch-split-revision",  # one message per event instead of one per revision
        "lease-no-ttl-refresh",  # a new leader keeps stale deadlines instead of full TTLs
        "revision-from-unsynced-meta",  # restart takes the revision from a lagging side-car
    }
)
MUTATIONS = frozenset(CORE_BUG_MUTATIONS) | NODE_MUTATIONS

FAILPOINTS = frozenset(
    {
        "after_persist_before_send",  # LogStore.save returned, Ready messages not sent
        "after_send_before_persist",  # only reached with the ack-before-fsync mutation
        "after_apply_before_ack",  # MvccStore.apply committed, waiters not resolved
        "before_snapshot_install",  # a received snapshot is about to be restored
        "between_state_and_applied",  # only reached with the non-atomic-apply mutation
    }
)
CRASH_EXIT_CODE = 137
_ACTION = re.compile(r"^(crash|off|sleep\((\d+)\))$")


class TestModeError(ValueError):
    """A test-only setting was given without RAFTKV_TEST_MODE=1, or is malformed."""


@dataclass
class Clock:
    """A monotonic clock with an offset and a rate, for clock-skew nemeses.

    time = anchor_virtual + (real - anchor_real) * rate + offset. Changing the rate
    re-anchors, so the virtual clock never jumps except by an explicit offset change.
    """

    offset: float = 0.0  # seconds
    rate: float = 1.0
    _anchor_real: float = field(default_factory=time.monotonic)
    _anchor_virtual: float = 0.0

    def __post_init__(self) -> None:
        self._anchor_virtual = self._anchor_real

    def monotonic(self) -> float:
        real = time.monotonic()
        return self._anchor_virtual + (real - self._anchor_real) * self.rate + self.offset

    def set(self, offset_ms: float | None = None, rate: float | None = None) -> None:
        if rate is not None:
            if rate <= 0:
                raise TestModeError("clock rate must be positive")
            real = time.monotonic()
            self._anchor_virtual += (real - self._anchor_real) * self.rate
            self._anchor_real = real
            self.rate = rate
        if offset_ms is not None:
            self.offset = offset_ms / 1000

    def to_json(self) -> dict[str, float]:
        return {"offset_ms": self.offset * 1000, "rate": self.rate}


@dataclass
class Settings:
    enabled: bool = False
    mutations: frozenset[str] = frozenset()
    lazy_fsync: bool = False
    failpoints: dict[str, str] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)

    @property
    def core_bugs(self) -> frozenset[str]:
        return frozenset(CORE_BUG_MUTATIONS[m] for m in self.mutations if m in CORE_BUG_MUTATIONS)


_settings = Settings()
_fp_lock = threading.Lock()


def parse_action(action: str) -> str:
    action = action.strip()
    if not _ACTION.match(action):
        raise TestModeError(f"bad failpoint action {action!r} (crash, sleep(ms) or off)")
    return action


def parse_failpoints(spec: str) -> dict[str, str]:
    """`name=action,...` -> {name: action}; unknown names are an error (typos hide bugs)."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, action = item.partition("=")
        if not sep:
            raise TestModeError(f"bad failpoint {item!r} (want name=action)")
        name = name.strip()
        if name not in FAILPOINTS:
            raise TestModeError(f"unknown failpoint {name!r}; known: {sorted(FAILPOINTS)}")
        out[name] = parse_action(action)
    return out


def load(env: Mapping[str, str]) -> Settings:
    """Parse and validate the test-mode environment (no side effects)."""
    on = env.get(ENV_TEST_MODE, "") == "1"
    if not on:
        given = [k for k in GATED_ENV if env.get(k)]
        if given:
            raise TestModeError(
                f"{', '.join(given)} set without {ENV_TEST_MODE}=1: test-only settings are "
                "refused in production"
            )
        return Settings()
    muts = frozenset(m.strip() for m in env.get(ENV_MUTATIONS, "").split(",") if m.strip())
    unknown = muts - MUTATIONS
    if unknown:
        raise TestModeError(f"unknown mutations {sorted(unknown)}; known: {sorted(MUTATIONS)}")
    clock = Clock()
    try:
        clock.set(
            float(env.get(ENV_CLOCK_OFFSET, "0") or 0), float(env.get(ENV_CLOCK_RATE, "1") or 1)
        )
    except ValueError as e:
        raise TestModeError(f"bad clock setting: {e}") from e
    return Settings(
        enabled=True,
        mutations=muts,
        lazy_fsync=env.get(ENV_LAZY_FSYNC, "") == "1",
        failpoints=parse_failpoints(env.get(ENV_FAILPOINTS, "")),
        clock=clock,
    )


def configure(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment once, at process start; raises TestModeError."""
    global _settings
    _settings = load(os.environ if env is None else env)
    return _settings


def settings() -> Settings:
    return _settings


def enabled() -> bool:
    return _settings.enabled


def mutation(name: str) -> bool:
    """Whether planted mutation `name` is active (always False outside test mode)."""
    assert name in MUTATIONS, name
    return name in _settings.mutations


def monotonic() -> float:
    """The node's clock: time.monotonic() unless test mode skews it."""
    if not _settings.enabled:
        return time.monotonic()
    return _settings.clock.monotonic()


def clock_rate() -> float:
    return _settings.clock.rate if _settings.enabled else 1.0


def arm(name: str, action: str) -> None:
    if not _settings.enabled:
        raise TestModeError("failpoints need RAFTKV_TEST_MODE=1")
    if name not in FAILPOINTS:
        raise TestModeError(f"unknown failpoint {name!r}; known: {sorted(FAILPOINTS)}")
    action = parse_action(action)
    with _fp_lock:
        if action == "off":
            _settings.failpoints.pop(name, None)
        else:
            _settings.failpoints[name] = action


def _action(name: str) -> tuple[str, float]:
    with _fp_lock:
        action = _settings.failpoints.get(name)
    if action is None:
        return "off", 0.0
    if action == "crash":
        # Like a kill -9 at exactly this point: no atexit, no LMDB close, no flush.
        os.write(2, f"raftkv: failpoint {name} crash\n".encode())
        os._exit(CRASH_EXIT_CODE)
    m = _ACTION.match(action)
    assert m is not None and m.group(2) is not None
    return "sleep", int(m.group(2)) / 1000


def hit(name: str) -> None:
    """A failpoint in a worker thread (blocking sleep is what a stall there looks like)."""
    if not _settings.failpoints:
        return
    kind, secs = _action(name)
    if kind == "sleep":
        time.sleep(secs)


async def hit_async(name: str) -> None:
    """A failpoint on the event loop: sleeping blocks this path, not the whole loop."""
    if not _settings.failpoints:
        return
    kind, secs = _action(name)
    if kind == "sleep":
        await asyncio.sleep(secs)
