"""Record the expected answers of every scenario from a real etcd 3.4.

    .venv/bin/python -m tests.conformance.record [scenario ...]

Writes tests/conformance/expected/<scenario>.json (normalised), which the suite uses
when `etcd` is not on PATH. Re-run after changing a scenario.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.conformance.harness import Target, etcd_binary, run_etcd
from tests.conformance.scenarios import SCENARIOS

EXPECTED = Path(__file__).parent / "expected"


def record(name: str) -> list[list[object]]:
    with tempfile.TemporaryDirectory() as d, run_etcd(Path(d)) as port:
        t = Target(port, is_etcd=True)
        SCENARIOS[name](t)
        return t.record


def main(argv: list[str]) -> int:
    if etcd_binary() is None:
        print("etcd is not on PATH; install etcd-server (3.4) to record", file=sys.stderr)
        return 2
    for name in argv or list(SCENARIOS):
        out = EXPECTED / f"{name}.json"
        out.write_text(json.dumps(record(name), indent=1, sort_keys=True) + "\n")
        print(f"recorded {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
