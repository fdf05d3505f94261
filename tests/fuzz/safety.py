"""The one net every generated request passes before it is sent: nothing that would
disrupt the cluster on purpose, and nothing that makes a member dial off this machine.

Bounded, harmless fuzzing of the disruptive routes (each rule says why):

- member remove / promote / update and leader transfer only name ids that are not
  members: removing a real member, or promoting a learner the fuzzer added (raftkv
  promotes a learner that never ran while the log is under 1,000 entries, and a dead
  voter eats the quorum), would break the cluster by design, not by bug;
- member add only with peer/client URLs on 127.0.0.1 / localhost / [::1] at ports
  the fixture holds bound and closed (or invalid ports like 99999): the leader dials
  every member's peer URL, and that must never leave loopback or hit another test's
  server; on /v3 a member is only added with `isLearner: true` (a voter that never
  starts would count against the quorum);
- compaction only to revisions <= 20 or far in the future (compacting to the newest
  revision makes every historical read and watch fail: noise, not a bug);
- `/v3/maintenance/alarm` never ACTIVATEs NOSPACE or CORRUPT (NOSPACE blocks writes
  on that member by design, which the liveness check would then report).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fuzz.client import Request

SMALL_IDS = range(1, 1_000_001)  # raftkv's raft member ids are small counters
MAX_SAFE_COMPACT = 20
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", ""}


@dataclass
class Safety:
    """What the net protects: the cluster's etcd member ids and the fixture's ports."""

    etcd_member_ids: set[int] = field(default_factory=set)
    reserved_ports: set[int] = field(default_factory=set)


def lenient_ints(v: Any) -> set[int]:
    """Every integer a lenient server could read `v` as (bool, float, "0x10", " 7 ")."""
    out: set[int] = set()
    if isinstance(v, bool | int) or isinstance(v, float) and math.isfinite(v):
        out.add(int(v))
    elif isinstance(v, str):
        s = unquote(v, errors="replace").strip()
        if len(s) > 40:
            return out
        for parse in (lambda x: int(x, 0), int, lambda x: int(float(x))):
            with contextlib.suppress(ValueError, OverflowError):
                out.add(parse(s))
    return out


def _touches(v: Any, protected: set[int] | range) -> bool:
    return any(i in protected for i in lenient_ints(v))


def safe_url(v: Any, reserved: set[int]) -> bool:
    """A URL the cluster may be told to dial: loopback host, and a port that is ours
    or that no socket can have."""
    if not isinstance(v, str) or "//" not in v:
        return True
    netloc = re.split(r"[/?#\\]", v.split("//", 1)[1], maxsplit=1)[0]
    netloc = netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        host, _, rest = netloc.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    if host.lower() not in LOOPBACK:
        return False
    if port.isdigit() and 0 < int(port) < 65536:
        return int(port) in reserved
    return True


def _first_value(raw: bytes) -> Any:
    """The first JSON value, read as leniently as a server might (etcd's gateway
    ignores what follows it; bad UTF-8 becomes U+FFFD)."""
    text = raw.decode("utf-8", "replace").lstrip(" \t\r\n\ufeff")
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except (ValueError, RecursionError):
        return None


def _dechunk(raw: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return out
        try:
            n = int(raw[pos:end].split(b";")[0], 16)
        except ValueError:
            return out
        if n == 0:
            return out
        out += raw[end + 2 : end + 2 + n]
        pos = end + 4 + n


def bodies(req: Request) -> list[Any]:
    """The body as every layer a server could peel off might present it."""
    raws = [req.body, _dechunk(req.body)]
    for r in list(raws):
        for unzip in (gzip.decompress, zlib.decompress, lambda b: zlib.decompress(b, -15)):
            with contextlib.suppress(OSError, zlib.error, EOFError, ValueError):
                raws.append(unzip(r))
    return [_first_value(r) for r in raws if r]


def _get(body: Any, key: str) -> Any:
    return body.get(key) if isinstance(body, dict) else None


def is_safe(req: Request, net: Safety) -> bool:
    """False for a request that would disrupt the cluster by design (see module doc)."""
    raw_path = req.target.split(b"?", 1)[0].decode("latin-1")
    path = unquote(raw_path, errors="replace").rstrip("/")
    if path.startswith("/v1/members/"):
        return not any(_touches(seg, SMALL_IDS) for seg in path.split("/")[3:])
    return all(_safe_body(path, b, net) for b in bodies(req) or [None])


def _safe_body(path: str, body: Any, net: Safety) -> bool:
    if path == "/v1/members":
        return safe_url(_get(body, "peer_url"), net.reserved_ports) and safe_url(
            _get(body, "client_url"), net.reserved_ports
        )
    if path == "/v1/leader/transfer":
        return not _touches(_get(body, "to"), SMALL_IDS)
    if path == "/v1/compact":
        return not _compacts_recent(_get(body, "revision"))
    m = re.match(r"^/v3(?:beta)?(/.*)$", path)
    if not m:
        return True
    rpc = m.group(1)
    if rpc in ("/cluster/member/remove", "/cluster/member/promote", "/cluster/member/update"):
        if _touches(_get(body, "ID"), net.etcd_member_ids):
            return False
    if rpc in ("/cluster/member/add", "/cluster/member/update"):
        urls = _get(body, "peerURLs")
        if isinstance(urls, list) and not all(safe_url(u, net.reserved_ports) for u in urls):
            return False
        if rpc == "/cluster/member/add" and _get(body, "isLearner") in (None, False):
            return not (isinstance(urls, list) and urls)
    if rpc == "/maintenance/transfer-leadership":
        return not _touches(_get(body, "targetID"), net.etcd_member_ids)
    if rpc == "/maintenance/alarm":
        action, alarm = _get(body, "action"), _get(body, "alarm")
        activate = action in (1, "1", "ACTIVATE")
        return not (activate and alarm in (1, 2, "1", "2", "NOSPACE", "CORRUPT"))
    if rpc == "/kv/compaction":
        return not _compacts_recent(_get(body, "revision"))
    return True


def _compacts_recent(v: Any) -> bool:
    return any(MAX_SAFE_COMPACT < i < 10**12 for i in lenient_ints(v))
