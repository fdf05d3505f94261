"""Record etcd 3.4's normalised gRPC answers for every scenario of grpc_scenarios.

    .venv/bin/python -m tests.conformance.grpc_record [scenario ...]

Writes tests/conformance/expected_grpc/<scenario>.json, which the gRPC suite compares
raftkv with when `etcd` is not on PATH. Re-run after changing a scenario.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.conformance.grpc_scenarios import SCENARIOS, run
from tests.conformance.harness import etcd_binary, run_etcd

EXPECTED = Path(__file__).parent / "expected_grpc"


def main(argv: list[str]) -> int:
    if etcd_binary() is None:
        print("etcd is not on PATH; install etcd-server (3.4) to record", file=sys.stderr)
        return 2
    EXPECTED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as d, run_etcd(Path(d)) as port:
        for name in argv or list(SCENARIOS):
            out = EXPECTED / f"{name}.json"
            out.write_text(json.dumps(run(name, port, True), indent=1, sort_keys=True) + "\n")
            print(f"recorded {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
