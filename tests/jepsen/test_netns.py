"""The network-namespace backend: its topology comes and goes completely, its faults
act on real packets, and a whole run through the runner gives a verdict with it.

Needs root and ip/iptables/tc; skipped otherwise. Delay needs sch_netem and is skipped
(with the reason) on kernels without it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jepsen import netns
from jepsen.netns import NetnsCluster, NetnsNet, NetnsUnsupported

_why = netns.missing_requirements()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

# A one-shot TCP echo server: proof of reachability that needs no ping binary.
_ECHO = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 9000)); s.listen()\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(c.recv(16)); c.close()\n"
)


def _probe_code(ip: str, timeout: float) -> str:
    return (
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    c = socket.create_connection(('{ip}', 9000), timeout={timeout})\n"
        "    c.sendall(b'hi'); assert c.recv(16) == b'hi'\n"
        "    print(time.monotonic() - t)\n"
        "except OSError:\n"
        "    print('unreachable')\n"
    )


def _rtt(net: NetnsNet, src: str | None, dst: str, timeout: float = 1.0) -> float | None:
    """Connect + echo time from src's namespace (None: the harness's) to dst."""
    prefix = [] if src is None else net.exec_prefix(src)
    out = subprocess.run(
        [*prefix, sys.executable, "-c", _probe_code(net.ip[dst], timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    ).stdout.strip()
    return None if out == "unreachable" else float(out)


@pytest.fixture
def net3():
    net = NetnsNet()
    net.setup(["n1", "n2", "n3"])
    echo = subprocess.Popen([*net.exec_prefix("n2"), sys.executable, "-c", _ECHO])
    try:
        deadline = time.monotonic() + 10
        while _rtt(net, None, "n2") is None:
            assert time.monotonic() < deadline, "echo server never came up"
            time.sleep(0.1)
        yield net
    finally:
        echo.kill()
        echo.wait(10)
        asyncio.run(net.close())
        assert net.created() == []


@pytest.mark.timeout(60)
def test_topology_is_created_and_fully_removed() -> None:
    net = NetnsNet()
    net.setup(["n1", "n2", "n3"])
    try:
        made = net.created()
        assert sorted(net.ns.values()) == [n for n in made if "-" in n]
        assert net.bridge in made and all(v in made for v in net.veth.values())
        assert set(net.links) == {(a, b) for a in net.ns for b in net.ns if a != b}
        assert len(set(net.ip.values())) == 3
        addr = subprocess.run(
            ["ip", "-n", net.ns["n1"], "-4", "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
        ).stdout
        assert net.ip["n1"] + "/24" in addr
    finally:
        asyncio.run(net.close())
    assert net.created() == []
    asyncio.run(net.close())  # idempotent


@pytest.mark.timeout(60)
def test_failed_setup_and_user_exception_leave_nothing() -> None:
    net = NetnsNet()
    with pytest.raises(RuntimeError):
        net.setup(["n1", "bad/name"])  # ip refuses a namespace name with a slash
    assert net.created() == []
    net = NetnsNet()
    with pytest.raises(ZeroDivisionError):
        try:
            net.setup(["n1", "n2"])
            1 / 0  # noqa: B018 - an error in the code using the net
        finally:
            asyncio.run(net.close())
    assert net.created() == []


@pytest.mark.timeout(60)
def test_cleanup_stale_removes_only_dead_runs() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    ns = f"{netns.PREFIX}{dead.pid:06x}00-n1"
    br = f"{netns.PREFIX}{dead.pid:06x}00br"
    live = NetnsNet()
    live.setup(["n1"])
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", br, "type", "bridge"], check=True)
        gone = netns.cleanup_stale()
        assert ns in gone and br in gone
        assert live.created() == sorted([live.ns["n1"], live.veth["n1"], live.bridge])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", br], capture_output=True)
        asyncio.run(live.close())


@pytest.mark.timeout(90)
def test_cut_drops_packets_and_heal_restores(net3: NetnsNet) -> None:
    assert _rtt(net3, "n1", "n2") is not None
    net3.set("n1", "n2", cut=True)
    assert _rtt(net3, "n1", "n2", 0.7) is None
    assert _rtt(net3, "n3", "n2") is not None, "a cut reaches only its own link"
    assert _rtt(net3, None, "n2") is not None, "harness traffic is never cut"
    net3.heal()
    assert _rtt(net3, "n1", "n2") is not None
    net3.cut_between(["n2"], ["n1", "n3"], one_way=True)  # n2's replies are lost
    assert _rtt(net3, "n3", "n2", 0.7) is None
    net3.heal()
    net3.set("n3", "n2", drop=1.0)
    assert _rtt(net3, "n3", "n2", 0.7) is None
    net3.heal()
    assert _rtt(net3, "n3", "n2") is not None


@pytest.mark.timeout(90)
def test_delay_shows_in_round_trip(net3: NetnsNet) -> None:
    if not net3.netem_ok():
        with pytest.raises(NetnsUnsupported, match="netem"):
            net3.set("n1", "n2", delay=0.1)
        pytest.skip("this kernel has no sch_netem: delay is refused with a clear error")
    base = _rtt(net3, "n1", "n2")
    assert base is not None
    net3.set("n1", "n2", delay=0.2)
    slow = _rtt(net3, "n1", "n2", 3)
    assert slow is not None and slow >= base + 0.35  # SYN and data each wait 0.2 s
    fast = _rtt(net3, "n3", "n2")
    assert fast is not None and fast < 0.2, "delay reaches only its own link"
    net3.heal()
    again = _rtt(net3, "n1", "n2")
    assert again is not None and again < 0.2


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_cluster_leader_cut_and_heal(tmp_path: Path) -> None:
    c = NetnsCluster(tmp_path, 3)
    try:
        await c.setup()
        up = await c.wait_healthy(30)
        assert up is not None, "no healthy leader in 30 s"
        for n in c.names:
            proc = c.nodes[n].proc
            assert proc is not None
            # The kept pid is raftkv itself (ip netns exec execs), in its own namespace.
            assert "raftkv.cli serve" in _cmdline(proc.pid)
            assert os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net")
            assert c.nodes[n].url.startswith(f"http://{c.net.ip[n]}:")
        old = next(iter(up.values()))["leader_name"]
        others = [n for n in c.names if n != old]
        c.net.cut_between([old], others)
        new = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and new in (None, old):
            sts = [await c.status(n) for n in others]
            names = {s.get("leader_name") for s in sts if s}
            new = names.pop() if len(names) == 1 else None
            await asyncio.sleep(0.3)
        assert new not in (None, old), "the majority never elected a leader without old"
        st = await c.status(old)
        assert st is not None, "the harness still reaches an isolated node"
        c.net.heal()
        assert await c.wait_healthy(40) is not None, "not healthy again after heal"
    finally:
        await c.close()
    assert c.net.created() == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_register_run_under_partition_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jepsen import runner
    from jepsen.nemesis import Fault

    # The runner picks its cluster class by the module-level name; this is the whole
    # wiring --net netns needs.
    monkeypatch.setattr(runner, "Cluster", NetnsCluster)
    plan = [
        Fault(2.0, 4.0, "partition", "isolate-leader", 1),
        Fault(8.0, 4.0, "partition", "split", 2),
    ]
    code, summary = runner.run(
        runner.RunConfig(
            workload="register",
            nemesis="partition",
            time=15,
            seed=3,
            store=tmp_path,
            faults=plan,
        )
    )
    assert code == 0, summary.get("checkers") or summary
    assert summary["verdict"] == "valid"
    assert len(summary["windows"]) == 2, "the nemesis never fired"
    assert summary["counts"]["ok"] > 100
    log = (Path(summary["dir"]) / "nodes" / "n1.log").read_text()
    assert "10.213." in log, "nodes did not listen on their namespace addresses"
