"""Checkers: each takes a history (and run facts) and returns a CheckResult."""

from jepsen.checkers.result import CheckResult, combine

__all__ = ["CheckResult", "combine"]
