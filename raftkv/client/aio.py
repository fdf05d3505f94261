"""`AsyncClient`: the native `/v1` API of raftkv on aiohttp, with failover.

Every method maps to one HTTP call (see README "The HTTP API with curl"); retries and
endpoint rotation live in `transport`, so the semantics of each call are visible here:
reads pass `idempotent=True`, writes do not and may raise `Indeterminate`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from typing import Any

from raftkv.client.errors import CompareFailed
from raftkv.client.lease import LeaseKeeper
from raftkv.client.models import (
    DeleteResult,
    Event,
    KeyValue,
    LeaseInfo,
    PutResult,
    RangeResult,
    TxnResult,
    response_from_json,
)
from raftkv.client.transport import Transport, key_path
from raftkv.client.txn import Bytes, Txn, to_bytes
from raftkv.client.watch import watch_batches, watch_stream

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"


def default_endpoints() -> list[str]:
    """`RAFTKV_ENDPOINTS` (comma-separated), else the local default member."""
    raw = os.environ.get("RAFTKV_ENDPOINTS", DEFAULT_ENDPOINT)
    return [e.strip() for e in raw.split(",") if e.strip()]


def _flags(**kw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in kw.items():
        if v is True:
            out[k] = ""
        elif v not in (None, False, 0, ""):
            out[k] = str(v)
    return out


class AsyncClient:
    """`async with AsyncClient(["http://127.0.0.1:2379", ...]) as c: await c.put(...)`.

    `timeout` bounds one HTTP attempt, `deadline` one call including its retries.
    """

    def __init__(
        self,
        endpoints: list[str] | str | None = None,
        timeout: float = 5.0,
        deadline: float | None = None,
    ) -> None:
        self.transport = Transport(
            endpoints or default_endpoints(), timeout, deadline if deadline else timeout * 3
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    @property
    def endpoints(self) -> list[str]:
        return list(self.transport.endpoints.urls)

    async def _call(self, method: str, path: Any, *, idempotent: bool, **kw: Any) -> Any:
        return await self.transport.request(method, path, idempotent=idempotent, **kw)

    # --- kv ---------------------------------------------------------------------------
    async def get(self, key: Bytes, revision: int = 0, serializable: bool = False) -> KeyValue:
        """The key's current (or historical) value; raises `KeyNotFound`."""
        body = await self._call(
            "GET",
            key_path("/v1/kv/", key),
            params=_flags(revision=revision, serializable=serializable),
            idempotent=True,
        )
        return KeyValue.from_json(body)

    async def range(
        self,
        key: Bytes,
        range_end: Bytes | None = None,
        *,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        """Keys in [key, range_end), or under `key` with prefix=True, sorted by key."""
        params = _flags(
            prefix=prefix,
            revision=revision,
            limit=limit,
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
        )
        if range_end is not None and not prefix:
            params["range_end"] = to_bytes(range_end).decode("utf-8")
        body = await self._call("GET", key_path("/v1/kv/", key), params=params, idempotent=True)
        return RangeResult(
            [KeyValue.from_json(k) for k in body.get("kvs", [])],
            int(body.get("count", 0)),
            bool(body.get("more")),
            int(body.get("revision", 0)),
        )

    async def get_prefix(self, prefix: Bytes, **kw: Any) -> RangeResult:
        return await self.range(prefix, prefix=True, **kw)

    async def put(
        self,
        key: Bytes,
        value: Bytes,
        lease: int = 0,
        prev_kv: bool = False,
        **conditions: Any,
    ) -> PutResult:
        """Write a key. `conditions` are the server's CAS flags (if_absent, if_value...)."""
        params = _flags(lease=lease, prev_kv=prev_kv, **conditions)
        if "if_mod_revision" in conditions:
            params["if_mod_revision"] = str(conditions["if_mod_revision"])
        body = await self._call(
            "PUT", key_path("/v1/kv/", key), params=params, data=to_bytes(value), idempotent=False
        )
        prev = body.get("prev_kv")
        return PutResult(int(body["revision"]), KeyValue.from_json(prev) if prev else None)

    async def delete(
        self, key: Bytes, prefix: bool = False, prev_kv: bool = False, **conditions: Any
    ) -> DeleteResult:
        params = _flags(prefix=prefix, prev_kv=prev_kv, **conditions)
        if "if_mod_revision" in conditions:
            params["if_mod_revision"] = str(conditions["if_mod_revision"])
        body = await self._call("DELETE", key_path("/v1/kv/", key), params=params, idempotent=False)
        return DeleteResult(
            int(body.get("deleted", 0)),
            int(body.get("revision", 0)),
            [KeyValue.from_json(k) for k in body.get("prev_kvs", [])],
        )

    # --- compare-and-swap helpers (raise CompareFailed carrying the current kv) --------
    async def put_if_absent(self, key: Bytes, value: Bytes, lease: int = 0) -> PutResult:
        return await self.put(key, value, lease=lease, if_absent=True)

    async def put_if_mod_revision(
        self, key: Bytes, value: Bytes, mod_revision: int, lease: int = 0
    ) -> PutResult:
        return await self.put(key, value, lease=lease, if_mod_revision=mod_revision)

    async def put_if_value(
        self, key: Bytes, value: Bytes, expected: Bytes, lease: int = 0
    ) -> PutResult:
        return await self.put(key, value, lease=lease, if_value=to_bytes(expected).decode("utf-8"))

    async def delete_if_mod_revision(self, key: Bytes, mod_revision: int) -> DeleteResult:
        return await self.delete(key, if_mod_revision=mod_revision)

    async def delete_if_value(self, key: Bytes, expected: Bytes) -> DeleteResult:
        return await self.delete(key, if_value=to_bytes(expected).decode("utf-8"))

    # --- transactions -----------------------------------------------------------------
    def txn(self) -> Txn[Any]:
        """A builder; `await client.txn().if_(...).then(...).else_(...).commit()`."""
        return Txn(self.txn_raw)

    async def txn_raw(self, body: dict[str, Any]) -> TxnResult:
        """`POST /v1/txn` with a body in the server's JSON format."""
        out = await self._call("POST", "/v1/txn", json_body=body, idempotent=False)
        return TxnResult(
            bool(out.get("succeeded")),
            int(out.get("revision", 0)),
            [response_from_json(r) for r in out.get("responses", [])],
        )

    async def compact(self, revision: int) -> int:
        """Forget history before `revision` (idempotent: compacting twice is harmless)."""
        out = await self._call(
            "POST", "/v1/compact", json_body={"revision": revision}, idempotent=True
        )
        return int(out.get("compact_revision", revision))

    # --- leases -----------------------------------------------------------------------
    async def grant(self, ttl: int, lease_id: int = 0) -> LeaseInfo:
        body = {"ttl": ttl, "id": lease_id}
        out = await self._call("POST", "/v1/lease/grant", json_body=body, idempotent=False)
        return LeaseInfo(int(out["id"]), int(out["ttl"]), int(out["ttl"]))

    async def keepalive_once(self, lease_id: int, deadline: float | None = None) -> int:
        """Renew once; the TTL granted. Raises `LeaseNotFound` when the lease is gone."""
        out = await self._call(
            "POST", f"/v1/lease/{lease_id}/keepalive", idempotent=True, deadline=deadline
        )
        return int(out["ttl"])

    async def revoke(self, lease_id: int) -> int:
        out = await self._call("DELETE", f"/v1/lease/{lease_id}", idempotent=True)
        return int(out.get("revision", 0))

    async def ttl(self, lease_id: int, keys: bool = False) -> LeaseInfo:
        out = await self._call(
            "GET", f"/v1/lease/{lease_id}", params=_flags(keys=keys), idempotent=True
        )
        return LeaseInfo(
            int(out["id"]),
            int(out["ttl"]),
            int(out.get("granted_ttl", 0)),
            [base64.b64decode(k) for k in out.get("keys_b64", [])],
        )

    async def leases(self) -> list[int]:
        out = await self._call("GET", "/v1/leases", idempotent=True)
        return [int(x["id"]) for x in out.get("leases", [])]

    def lease(self, ttl: int, on_lost: Any = None) -> LeaseKeeper:
        """`async with client.lease(10) as lease:` a lease kept alive in the background."""
        return LeaseKeeper(self, ttl, on_lost)

    # --- watch ------------------------------------------------------------------------
    def watch(
        self,
        key: Bytes,
        *,
        prefix: bool = False,
        range_end: Bytes | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
    ) -> AsyncIterator[Event]:
        """Events in revision order, each exactly once, across node failures."""
        return watch_stream(self.transport, key, prefix, range_end, start_revision, prev_kv)

    def watch_batches(
        self, key: Bytes, *, prefix: bool = False, start_revision: int = 0, prev_kv: bool = False
    ) -> AsyncIterator[tuple[int, list[Event]]]:
        """Like `watch`, but (revision, events) per revision, so a txn stays atomic."""
        return watch_batches(self.transport, key, prefix, None, start_revision, prev_kv)

    # --- cluster ----------------------------------------------------------------------
    async def members(self) -> list[dict[str, Any]]:
        out = await self._call("GET", "/v1/members", idempotent=True)
        return list(out.get("members", []))

    async def member_add(self, name: str, peer_url: str, client_url: str | None = None) -> Any:
        body = {"name": name, "peer_url": peer_url}
        if client_url:
            body["client_url"] = client_url
        return await self._call("POST", "/v1/members", json_body=body, idempotent=False)

    async def member_promote(self, member_id: int) -> Any:
        return await self._call("POST", f"/v1/members/{member_id}/promote", idempotent=True)

    async def member_remove(self, member_id: int) -> Any:
        return await self._call("DELETE", f"/v1/members/{member_id}", idempotent=False)

    async def status(self, endpoint: str | None = None) -> dict[str, Any]:
        """`/v1/status` of one endpoint (no failover when `endpoint` is given)."""
        out = await self._call("GET", "/v1/status", idempotent=True, endpoint=endpoint)
        return dict(out)

    async def health(self, endpoint: str | None = None) -> dict[str, Any]:
        out = await self._call("GET", "/health", idempotent=True, endpoint=endpoint)
        return dict(out)

    # --- recipes ----------------------------------------------------------------------
    def lock(self, name: str, ttl: int = 10, timeout: float | None = None) -> Any:
        from raftkv.recipes.lock import Lock

        return Lock(self, name, ttl=ttl, timeout=timeout)


__all__ = ["AsyncClient", "CompareFailed", "default_endpoints"]
