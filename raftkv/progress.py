"""A progress line for long work (simulator campaigns, Jepsen suites and matrices):
done/total, rate, ETA and failures so far.

On a terminal the line is redrawn in place; otherwise (CI logs, pipes) a full line is
printed at most every `every` seconds, and always at the end, so a 20-minute job
never looks hung and never floods a log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        every: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self.done = 0
        self.failed = 0
        self.note = ""
        self.started = time.monotonic()
        self._last_print = float("-inf")

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label}: {self.done}/{self.total}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{rate:.1f}{' ' + self.unit if self.unit else ''}/s")
        if 0 < self.done < self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        parts.append(f"elapsed {_duration(elapsed)}")
        parts.append(f"failures {self.failed}")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    def update(self, n: int = 1, failed: int = 0, note: str = "") -> None:
        self.done += n
        self.failed += failed
        if note:
            self.note = note
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(now))
            self.stream.flush()
        elif now - self._last_print >= self.every or self.done >= self.total:
            self._last_print = now
            print(self.line(now), file=self.stream, flush=True)

    def close(self) -> None:
        """End the line (a final full line when not redrawing in place)."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line() + "\n")
            self.stream.flush()
        elif self.done < self.total:
            print(self.line(), file=self.stream, flush=True)
