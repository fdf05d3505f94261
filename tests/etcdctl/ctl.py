"""Running the real `etcdctl` (v3 API) against a raftkv cluster, for the black-box suite.

Every call has a timeout; background commands (watch, lock, elect, keep-alive,
make-mirror) are `Bg` objects whose output is read by threads, and only processes
started here are ever signalled (by their own pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ETCDCTL = shutil.which("etcdctl")
SKIP_REASON = "etcdctl is not on PATH (Debian/Ubuntu: apt-get install etcd-client)"


def ctl_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any ETCDCTL_* setting, plus ETCDCTL_API=3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    env.update(extra or {})
    return env


@dataclass
class Out:
    args: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        """etcdctl's own `Error: ...` lines (stderr also carries gRPC retry warnings)."""
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"etcdctl {' '.join(self.args)} -> rc={self.rc}\n{self.stdout}\n{self.stderr}"


class Bg:
    """An etcdctl process running in the background; stdout/stderr collected by threads."""

    def __init__(self, cmd: list[str], env: dict[str, str], stdin: bool) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, pipe: Any, into: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            with self._cond:
                into.append(raw.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._err)

    def wait_for(self, what: str | Callable[[str], bool], timeout: float = 10) -> str:
        """Until stdout contains `what` (or `what(stdout)` is true); returns stdout."""
        pred = what if callable(what) else (lambda out: what in out)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                out = "".join(self._out)
                if pred(out):
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
        raise AssertionError(
            f"{' '.join(self.cmd[1:])}: timed out after {timeout}s waiting for {what!r}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr[-3000:]}"
        )

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 10) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """Signal the process and reap it (SIGKILL if it does not exit in time)."""
        self.send(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            return self.wait(10)


class Ctl:
    """etcdctl bound to a set of endpoints (`host:port`, no scheme)."""

    def __init__(self, endpoints: list[str]) -> None:
        assert ETCDCTL is not None, SKIP_REASON
        self.endpoints = endpoints
        self.bgs: list[Bg] = []

    def _cmd(self, args: tuple[str, ...], endpoints: list[str] | None) -> list[str]:
        eps = ",".join(endpoints or self.endpoints)
        return [str(ETCDCTL), f"--endpoints={eps}", *args]

    def run(
        self,
        *args: str,
        endpoints: list[str] | None = None,
        input: str | None = None,
        timeout: float = 20,
        env: dict[str, str] | None = None,
    ) -> Out:
        cmd = self._cmd(args, endpoints)
        p = subprocess.run(
            cmd,
            input=(input or "").encode(),
            capture_output=True,
            timeout=timeout,
            env=ctl_env(env),
        )
        return Out(list(args), p.returncode, p.stdout.decode(), p.stderr.decode())

    def ok(self, *args: str, **kw: Any) -> str:
        """Run; it must exit 0. Returns stdout."""
        out = self.run(*args, **kw)
        assert out.rc == 0, str(out)
        return out.stdout

    def fail(self, *args: str, **kw: Any) -> Out:
        """Run; it must exit non-zero."""
        out = self.run(*args, **kw)
        assert out.rc != 0, str(out)
        return out

    def bg(
        self,
        *args: str,
        endpoints: list[str] | None = None,
        stdin: bool = False,
        env: dict[str, str] | None = None,
    ) -> Bg:
        b = Bg(self._cmd(args, endpoints), ctl_env(env), stdin)
        self.bgs.append(b)
        return b

    def close(self) -> None:
        for b in self.bgs:
            b.stop(signal.SIGKILL)
        self.bgs.clear()

    # --- helpers over etcdctl's own output ----------------------------------------------
    def revision(self) -> int:
        """The store's current revision, from a JSON get's header."""
        return int(self.run_json("get", "revision-probe")["header"]["revision"])

    def run_json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok("-w", "json", *args, **kw))

    def members(self) -> list[dict[str, Any]]:
        """`member list -w json`, ids as etcdctl's hex (simple/table format) too."""
        ms = self.run_json("member", "list")["members"]
        for m in ms:
            m["hex"] = f"{int(m['ID']):x}"
        return ms

    def status(self, endpoints: list[str] | None = None) -> list[dict[str, Any]]:
        """`endpoint status -w json`: [{"Endpoint": ..., "Status": {...}}, ...]."""
        return list(self.run_json("endpoint", "status", endpoints=endpoints))

    def leader_id(self) -> int:
        leaders = {int(s["Status"]["leader"]) for s in self.status()}
        assert len(leaders) == 1 and 0 not in leaders, leaders
        return leaders.pop()


def endpoints(cluster: Any, names: list[str] | None = None) -> list[str]:
    """`127.0.0.1:<client port>` of the named (default: running) members of a Cluster."""
    return [f"127.0.0.1:{cluster.members[n].client_port}" for n in names or cluster.running()]


LEASE_GRANTED = re.compile(r"^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$")


def retry(fn: Callable[[], Any], timeout: float = 15, what: str = "", pause: float = 0.2) -> Any:
    """Call fn until it returns something truthy (AssertionErrors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            got = fn()
            if got:
                return got
        except AssertionError as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s: {what}\n{last or ''}")
        time.sleep(pause)
