"""Joining an existing cluster (`--initial-cluster-state existing`).

A new member must not bootstrap: it starts with an empty log and is caught up by the
leader. What it needs first is its own member id, which the leader assigned when the
member was added (POST /v1/members). Rather than asking the operator to copy the id
around, the joining node listens on its peer URL: every member dials it as soon as it
applies the ADD_LEARNER entry (the URL is in the entry's context), and the dialler's
HELLO frame carries its client URL, from which the full member list (ids included)
is read. The list is written to members.json, so a restart needs only the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from pathlib import Path

import structlog

from raftkv.node.membership import MEMBERS_FILE, Member, save_members_file
from raftkv.transport import codec

log = structlog.get_logger("raftkv.join")


class JoinError(ValueError):
    """The node could not learn its membership from the cluster."""


async def _first_hello(host: str, port: int, timeout: float) -> dict[str, object]:
    got: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(codec.FRAME_HEADER.size)
            (n,) = codec.FRAME_HEADER.unpack(head)
            if n <= codec.MAX_FRAME:
                obj = codec.unpack(await reader.readexactly(n))
                if obj[0] == codec.HELLO and isinstance(obj[1], dict) and not got.done():
                    got.set_result(obj[1])
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, host, port, reuse_address=True)
    try:
        return await asyncio.wait_for(got, timeout)
    except TimeoutError:
        raise JoinError(
            f"no cluster member contacted {host}:{port} within {timeout:.0f}s: add this "
            "member first with POST /v1/members on the cluster"
        ) from None
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def _fetch_members(client_url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(client_url.rstrip("/") + "/v1/members", timeout=5) as r:
        return list(json.loads(r.read())["members"])


async def join_existing(
    data_dir: Path, name: str, peer_host: str, peer_port: int, timeout: float = 120.0
) -> list[Member]:
    """Learn the membership (with our assigned id) from the cluster; write members.json."""
    if (data_dir / MEMBERS_FILE).exists():
        raise JoinError(f"{data_dir} already belongs to a cluster")
    log.info("waiting for a cluster member to dial us", name=name, port=peer_port)
    while True:
        hello = await _first_hello(peer_host, peer_port, timeout)
        try:
            raw = await asyncio.to_thread(_fetch_members, str(hello["client_url"]))
        except (OSError, ValueError, KeyError) as e:
            log.warning("could not read the member list; waiting again", error=str(e))
            continue
        members = [
            Member(int(m["id"]), str(m["name"]), str(m["peer_url"]), str(m.get("client_url") or ""))  # type: ignore[call-overload]
            for m in raw
        ]
        if any(m.name == name for m in members):
            break
        log.warning("the cluster does not list us yet; waiting again", name=name)
    members.sort(key=lambda m: m.id)
    save_members_file(data_dir, members)
    me = next(m for m in members if m.name == name)
    log.info("joined the cluster membership", id=me.id, members=len(members))
    return members
