"""The fuzzing loop: Hypothesis draws cases, each is sent and judged, findings are kept.

A finding does not stop the run: every distinct failure (rule, route, status, message
with digits blanked) is recorded once, with the shortest request that produced it as
its reproducer, so one run reports every bug instead of the first. Every
`health_every` cases, and at the end, the target's health check runs (members alive,
a leader, a write that reads back); once it fails, the run stops sending.
"""

from __future__ import annotations

import os
import shlex
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tests.fuzz.client import HOST, Request, Response, send
from tests.fuzz.oracle import PARSER_ERROR, Case, Violation, check, normalize


@dataclass
class Target:
    """Where cases go and how to tell the system is still whole."""

    ports: list[int]
    health: Callable[[], str | None]  # None when healthy, else what is wrong
    timeout: float = 10.0  # every unary request; more is a hang
    stream_window: float = 0.3  # how long a stream is read before it is cut
    blocking_window: float = 2.0  # lock / campaign: they may wait by design


@dataclass
class Finding:
    violation: Violation
    case: Case
    response: Response
    port: int
    count: int = 1
    context: list[Case] = field(default_factory=list)
    also: list[str] = field(default_factory=list)  # other rules the same answer broke
    alone: bool | None = None  # did the reproducer, replayed by itself, fail again?

    @property
    def size(self) -> tuple[int, int]:
        """Fewest mutations first, then fewest bytes: the most readable reproducer."""
        req = self.case.request
        n = len(req.target) + len(req.body) + sum(len(k) + len(v) for k, v in req.headers)
        return len(self.case.mutations), n


def examples(default: int) -> int:
    """RAFTKV_FUZZ_EXAMPLES scales every budget (a per-face unary count; streams
    and smaller suites scale with it) for long local runs."""
    raw = os.environ.get("RAFTKV_FUZZ_EXAMPLES")
    if not raw:
        return default
    return max(1, round(default * int(raw) / 400))


def time_budget(default: float) -> float | None:
    """Seconds a test may send for: CI's bound, lifted when examples are raised."""
    raw = os.environ.get("RAFTKV_FUZZ_SECONDS")
    if raw:
        return float(raw)
    return None if os.environ.get("RAFTKV_FUZZ_EXAMPLES") else default


class Fuzzer:
    def __init__(self, name: str, target: Target, health_every: int = 200) -> None:
        self.name = name
        self.target = target
        self.health_every = health_every
        self.findings: dict[tuple[Any, ...], Finding] = {}
        self.routes: Counter[tuple[str, str]] = Counter()
        self.statuses: Counter[str] = Counter()
        self.route_statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.route_seconds: Counter[str] = Counter()
        self.sent = self.cut = self.skipped = self.swept = self.etcd_500 = 0
        self.broken: str | None = None
        self.recent: deque[Case] = deque(maxlen=20)
        self.deadline: float | None = None
        self.started = time.monotonic()
        self.out_of_time = False

    # --- one case ---------------------------------------------------------------------
    def run_case(self, case: Case) -> None:
        if self.broken is not None or self._late():
            self.skipped += 1
            return
        port = self.target.ports[case.member % len(self.target.ports)]
        window = {"stream": self.target.stream_window, "blocking": self.target.blocking_window}
        r = send(
            case.request, port, timeout=self.target.timeout, stream_window=window.get(case.kind)
        )
        self.sent += 1
        self.routes[(case.face, case.route)] += 1
        outcome = str(r.status) if r.status else ("cut" if r.cut else "none")
        self.statuses[outcome] += 1
        self.route_statuses[case.route][outcome[0] + "xx" if r.status else outcome] += 1
        self.route_seconds[case.route] += r.elapsed
        self.cut += r.cut
        self.recent.append(case)
        broken = check(case, r)
        if broken:  # the most severe rule names the finding; the rest ride along
            self._record(broken[0], case, r, port, [v.rule for v in broken[1:]])
        elif r.status == 500:
            self.etcd_500 += 1  # allowed by oracle.V3_UNKNOWN_ALLOWED
        if self.sent % self.health_every == 0:
            self.check_health()

    def _late(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.out_of_time = True
        return self.out_of_time

    def _record(self, v: Violation, case: Case, r: Response, port: int, also: list[str]) -> None:
        route = "*" if v.detail.startswith(PARSER_ERROR) else case.route
        sig = (case.face, route, v.rule, v.status, normalize(v.detail))
        old = self.findings.get(sig)
        before = list(self.recent)[-4:-1]  # what was sent just before, if state matters
        new = Finding(v, case, r, port, also=also, context=before)
        if old is None:
            self.findings[sig] = new
            return
        old.count += 1
        if new.size < old.size:
            new.count = old.count
            self.findings[sig] = new

    def check_health(self) -> None:
        if self.broken is not None:
            return
        problem = self.target.health()
        if problem is None:
            return
        self.broken = problem
        last = self.recent[-1] if self.recent else Case("-", "-", Request(b"-", b"-"))
        v = Violation("cluster-health", None, problem)
        f = Finding(v, last, Response(), 0, context=list(self.recent))
        self.findings[("*", "*", "cluster-health", None, normalize(problem))] = f

    # --- a whole run ------------------------------------------------------------------
    def run(
        self,
        strategy: st.SearchStrategy[Case],
        max_examples: int,
        seconds: float | None,
        corpus: list[Case] | None = None,
    ) -> None:
        """Send the `corpus` (the deterministic sweep), then `max_examples` cases drawn
        by Hypothesis (derandomized unless RAFTKV_FUZZ_SEED is set), then check the
        target's health once more and replay every finding alone."""
        self.deadline = None if seconds is None else time.monotonic() + seconds
        for case in corpus or []:
            self.run_case(case)
        self.swept = len(corpus or [])
        seed_env = os.environ.get("RAFTKV_FUZZ_SEED")

        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=seed_env is None,
            database=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy)
        def one(case: Case) -> None:
            self.run_case(case)

        if seed_env is not None:
            one = hypothesis_seed(int(seed_env))(one)
        one()
        self.check_health()
        self.replay()

    def replay(self) -> None:
        """Send each finding's reproducer once more, alone: a failure that does not
        come back depends on what was sent before it (the report says so)."""
        if self.broken is not None:
            return
        window = {"stream": self.target.stream_window, "blocking": self.target.blocking_window}
        for f in self.findings.values():
            if f.violation.rule == "cluster-health":
                continue
            r = send(
                f.case.request,
                f.port,
                timeout=min(self.target.timeout, 3.0),  # a hang that lasts 3 s again is one
                stream_window=window.get(f.case.kind),
            )
            f.alone = any(v.rule == f.violation.rule for v in check(f.case, r))

    # --- reporting --------------------------------------------------------------------
    def summary(self) -> str:
        faces = Counter()
        for (face, _), n in self.routes.items():
            faces[face] += n
        lines = [
            f"fuzz[{self.name}]: {self.sent} cases sent ({self.swept} of them the sweep) in "
            f"{time.monotonic() - self.started:.1f}s"
            f" ({', '.join(f'{f}: {n}' for f, n in sorted(faces.items()))}), {self.cut} streams"
            f" cut on purpose, {self.etcd_500} etcd-faithful HTTP 500s (gRPC Unknown) allowed,"
            f" {len(self.findings)} distinct findings"
            + (f", {self.skipped} not sent" if self.skipped else "")
            + (" (stopped at the time budget)" if self.out_of_time else ""),
            "  statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items())),
            "  per route:",
        ]
        for (_face, route), n in sorted(self.routes.items()):
            outcomes = " ".join(f"{k}:{v}" for k, v in sorted(self.route_statuses[route].items()))
            secs = self.route_seconds[route]
            lines.append(f"    {n:5d}  {route:42s} {secs:5.1f}s  [{outcomes}]")
        return "\n".join(lines)

    def report(self) -> str:
        """Every finding, grouped by (face, rule, status, message): one full reproducer
        (the shortest) per group, and a one-line reproducer for each other route."""
        if not self.findings:
            return f"fuzz[{self.name}]: no findings"
        groups: dict[tuple[Any, ...], list[Finding]] = {}
        for f in self.findings.values():
            v = f.violation
            detail = normalize(v.detail)
            if detail.startswith(PARSER_ERROR):  # one root cause, many parser messages
                detail = PARSER_ERROR
            groups.setdefault((f.case.face, v.rule, v.status, detail), []).append(f)
        out = [
            f"fuzz[{self.name}]: {len(groups)} distinct findings "
            f"({len(self.findings)} (route, finding) pairs)"
        ]
        order = sorted(groups.values(), key=lambda g: (g[0].violation.rule, g[0].case.route))
        for i, group in enumerate(order, 1):
            group.sort(key=lambda f: f.size)
            out.append(render(i, group[0]))
            others = sorted(group[1:], key=lambda f: f.case.route)
            if others:
                out.append(f"    also on {len(others)} more route(s):")
                out += [f"      {one_line(f)}" for f in others]
        return "\n".join(out)


def one_line(f: Finding) -> str:
    req = f.case.request
    what = f.violation.detail if f.violation.detail.startswith(PARSER_ERROR) else f.case.route
    return (
        f"{what} ({f.count}x): {req.method.decode('latin-1')} "
        f"{_bytes_expr(req.target, None, 100)} headers={list(req.headers)!r} "
        f"body={_bytes_expr(req.body, req.body_expr, 160)}"
    )


def _bytes_expr(b: bytes, expr: str | None, limit: int = 600) -> str:
    if len(b) <= limit or not expr:
        text = repr(b)
        if len(text) > 4 * limit:
            return text[: 4 * limit] + f"...  # {len(b)} bytes, truncated"
        return text
    return expr


def curl(req: Request, port: int) -> str:
    """A curl command for the same request (curl adds Host, Accept, User-Agent)."""
    raw = req.target + b"".join(k + v for k, v in req.headers)
    if any(c >= 0x80 or c < 0x20 for c in raw):
        return (
            "(not byte-exact in curl: non-ASCII or control bytes in the path or headers; "
            f"replay with tests.fuzz.client.send(Request(...), {port}))"
        )
    target = req.target.decode("latin-1")
    parts = ["curl", "-sS", "-i", "--path-as-is", "-X", req.method.decode("latin-1")]
    for k, v in req.headers:
        parts += ["-H", f"{k.decode('latin-1')}: {v.decode('latin-1')}"]
    cmd = " ".join(shlex.quote(p) for p in parts)
    cmd += " " + shlex.quote(f"http://{HOST}:{port}{target}")
    if req.body:
        body = _bytes_expr(req.body, req.body_expr)
        py = f"import sys; sys.stdout.buffer.write({body})"
        cmd += f" --data-binary @<(python3 -c {shlex.quote(py)})"
    return cmd


def render(i: int, f: Finding) -> str:
    req, r, v = f.case.request, f.response, f.violation
    status = f"HTTP {v.status}" if v.status else "no status"
    route = "* (any route)" if v.detail.startswith(PARSER_ERROR) else f.case.route
    lines = [
        f"[{i}] {v.rule} ({status}) on {f.case.face} {route} — seen {f.count}x",
        f"    detail:    {v.detail}",
    ]
    if f.also:
        lines.append(f"    also:      {', '.join(f.also)}")
    if f.case.mutations:
        lines.append(f"    mutations: {', '.join(f.case.mutations)}")
    if f.alone is False:
        lines.append(
            "    replayed alone it did NOT fail again: it depends on earlier requests "
            "(sent just before it:"
            + "".join(
                f"\n      {c.request.method!r} {_bytes_expr(c.request.target, None, 120)}"
                f" body={_bytes_expr(c.request.body, c.request.body_expr, 120)}"
                for c in f.context
            )
            + ")"
        )
    elif f.alone:
        lines.append("    replayed alone: fails again")
    if v.rule != "cluster-health":
        lines += [
            "    reproducer:",
            f"      method  = {req.method!r}",
            f"      path    = {_bytes_expr(req.target, None, 300)}",
            f"      headers = {list(req.headers)!r}",
            f"      body    = {_bytes_expr(req.body, req.body_expr)}",
            f"      curl:   {curl(req, f.port)}",
            f"    answer:    {r.status} {r.headers.get('content-type', '')!r} "
            f"{r.body[:300]!r}" + (" (timed out)" if r.timed_out else ""),
        ]
    else:
        lines.append("    the last cases before the check:")
        for c in f.context[-10:]:
            lines.append(
                f"      {c.request.method!r} {_bytes_expr(c.request.target, None, 120)}"
                f" body={_bytes_expr(c.request.body, c.request.body_expr, 120)}"
            )
    return "\n".join(lines)
