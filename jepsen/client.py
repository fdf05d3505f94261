"""The recording client: one HTTP request per attempt, never a hidden retry.

A retry inside the client would hide an unknown outcome behind a success and make
the history lie, so every transport outcome is reported as-is and the workload maps
it to ok / fail / info. (The one workload that retries, ``register-retry``, does it
in the open: same client request id, one recorded op spanning every attempt, see
``retried_write_outcome``.)

* ``refused`` — connection failed before the request was sent: definitely not applied;
* ``timeout`` / ``reset`` — the request may have been applied: unknown;
* ``http`` — a status code and a JSON body.

A fresh connection per request (no keep-alive) avoids a pooled connection that died
during a fault being reused and failing in an ambiguous way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp


@dataclass
class Reply:
    kind: str  # http | refused | timeout | reset
    status: int = 0
    body: Any = None
    error: str | None = None


def no_retry(session: aiohttp.ClientSession) -> None:
    """Turn off aiohttp's silent resend of idempotent requests (GET/PUT/DELETE).

    Since 3.10, aiohttp resends such a request once when the server disconnects
    after it was sent — even on a fresh connection. Against a node killed mid-request
    the first attempt may already be committed while the resend is refused, and the
    refusal would be recorded as a definite ``fail``: a lie that makes checkers see
    "failed write visible" (found by the watch workload under kill). There is no
    public switch, so the private flag is set, and checked to exist so an aiohttp
    upgrade that renames it breaks loudly here rather than silently in a history.
    """
    if not hasattr(session, "_retry_connection"):
        raise RuntimeError("aiohttp changed: cannot disable idempotent-request retries")
    session._retry_connection = False


class Http:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        no_retry(self.session)

    async def request(
        self, method: str, base: str, key: str, query: str = "", body: bytes | None = None
    ) -> Reply:
        url = f"{base}/v1/kv/{quote(key, safe='/')}{query}"
        return await self._send(method, url, body)

    async def call(self, method: str, url: str, body: Any = None) -> Reply:
        """Any other API call (txn, leases): ``body`` is sent as JSON when not None."""
        data = None if body is None else json.dumps(body).encode()
        return await self._send(method, url, data)

    async def _send(self, method: str, url: str, data: bytes | None) -> Reply:
        """One attempt, classified: refused before sending (definitely not applied),
        timeout or reset (unknown outcome), or an HTTP answer with its parsed body."""
        try:
            async with self.session.request(method, url, data=data) as r:
                raw = await r.read()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = raw.decode(errors="replace")
                return Reply("http", r.status, parsed)
        except aiohttp.ClientConnectorError as e:
            return Reply("refused", error=f"{type(e).__name__}: {e}")
        except TimeoutError:
            return Reply("timeout", error="timeout")
        except (aiohttp.ClientError, OSError) as e:
            return Reply("reset", error=f"{type(e).__name__}: {e}")

    async def close(self) -> None:
        await self.session.close()


def write_outcome(rep: Reply) -> str:
    """Map a write's reply to ok / fail / info."""
    if rep.kind == "refused":
        return "fail"
    if rep.kind != "http":
        return "info"
    if rep.status == 200:
        return "ok"
    if rep.status == 503 or rep.status >= 500:
        return "info"  # may have been proposed before the timeout
    return "fail"  # 4xx: rejected, including 412 compare failed


def read_outcome(rep: Reply) -> str:
    """Reads change nothing, so anything but an answer is a fail (no effect to track)."""
    if rep.kind == "http" and rep.status in (200, 404):
        return "ok"
    return "fail" if rep.kind in ("refused", "http") else "info"


def retried_write_outcome(replies: list[Reply]) -> str:
    """The outcome of a write sent several times under ONE client request id.

    The server applies a request id at most once and answers every later attempt with
    that first outcome, so the last attempt's definite answer (200, or a 4xx such as
    412) is the write's outcome. A refusal is definite only for its own attempt: after
    an earlier attempt with an unknown outcome the write may still have happened, so
    the op stays ``info``. (Without server-side de-duplication this reasoning is
    exactly what breaks: the mutation suite's no-dedup scenario.)
    """
    last = write_outcome(replies[-1])
    if last == "fail" and replies[-1].kind == "refused":
        if any(write_outcome(r) == "info" for r in replies[:-1]):
            return "info"
    return last
