"""Python client of raftkv: `AsyncClient` (aiohttp) and its blocking twin `Client`."""

from raftkv.client.aio import AsyncClient, default_endpoints
from raftkv.client.errors import (
    Compacted,
    CompareFailed,
    Indeterminate,
    KeyNotFound,
    LeaseNotFound,
    LockLost,
    RaftkvError,
    Unavailable,
)
from raftkv.client.lease import LeaseKeeper
from raftkv.client.models import (
    DeleteResult,
    Event,
    KeyValue,
    LeaseInfo,
    PutResult,
    RangeResult,
    TxnResult,
)
from raftkv.client.sync import Client
from raftkv.client.txn import Compare, Op, Txn

__all__ = [
    "AsyncClient",
    "Client",
    "Compacted",
    "Compare",
    "CompareFailed",
    "DeleteResult",
    "Event",
    "Indeterminate",
    "KeyNotFound",
    "KeyValue",
    "LeaseInfo",
    "LeaseKeeper",
    "LeaseNotFound",
    "LockLost",
    "Op",
    "PutResult",
    "RaftkvError",
    "RangeResult",
    "Txn",
    "TxnResult",
    "Unavailable",
    "default_endpoints",
]
