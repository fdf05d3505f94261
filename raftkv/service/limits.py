"""Every request limit in one place, with etcd's names and defaults where etcd has one.

Requests are bounded before they are proposed: nothing that can be refused ever
enters the Raft log, where it would be applied again on every member at every restart.
The few bounds that must also hold inside apply (reads a txn performs) are stamped
into the command by the proposer, so every member applies the same bound.

| limit                  | flag                      | default  | refused with                   |
|------------------------|---------------------------|----------|--------------------------------|
| request size           | --max-request-bytes       | 1.5 MiB  | RequestTooLarge                |
| ops per txn level      | --max-txn-ops             | 128      | InvalidArgument(TOO_MANY_OPS)  |
| keys a txn's reads scan| --max-txn-range-keys      | 100,000  | ResultTooLarge("keys")         |
| bytes a txn's reads    | --max-txn-range-bytes     | 16 MiB   | ResultTooLarge("bytes")        |
| bytes one read returns | --max-range-bytes         | 64 MiB   | ResultTooLarge("bytes")        |
| live watchers          | --max-watchers            | 100,000  | ResourceExhausted              |
| open streams           | --max-streams             | 10,000   | ResourceExhausted              |
| request body time      | --request-body-timeout    | 10 s     | 408                            |
| JSON nesting depth     | (fixed)                   | 64       | InvalidArgument(NESTING)       |
| backend quota          | --quota-backend-bytes     | 2 GiB    | NoSpace (+ NOSPACE alarm)      |
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.errors import RequestTooLarge
from raftkv.storage import commands as cmds

MiB = 1 << 20
MAX_REQUEST_BYTES = 3 * 512 * 1024  # etcd's --max-request-bytes default
GRPC_OVERHEAD = 512 * 1024  # etcd accepts gRPC messages this much above the request limit
MAX_JSON_DEPTH = 64  # enough for etcd's txn nesting as anyone uses it; bounds parsers


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_txn_ops: int = 128
    max_txn_range_keys: int = 100_000
    max_txn_range_bytes: int = 16 * MiB
    max_range_bytes: int = 64 * MiB
    max_range_keys: int = 0  # standalone reads scan any number of keys (0 = no bound)
    max_watchers: int = 100_000
    max_streams: int = 10_000
    request_body_timeout: float = 10.0

    @property
    def max_body_bytes(self) -> int:
        """The largest HTTP body a JSON face reads. A JSON request carries bytes in
        base64 (4/3 larger) plus field names and whitespace, so the bound is a few
        times the request limit; what decodes is then checked against the limit itself
        (with etcd's own messages). Bigger bodies are refused before they are parsed."""
        return 4 * (self.max_request_bytes + GRPC_OVERHEAD)

    def check_command(self, cmd: cmds.Command) -> bytes:
        """The encoded entry, if it fits --max-request-bytes (etcd measures the
        marshalled proposal the same way); RequestTooLarge otherwise."""
        data = cmd.encode()
        if len(data) > self.max_request_bytes:
            raise RequestTooLarge(len(data), self.max_request_bytes)
        return data

    def check_txn(self, t: cmds.Txn) -> None:
        cmds.txn_ops_depth(t, self.max_txn_ops)

    def stamp(self, t: cmds.Txn) -> cmds.Txn:
        """The txn with this member's read budget for its apply."""
        from dataclasses import replace

        return replace(
            t, max_range_keys=self.max_txn_range_keys, max_range_bytes=self.max_txn_range_bytes
        )
