"""`raftkv serve`: run one member. Flags override RAFTKV_* environment variables.

Settings are validated by pydantic before anything touches the data dir, so a typo
in a URL fails fast with a readable message instead of a half-started node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import structlog
import uvloop
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from raftkv import __version__, testmode
from raftkv import logging as rlog
from raftkv.node.join import join_existing
from raftkv.node.membership import MEMBERS_FILE, parse_initial_cluster
from raftkv.node.node import CORRUPTION_EXIT_CODE, Node, NodeConfig
from raftkv.service.limits import MAX_REQUEST_BYTES, Limits
from raftkv.storage.datadir import DataDirError
from raftkv.storage.errors import is_corruption
from raftkv.storage.mvcc import DEFAULT_QUOTA

ENV_PREFIX = "RAFTKV_"


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    data_dir: Path
    client_url: str = "http://127.0.0.1:2379"
    peer_url: str | None = None  # must match this member's entry in --initial-cluster
    initial_cluster: str | None = None
    # "existing": join a running cluster (after POST /v1/members) instead of bootstrapping.
    initial_cluster_state: str = Field(default="new", pattern="^(new|existing)$")
    log_format: str = Field(default="console", pattern="^(console|json)$")
    log_level: str = "info"
    tick_ms: int = Field(default=100, ge=1)
    election_ticks: int = Field(default=10, ge=2)
    snapshot_count: int = Field(default=10_000, ge=1)
    snapshot_keep: int = Field(default=5_000, ge=0)
    snapshot_bytes: int = Field(default=256 << 20, ge=1 << 20)
    request_timeout: float = Field(default=5.0, gt=0)
    # Limits (etcd's names and defaults where etcd has them; see the README, "Limits").
    quota_backend_bytes: int = 0  # 0: the default 2 GiB; negative: no quota (8 EiB)
    max_request_bytes: int = Field(default=MAX_REQUEST_BYTES, ge=1024, le=64 << 20)
    max_txn_ops: int = Field(default=128, ge=1, le=100_000)
    max_txn_range_keys: int = Field(default=100_000, ge=1)
    max_txn_range_bytes: int = Field(default=16 << 20, ge=1024)
    max_range_bytes: int = Field(default=64 << 20, ge=1024)
    max_watchers: int = Field(default=100_000, ge=1)
    max_streams: int = Field(default=10_000, ge=1)
    request_body_timeout: float = Field(default=10.0, gt=0)
    cors: str = ""  # comma-separated origins allowed to write from a browser ("*": any)
    verify_on_start: bool = True  # full checksum scan of the data before serving

    @field_validator("client_url", "peer_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlsplit(v)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError("must look like http://host:port")
        return v.rstrip("/")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raftkv")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run one cluster member")
    s.add_argument(
        "--config",
        default=None,
        help=f"a TOML file of the settings below (keys as the flags, with underscores; "
        f"env {ENV_PREFIX}CONFIG). Flags win over the environment, which wins over the file.",
    )
    for name in ServeSettings.model_fields:
        flag = "--" + name.replace("_", "-")
        s.add_argument(flag, dest=name, default=None, help=f"(env {ENV_PREFIX}{name.upper()})")
    return p


def _overview(client_commands: tuple[str, ...]) -> str:
    """`raftkv`, `raftkv --help`: every command, server and client, in one screen."""
    return "\n".join(
        [
            f"raftkv {__version__}: an etcd-like, strongly consistent key-value store",
            "",
            "usage: raftkv <command> [flags]     (raftkv <command> --help for its flags)",
            "",
            "server:",
            "  serve      run one cluster member (flags, RAFTKV_* variables or --config TOML)",
            "",
            "client (etcdctl-like; --endpoints or RAFTKV_ENDPOINTS, -w json|simple):",
            "  " + " ".join(client_commands),
            "",
            "  -V, --version   print the version",
        ]
    )


class ListenError(ValueError):
    """The client URL's port cannot be bound (taken, or not a local address)."""


class ConfigFileError(ValueError):
    """The --config file is missing or is not valid TOML."""


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> ServeSettings:
    """Merge the settings' three sources: flags, then RAFTKV_* variables, then TOML."""
    raw: dict[str, object] = {}
    config = getattr(args, "config", None) or env.get(ENV_PREFIX + "CONFIG")
    if config:
        try:
            with open(config, "rb") as f:
                raw.update(tomllib.load(f))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigFileError(f"cannot read config file {config}: {e}") from e
    for name in ServeSettings.model_fields:
        v = getattr(args, name, None)
        if v is None:
            v = env.get(ENV_PREFIX + name.upper())
        if v is not None:
            raw[name] = v
    return ServeSettings.model_validate(raw)


async def serve(s: ServeSettings) -> int:
    log = structlog.get_logger("raftkv.cli").bind(node=s.name)
    initial_cluster = s.initial_cluster
    if s.initial_cluster_state == "existing" and not (s.data_dir / MEMBERS_FILE).exists():
        host, port = _peer_listen(s)
        await join_existing(s.data_dir, s.name, host, port)
        initial_cluster = None  # the membership now comes from the cluster, with its ids
    node = Node(
        NodeConfig(
            name=s.name,
            data_dir=s.data_dir,
            client_url=s.client_url,
            initial_cluster=initial_cluster,
            peer_url=s.peer_url,
            tick_seconds=s.tick_ms / 1000,
            election_tick=s.election_ticks,
            request_timeout=s.request_timeout,
            snapshot_count=s.snapshot_count,
            snapshot_keep=s.snapshot_keep,
            snapshot_bytes=s.snapshot_bytes,
            quota_bytes=quota_bytes(s.quota_backend_bytes),
            verify_on_start=s.verify_on_start,
        )
    )
    from raftkv.server import GATE_KEY, build_app, grpc, sniff
    from raftkv.server.http import Runner
    from raftkv.service import Services

    services = Services(node, limits_from(s))
    await node.start()
    cors = frozenset(o.strip() for o in s.cors.split(",") if o.strip())
    app = build_app(services, cors)
    runner = Runner(app, access_log=None, handle_signals=False)
    await runner.setup()
    grpc_server = grpc.build(services, app[GATE_KEY])
    u = urlsplit(s.client_url)
    assert runner.server is not None
    try:
        # HTTP/1.1 (/v1, the JSON gateway) and gRPC share the client port, as in etcd
        listener = await sniff.serve(
            u.hostname, u.port or 2379, runner.server, grpc_server._protocol_factory
        )
    except OSError as e:
        await node.stop(transfer=False)
        raise ListenError(f"cannot listen on {s.client_url}: {e.strerror or e}") from e
    log.info("serving", client_url=s.client_url, peer_url=node.membership.get(node.id).peer_url)  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A removed member exits; the grace lets it answer the DELETE that removed it.
    node.on_removed = lambda: loop.call_later(1.0, stop.set)
    exit_code = 0

    def on_fatal(e: BaseException) -> None:
        nonlocal exit_code
        if is_corruption(e):
            exit_code = CORRUPTION_EXIT_CODE
            stop.set()

    node.on_fatal = lambda e: loop.call_soon_threadsafe(on_fatal, e)  # from any thread
    await stop.wait()
    log.info("shutting down")
    await node.stop(transfer=exit_code == 0)
    listener.close()
    await grpc.shutdown(grpc_server, 2)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), 3)
    return exit_code


def quota_bytes(flag: int) -> int:
    """etcd's --quota-backend-bytes: 0 is the default (2 GiB), negative disables it."""
    if flag == 0:
        return DEFAULT_QUOTA
    if flag < 0:
        return 1 << 62
    return flag


def limits_from(s: ServeSettings) -> Limits:
    return Limits(
        max_request_bytes=s.max_request_bytes,
        max_txn_ops=s.max_txn_ops,
        max_txn_range_keys=s.max_txn_range_keys,
        max_txn_range_bytes=s.max_txn_range_bytes,
        max_range_bytes=s.max_range_bytes,
        max_watchers=s.max_watchers,
        max_streams=s.max_streams,
        request_body_timeout=s.request_body_timeout,
    )


def _peer_listen(s: ServeSettings) -> tuple[str, int]:
    """Where a joining node listens: --peer-url, or its own entry in --initial-cluster."""
    url = s.peer_url
    if url is None and s.initial_cluster:
        url = next(
            (m.peer_url for m in parse_initial_cluster(s.initial_cluster) if m.name == s.name),
            None,
        )
    if url is None:
        raise ValueError("joining an existing cluster needs --peer-url or --initial-cluster")
    u = urlsplit(url)
    assert u.hostname and u.port
    return u.hostname, u.port


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from raftkv import ctl  # client commands (get, put, watch, lock, ...) live there

    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview(ctl.COMMANDS))
        return 0
    if argv[0] in ("-V", "--version", "version"):
        print(f"raftkv {__version__}")
        return 0

    if argv and (argv[0] in ctl.COMMANDS or argv[0] in ("--endpoints", "-w", "--write-out")):
        return ctl.main(argv)
    args = _parser().parse_args(argv)
    try:
        s = settings_from(args, dict(os.environ))
    except ValidationError as e:
        print(f"raftkv: invalid settings:\n{e}", file=sys.stderr)
        return 2
    except ConfigFileError as e:
        print(f"raftkv: {e}", file=sys.stderr)
        return 2
    try:
        tm = testmode.configure()  # read once; refuses test-only settings in production
    except testmode.TestModeError as e:
        print(f"raftkv: {e}", file=sys.stderr)
        return 2
    rlog.configure(s.log_format, s.log_level)
    faulthandler.enable()  # a fatal signal (SIGBUS on a damaged mmap) leaves a trace
    if tm.enabled:
        structlog.get_logger("raftkv.cli").warning(
            "TEST MODE: not for production",
            mutations=sorted(tm.mutations),
            failpoints=tm.failpoints,
            lazy_fsync=tm.lazy_fsync,
            clock=tm.clock.to_json(),
        )
    try:
        # uvloop roughly halves the event loop's cost per request and per peer frame;
        # on two cores that is throughput the servers keep.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(s))
    except (ValueError, DataDirError) as e:
        print(f"raftkv: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
