"""One live 3-member cluster for the whole fuzz package, and the end-of-run summary.

Starting a cluster per example would cost seconds each; one cluster for every fuzz
test is what makes a bounded CI run possible. The cluster is judged after every 200
cases and at the end of each test by `LiveCluster.health`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fuzz.runner import Target
from tests.fuzz.safety import Safety
from tests.fuzz.v1 import Pools
from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS

SUMMARIES: list[str] = []  # printed by pytest_terminal_summary, with or without -s
LEASE_POOL = [0x7A110001, 0x7A110002, 0x7A110003, 0x7A110004]


@dataclass
class LiveCluster:
    cluster: Cluster
    doc: dict[str, Any]
    pools: Pools
    net: Safety
    pids: dict[str, int]
    writes: int = 0
    held: list[socket.socket] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.pids)

    @property
    def ports(self) -> list[int]:
        return [self.cluster.members[n].client_port for n in self.names]

    def target(self, **kw: Any) -> Target:
        return Target(self.ports, self.health, **kw)

    def health(self, wait: float = 20.0) -> str | None:
        """None if every member still runs as the same process, answers /v1/status,
        agrees on one leader, and a write reads back; else what is wrong."""
        for name, pid in self.pids.items():
            proc = self.cluster.members[name].proc
            if proc is None or proc.pid != pid:
                return f"member {name} was restarted"
            if proc.poll() is not None:
                return f"member {name} exited with status {proc.returncode}"
        deadline = time.monotonic() + wait
        problem = "?"
        while time.monotonic() < deadline:
            problem = self._probe()
            if problem is None:
                return None
            time.sleep(0.2)
        return problem

    def _probe(self) -> str | None:
        leaders = set()
        for name in self.names:
            st = self.cluster.status(name)
            if st is None:
                return f"member {name} does not answer GET /v1/status"
            leaders.add(st.get("leader_name"))
        if len(leaders) != 1 or None in leaders:
            return f"no agreed leader: {sorted(map(str, leaders))}"
        self.writes += 1
        key, value = f"__fuzz_health/{self.writes}", f"alive-{self.writes}"
        name = self.names[self.writes % len(self.names)]
        try:
            put = self.cluster.put(name, key, value)
            if put.status != 200:
                return f"PUT /v1/kv/{key} on {name}: {put.status} {put.body[:200]!r}"
            got = self.cluster.get(name, key)
        except OSError as e:
            return f"write on {name} failed: {e!r}"
        if got.status != 200 or got.json().get("value") != value:
            return f"GET /v1/kv/{key} on {name}: {got.status} {got.body[:200]!r}"
        return None


def _hold_port() -> socket.socket:
    """A loopback port bound but not listening: dialing it is refused, and no other
    process can take it while the fuzz run lasts."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    c = Cluster(tmp_path_factory.mktemp("fuzz-cluster"), 3, list(FAST_ARGS))
    held = [_hold_port() for _ in range(2)]
    c.start_all()
    try:
        c.wait_leader(30)
        for lid in LEASE_POOL:
            r = c.req("n1", "POST", "/v1/lease/grant", body={"id": lid, "ttl": 900})
            assert r.status == 200, r.body
        doc = c.req("n1", "GET", "/v1/openapi.json").json()
        ml = c.req("n1", "POST", "/v3/cluster/member/list", body={}).json()
        net = Safety(
            etcd_member_ids={int(m["ID"]) for m in ml["members"]},
            reserved_ports={s.getsockname()[1] for s in held},
        )
        pools = Pools(list(LEASE_POOL), sorted(net.reserved_ports))
        pids = {n: m.proc.pid for n, m in c.members.items() if m.proc is not None}
        yield LiveCluster(c, doc, pools, net, pids, held=held)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()
        for s in held:
            s.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARIES:
        terminalreporter.write_sep("=", "raftkv fuzz summary")
        for s in SUMMARIES:
            terminalreporter.write_line(s)


def note(text: str) -> None:
    print(text)
    SUMMARIES.append(text)
