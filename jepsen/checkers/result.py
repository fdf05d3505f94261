"""The common verdict type; ``unknown`` is its own outcome and never counts as a pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"
_RANK = {VALID: 0, UNKNOWN: 1, INVALID: 2}


@dataclass
class CheckResult:
    name: str
    verdict: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"  {self.name:<22} {self.verdict.upper():<8} {self.summary}"


def combine(results: list[CheckResult]) -> str:
    """Invalid beats unknown beats valid; no results at all is unknown, not a pass."""
    if not results:
        return UNKNOWN
    return max((r.verdict for r in results), key=lambda v: _RANK[v])
