"""HTTP to a set of endpoints with failover, backoff, an overall deadline, and the
retry rule that keeps writes exactly-once from the caller's point of view.

The server de-duplicates a request id only within one Raft proposal, so a write that
was sent and then lost (timeout, reset, a 503 "request timed out") may have applied:
it is never retried, the caller gets `Indeterminate`. A write is retried on another
endpoint only when the failure proves it was never proposed: the connection was
refused, or the node answered 503 before proposing (no leader, stopped applying).
Reads and other idempotent calls are retried on any failure until the deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from raftkv.client.errors import (
    Compacted,
    CompareFailed,
    Indeterminate,
    KeyNotFound,
    LeaseNotFound,
    RaftkvError,
    Unavailable,
)
from raftkv.client.models import KeyValue

# Error codes the server sends only when the request never entered the Raft log: a
# write may then be retried on another member without risking a double apply.
NOT_PROPOSED = frozenset(
    {"no_leader", "not_applying", "stopping", "removed", "leader_changed", "disk_full"}
)


@dataclass
class Reply:
    status: int
    body: Any


def key_path(prefix: str, key: bytes | str) -> URL:
    """`/v1/kv/<key>` with the key percent-encoded (keys travel in the path as UTF-8)."""
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("keys in the path API must be UTF-8; use txn() for binary") from None
    return URL(prefix + quote(key, safe="/"), encoded=True)


def raise_for(status: int, body: Any) -> None:
    """Turn an error answer into the exception the caller can act on."""
    err = body.get("error", {}) if isinstance(body, dict) else {}
    code, msg = str(err.get("code", "")), str(err.get("message", f"HTTP {status}"))
    if status == 412 and code == "compare_failed":
        cur = body.get("current")
        raise CompareFailed(msg, KeyValue.from_json(cur) if cur else None, body.get("revision", 0))
    if code == "key_not_found":
        raise KeyNotFound(msg, code, status)
    if code == "lease_not_found":
        raise LeaseNotFound(msg, code, status)
    if code in ("revision_compacted", "compacted"):
        raise Compacted(int(body.get("compact_revision", 0) or 0), msg)
    if status == 503:
        raise Unavailable(msg, code, status)
    raise RaftkvError(msg, code, status)


class Endpoints:
    """Sticky endpoint choice: keep using one node until it fails, then rotate."""

    def __init__(self, endpoints: list[str] | str) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.urls = [e.strip().rstrip("/") for e in endpoints]
        self.current = 0

    def pick(self) -> str:
        return self.urls[self.current % len(self.urls)]

    def failed(self, url: str) -> None:
        if self.pick() == url:
            self.current = (self.current + 1) % len(self.urls)


class Transport:
    def __init__(self, endpoints: list[str] | str, timeout: float, deadline: float) -> None:
        self.endpoints = Endpoints(endpoints)
        self.timeout = timeout
        self.deadline = deadline
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, force_close=False)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str | URL,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        idempotent: bool,
        endpoint: str | None = None,
        deadline: float | None = None,
    ) -> Any:
        """One call, retried per the rule above; the parsed JSON of a 2xx answer."""
        deadline = time.monotonic() + (deadline or self.deadline)
        delay = 0.05
        last: Exception | None = None
        tried = 0
        while True:
            url = endpoint or self.endpoints.pick()
            tried += 1
            try:
                reply = await self._once(method, url, path, params, json_body, data, deadline)
            except aiohttp.ClientConnectorError as e:  # never reached the node
                last = e
                self.endpoints.failed(url)
            except (aiohttp.ClientError, TimeoutError) as e:
                self.endpoints.failed(url)
                if not idempotent:
                    raise Indeterminate(f"{method} {path} via {url}: {e!r}; outcome unknown") from e
                last = e
            else:
                if reply.status < 300:
                    return reply.body
                err = (reply.body or {}).get("error", {}) if isinstance(reply.body, dict) else {}
                code = str(err.get("code", ""))
                if reply.status != 503 and code != "disk_full":
                    raise_for(reply.status, reply.body)
                msg = str(err.get("message", ""))
                self.endpoints.failed(url)
                if not idempotent and code not in NOT_PROPOSED:
                    raise Indeterminate(f"{method} {path} via {url}: {msg}; outcome unknown")
                last = Unavailable(msg, code or "unavailable", reply.status)
            if endpoint is not None and tried >= 3:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if tried % len(self.endpoints.urls) == 0:  # a full round failed: back off
                await asyncio.sleep(min(delay * (1 + random.random()), left))
                delay = min(delay * 2, 1.0)
        raise Unavailable(f"{method} {path}: no endpoint answered in time (last: {last!r})")

    async def _once(
        self,
        method: str,
        base: str,
        path: str | URL,
        params: dict[str, str] | None,
        json_body: Any,
        data: bytes | None,
        deadline: float,
    ) -> Reply:
        url = URL(base).join(path if isinstance(path, URL) else URL(path))
        if params:
            url = url.update_query(params)
        total = max(0.05, min(self.timeout, deadline - time.monotonic()))
        async with self.session().request(
            method,
            url,
            json=json_body,
            data=data,
            timeout=aiohttp.ClientTimeout(total=total, connect=min(total, 2.0)),
        ) as r:
            raw = await r.read()
            try:
                body = await r.json(content_type=None) if raw else {}
            except ValueError:
                body = {"error": {"code": "bad_response", "message": raw[:200].decode("latin-1")}}
            return Reply(r.status, body)
