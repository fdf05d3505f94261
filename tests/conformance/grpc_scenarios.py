"""gRPC request sequences sent identically to etcd 3.4 and raftkv (see GTarget).

Unlike the JSON suite, the servers are shared by all scenarios of a run (a fresh
server per scenario would cost seconds each), so every scenario works under its own
key prefix (`t.k(...)`), uses lease ids of its own, revokes its leases at the end, and
records revisions relative to the revision it started at (`base+N`): the normalised
answers do not depend on which scenarios ran before.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.etcdpb import v3election_pb2 as epb
from raftkv.etcdpb import v3lock_pb2 as lpb
from tests.conformance.harness import normalise
from tests.grpc_helpers import EtcdClient, Stream, rpc_error

REV_FIELDS = {"revision", "create_revision", "mod_revision", "compact_revision", "rev"}
BYTES_FIELDS = {"key", "value", "range_end", "name"}
QUIET = 0.4  # how long "nothing more arrives" is checked


def to_dict(m: Message) -> dict[str, Any]:
    return MessageToDict(m, preserving_proto_field_name=True)


class GTarget:
    """A server under test (etcd or raftkv) and the record of what it answered."""

    def __init__(self, port: int, is_etcd: bool, scenario: str) -> None:
        self.port = port
        self.is_etcd = is_etcd
        self.scenario = scenario
        self.client = EtcdClient(port)
        self.ns = f"g-{scenario}/".encode()
        self.record: list[list[Any]] = []
        self.aliases: dict[str, str] = {}
        self.streams: list[Stream] = []
        self.leases: list[int] = []  # revoked at the end
        self.base = 0
        self.base = self.current_revision()

    # --- helpers for scenarios -------------------------------------------------------
    def k(self, s: str = "") -> bytes:
        """A key under this scenario's prefix."""
        return self.ns + s.encode()

    def k_end(self, s: str = "") -> bytes:
        """The range end of the prefix `k(s)`."""
        p = bytearray(self.k(s))
        p[-1] += 1
        return bytes(p)

    def rev(self, d: int) -> int:
        """The absolute revision `d` after this scenario's start."""
        return self.base + d

    def current_revision(self) -> int:
        r = self.client.call("KV/Range", pb.RangeRequest(key=self.k("\0")))
        return int(r.header.revision)

    def alias(self, value: Any, name: str) -> None:
        self.aliases[str(value)] = name

    # --- recording -------------------------------------------------------------------
    def call(
        self,
        label: str,
        method: str,
        req: Message,
        fuzzy_ttl: bool = False,
        alias_id: str | None = None,
        keep: bool = True,
    ) -> Any:
        """A unary call, recorded (status code, details, response) under `label`."""
        try:
            resp = self.client.call(method, req)
        except grpc.RpcError as e:
            self.note(label, {"error": rpc_error(e)})
            return None
        if alias_id is not None:
            self.alias(resp.ID, alias_id)
        if method == "Lease/LeaseGrant" and resp.ID:
            self.leases.append(resp.ID)
        self.note(label, {"ok": to_dict(resp) if keep else "<not compared>"}, fuzzy_ttl)
        return resp

    def raw(self, label: str, path: str, payload: bytes = b"") -> None:
        try:
            out: Any = {"ok": self.client.raw(path, payload).hex()}
        except grpc.RpcError as e:
            out = {"error": rpc_error(e)}
        self.note(label, out)

    def note(self, label: str, value: Any, fuzzy_ttl: bool = False) -> None:
        self.record.append([label, self.normalise(value, fuzzy_ttl)])

    def normalise(self, v: Any, fuzzy_ttl: bool = False) -> Any:
        return normalise(self._rel(json.loads(json.dumps(v))), {}, fuzzy_ttl)

    def _rel(self, v: Any, key: str = "") -> Any:
        """Revisions relative to the start, readable keys, server-chosen ids aliased."""
        if isinstance(v, dict):
            member = "peerURLs" in v  # a Member's name is a string, not bytes
            return {k: x if member and k == "name" else self._rel(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [self._rel(x, key) for x in v]
        if key in REV_FIELDS and isinstance(v, str | int) and not isinstance(v, bool):
            return f"base{int(v) - self.base:+d}"
        if key in ("ID", "lease") and str(v) in self.aliases:
            return f"<{self.aliases[str(v)]}>"
        if key in BYTES_FIELDS | {"keys"} and isinstance(v, str):
            try:
                return "s:" + base64.b64decode(v, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return v
        return v

    # --- streams ---------------------------------------------------------------------
    def stream(self, method: str, request: Message | None = None) -> Stream:
        s = self.client.stream(method, request)
        self.streams.append(s)
        return s

    def recv(self, s: Stream, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """`n` messages (a failure of the call is recorded as its status instead)."""
        out: list[Any] = []
        for _ in range(n):
            try:
                m = s.recv(timeout)
            except grpc.RpcError as e:
                out.append({"error": rpc_error(e)})
                break
            if m is None:
                out.append("<end>")
                break
            out.append(to_dict(m))
        return out

    def close(self) -> None:
        for s in self.streams:
            s.close()
        for lid in self.leases:
            with contextlib.suppress(grpc.RpcError):
                self.client.call("Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=lid))
        self.client.close()


def _per_watcher(m: Any) -> tuple[int, int]:
    """etcd interleaves watchers' replays at random: compare per watcher."""
    return int(m.get("watch_id", 0)), 0 if m.get("created") else 1


def _lease_base(t: GTarget) -> int:
    """Lease ids of the scenario's own (leases are global; ids must not collide)."""
    return 0x10000 + 100 * list(SCENARIOS).index(t.scenario)


# --- KV ----------------------------------------------------------------------------------


def kv_range(t: GTarget) -> None:
    for name, value in (("a", "3"), ("b", "1"), ("c", "2"), ("b", "11")):
        t.call(f"put {name}={value}", "KV/Put", pb.PutRequest(key=t.k(name), value=value.encode()))
    t.call(
        "put prev_kv",
        "KV/Put",
        pb.PutRequest(key=t.k("a"), value=b"33", prev_kv=True),
    )
    t.call("put prev_kv new key", "KV/Put", pb.PutRequest(key=t.k("d"), prev_kv=True))
    t.call("put ignore_value", "KV/Put", pb.PutRequest(key=t.k("c"), ignore_value=True))
    t.call("put ignore_value missing", "KV/Put", pb.PutRequest(key=t.k("zz"), ignore_value=True))
    t.call("get one", "KV/Range", pb.RangeRequest(key=t.k("a")))
    t.call("get missing", "KV/Range", pb.RangeRequest(key=t.k("nope")))
    p, e = t.k(), t.k_end()
    t.call("range prefix", "KV/Range", pb.RangeRequest(key=p, range_end=e))
    t.call("range from key", "KV/Range", pb.RangeRequest(key=t.k("b"), range_end=b"\0", limit=2))
    t.call("range limit", "KV/Range", pb.RangeRequest(key=p, range_end=e, limit=2))
    t.call("range keys_only", "KV/Range", pb.RangeRequest(key=p, range_end=e, keys_only=True))
    t.call("range count_only", "KV/Range", pb.RangeRequest(key=p, range_end=e, count_only=True))
    R = pb.RangeRequest
    for order in ("ASCEND", "DESCEND", "NONE"):
        for target in ("KEY", "VERSION", "CREATE", "MOD", "VALUE"):
            req = R(
                key=p,
                range_end=e,
                keys_only=True,
                sort_order=R.SortOrder.Value(order),
                sort_target=R.SortTarget.Value(target),
            )
            t.call(f"range sort {order} {target}", "KV/Range", req)
    t.call("range sort limit", "KV/Range", R(key=p, range_end=e, limit=1, sort_order=R.DESCEND))
    t.call("range at revision", "KV/Range", R(key=p, range_end=e, revision=t.rev(2)))
    t.call("range at revision 1st", "KV/Range", R(key=t.k("b"), revision=t.rev(2)))
    t.call("range min_mod", "KV/Range", R(key=p, range_end=e, min_mod_revision=t.rev(4)))
    t.call("range max_mod", "KV/Range", R(key=p, range_end=e, max_mod_revision=t.rev(3)))
    t.call("range min_create", "KV/Range", R(key=p, range_end=e, min_create_revision=t.rev(3)))
    t.call("range max_create", "KV/Range", R(key=p, range_end=e, max_create_revision=t.rev(2)))
    t.call("range serializable", "KV/Range", R(key=t.k("a"), serializable=True))
    t.call("range negative limit", "KV/Range", R(key=p, range_end=e, limit=-1))
    t.call("range future revision", "KV/Range", R(key=p, revision=t.rev(1000)))
    t.call("range negative revision", "KV/Range", R(key=p, revision=-3))


def kv_delete(t: GTarget) -> None:
    for name in ("a", "b", "c", "d/x", "d/y"):
        t.call(f"put {name}", "KV/Put", pb.PutRequest(key=t.k(name), value=name.encode()))
    D = pb.DeleteRangeRequest
    t.call("delete one prev_kv", "KV/DeleteRange", D(key=t.k("a"), prev_kv=True))
    t.call("delete one again", "KV/DeleteRange", D(key=t.k("a"), prev_kv=True))
    t.call("delete range", "KV/DeleteRange", D(key=t.k("b"), range_end=t.k("d")))
    t.call(
        "delete prefix prev_kv",
        "KV/DeleteRange",
        D(key=t.k("d/"), range_end=t.k_end("d/"), prev_kv=True),
    )
    t.call("range after", "KV/Range", pb.RangeRequest(key=t.k(), range_end=t.k_end()))
    t.call(
        "range deleted at revision", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(1))
    )
    t.call("put recreates", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"again"))
    t.call("get recreated", "KV/Range", pb.RangeRequest(key=t.k("a")))


def _cmp(key: bytes, target: str, result: str, **operand: Any) -> pb.Compare:
    return pb.Compare(
        key=key,
        target=pb.Compare.CompareTarget.Value(target),
        result=pb.Compare.CompareResult.Value(result),
        **operand,
    )


def txn(t: GTarget) -> None:
    lid = _lease_base(t)
    t.call("grant", "Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=60, ID=lid))
    t.call("put a", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1"))
    t.call("put b leased", "KV/Put", pb.PutRequest(key=t.k("b"), value=b"2", lease=lid))
    t.call("put a again", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"11"))
    put = pb.RequestOp(request_put=pb.PutRequest(key=t.k("out"), value=b"s", prev_kv=True))
    get = pb.RequestOp(request_range=pb.RangeRequest(key=t.k(), range_end=t.k_end()))
    compares = {
        "value equal": _cmp(t.k("a"), "VALUE", "EQUAL", value=b"11"),
        "value not equal": _cmp(t.k("a"), "VALUE", "NOT_EQUAL", value=b"11"),
        "value greater": _cmp(t.k("a"), "VALUE", "GREATER", value=b"1"),
        "value less missing key": _cmp(t.k("zz"), "VALUE", "LESS", value=b"1"),
        "version equal 2": _cmp(t.k("a"), "VERSION", "EQUAL", version=2),
        "version missing is 0": _cmp(t.k("zz"), "VERSION", "EQUAL", version=0),
        "create equal": _cmp(t.k("a"), "CREATE", "EQUAL", create_revision=t.rev(2)),
        "create missing 0": _cmp(t.k("zz"), "CREATE", "EQUAL", create_revision=0),
        "mod less": _cmp(t.k("a"), "MOD", "LESS", mod_revision=t.rev(4)),
        "mod greater": _cmp(t.k("a"), "MOD", "GREATER", mod_revision=t.rev(4)),
        "lease equal": _cmp(t.k("b"), "LEASE", "EQUAL", lease=lid),
        "lease none": _cmp(t.k("a"), "LEASE", "EQUAL", lease=0),
        "range compare": pb.Compare(
            key=t.k(),
            range_end=t.k_end(),
            target=pb.Compare.VALUE,
            result=pb.Compare.GREATER,
            value=b"0",
        ),
    }
    for label, c in compares.items():
        t.call(
            f"txn {label}",
            "KV/Txn",
            pb.TxnRequest(compare=[c], success=[put], failure=[get]),
        )
    nested = pb.TxnRequest(
        compare=[_cmp(t.k("a"), "VERSION", "GREATER", version=0)],
        success=[
            pb.RequestOp(
                request_txn=pb.TxnRequest(
                    compare=[_cmp(t.k("b"), "VALUE", "EQUAL", value=b"2")],
                    success=[
                        pb.RequestOp(request_put=pb.PutRequest(key=t.k("n1"), value=b"x")),
                        pb.RequestOp(
                            request_delete_range=pb.DeleteRangeRequest(key=t.k("out"), prev_kv=True)
                        ),
                    ],
                    failure=[get],
                )
            ),
            pb.RequestOp(request_range=pb.RangeRequest(key=t.k("n"), range_end=t.k_end("n"))),
        ],
    )
    t.call("txn nested", "KV/Txn", nested)
    t.call("txn empty", "KV/Txn", pb.TxnRequest())
    t.call("txn only compares", "KV/Txn", pb.TxnRequest(compare=[compares["value equal"]]))
    t.call("range after", "KV/Range", pb.RangeRequest(key=t.k(), range_end=t.k_end()))


def txn_errors(t: GTarget) -> None:
    def op(key: bytes) -> pb.RequestOp:
        return pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"v"))

    T = pb.TxnRequest
    t.call("duplicate key", "KV/Txn", T(success=[op(t.k("a")), op(t.k("a"))]))
    t.call("duplicate in failure", "KV/Txn", T(failure=[op(t.k("a")), op(t.k("a"))]))
    t.call("same key both branches ok", "KV/Txn", T(success=[op(t.k("a"))], failure=[op(t.k("a"))]))
    in_delete = T(
        success=[
            pb.RequestOp(
                request_delete_range=pb.DeleteRangeRequest(key=t.k(), range_end=t.k_end())
            ),
            op(t.k("x")),
        ]
    )
    t.call("put inside deleted range", "KV/Txn", in_delete)
    t.call("128 ops ok", "KV/Txn", T(success=[op(t.k(f"k{i}")) for i in range(128)]), keep=False)
    t.call("129 ops", "KV/Txn", T(success=[op(t.k(f"k{i}")) for i in range(129)]))
    t.call("empty op", "KV/Txn", T(success=[pb.RequestOp()]))
    t.call("op without key", "KV/Txn", T(success=[pb.RequestOp(request_range=pb.RangeRequest())]))
    t.call("put op without key", "KV/Txn", T(success=[op(b"")]))
    nested_dup = T(success=[op(t.k("a")), pb.RequestOp(request_txn=T(success=[op(t.k("a"))]))])
    t.call("duplicate across nested txn", "KV/Txn", nested_dup)
    t.call(
        "compare without key",
        "KV/Txn",
        T(compare=[pb.Compare(target=pb.Compare.VALUE, value=b"x")]),
    )


def compaction(t: GTarget) -> None:
    for i in range(5):
        t.call(f"put {i}", "KV/Put", pb.PutRequest(key=t.k("a"), value=str(i).encode()))
    C = pb.CompactionRequest
    t.call("compact", "KV/Compact", C(revision=t.rev(3)))
    t.call("compact same", "KV/Compact", C(revision=t.rev(3)))
    t.call("compact older", "KV/Compact", C(revision=t.rev(2)))
    t.call("compact future", "KV/Compact", C(revision=t.rev(100)))
    t.call("range compacted", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(2)))
    t.call("range at compact rev", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(3)))
    t.call("range after compact rev", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(4)))
    t.call("range future", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(50)))
    t.call("compact physical", "KV/Compact", C(revision=t.rev(4), physical=True))
    t.call("range compacted physical", "KV/Range", pb.RangeRequest(key=t.k("a"), revision=t.rev(3)))
    t.call(
        "txn range compacted",
        "KV/Txn",
        pb.TxnRequest(
            success=[pb.RequestOp(request_range=pb.RangeRequest(key=t.k("a"), revision=t.rev(1)))]
        ),
    )
    t.call("hash_kv", "Maintenance/HashKV", pb.HashKVRequest())
    t.call("hash_kv at revision", "Maintenance/HashKV", pb.HashKVRequest(revision=t.rev(5)))
    t.call("hash_kv compacted", "Maintenance/HashKV", pb.HashKVRequest(revision=t.rev(2)))
    t.call("hash_kv at compact rev", "Maintenance/HashKV", pb.HashKVRequest(revision=t.rev(4)))
    t.call("hash_kv negative", "Maintenance/HashKV", pb.HashKVRequest(revision=-1))
    t.call("hash_kv future", "Maintenance/HashKV", pb.HashKVRequest(revision=t.rev(100)))
    t.call("hash", "Maintenance/Hash", pb.HashRequest())


def kv_errors(t: GTarget) -> None:
    t.call("put empty key", "KV/Put", pb.PutRequest(value=b"v"))
    t.call("range empty key", "KV/Range", pb.RangeRequest())
    t.call("delete empty key", "KV/DeleteRange", pb.DeleteRangeRequest())
    t.call("put unknown lease", "KV/Put", pb.PutRequest(key=t.k("a"), lease=0x7ABCDEF))
    t.call("put negative lease", "KV/Put", pb.PutRequest(key=t.k("a"), lease=-5))
    t.call("put ignore_lease no key", "KV/Put", pb.PutRequest(key=t.k("a"), ignore_lease=True))
    t.call(
        "put ignore_lease with lease",
        "KV/Put",
        pb.PutRequest(key=t.k("a"), ignore_lease=True, lease=5),
    )
    t.call(
        "put ignore_value with value",
        "KV/Put",
        pb.PutRequest(key=t.k("a"), ignore_value=True, value=b"x"),
    )
    t.call("put 1.2 MB", "KV/Put", pb.PutRequest(key=t.k("big"), value=b"x" * 1_200_000))
    t.call("put 1.6 MB", "KV/Put", pb.PutRequest(key=t.k("big"), value=b"x" * 1_600_000))
    t.call("put 3 MB", "KV/Put", pb.PutRequest(key=t.k("big"), value=b"x" * 3_000_000))
    t.call("get after big", "KV/Range", pb.RangeRequest(key=t.k("big"), keys_only=True))
    t.call("delete big", "KV/DeleteRange", pb.DeleteRangeRequest(key=t.k("big")))
    t.call("lease ttl too large", "Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=9_999_999_999))


# --- leases ------------------------------------------------------------------------------


def leases(t: GTarget) -> None:
    lid = _lease_base(t)
    L = pb.LeaseGrantRequest
    t.call("grant explicit", "Lease/LeaseGrant", L(TTL=60, ID=lid))
    t.call("grant exists", "Lease/LeaseGrant", L(TTL=30, ID=lid))
    t.call("grant server id", "Lease/LeaseGrant", L(TTL=45), alias_id="chosen")
    t.call("put leased a", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1", lease=lid))
    t.call("put leased b", "KV/Put", pb.PutRequest(key=t.k("b"), value=b"2", lease=lid))
    t.call("get leased", "KV/Range", pb.RangeRequest(key=t.k("a")))
    T = pb.LeaseTimeToLiveRequest
    t.call("ttl", "Lease/LeaseTimeToLive", T(ID=lid), fuzzy_ttl=True)
    t.call("ttl keys", "Lease/LeaseTimeToLive", T(ID=lid, keys=True), fuzzy_ttl=True)
    t.call("ttl unknown", "Lease/LeaseTimeToLive", T(ID=lid + 1, keys=True))
    t.call("ttl id 0", "Lease/LeaseTimeToLive", T())
    resp = t.client.call("Lease/LeaseLeases", pb.LeaseLeasesRequest())
    mine = {str(x) for x in t.leases}
    listed = to_dict(resp)
    listed["leases"] = [x for x in listed.get("leases", []) if x["ID"] in mine]
    t.note("leases (this scenario's)", listed)
    t.call("revoke", "Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=lid))
    t.call("keys gone", "KV/Range", pb.RangeRequest(key=t.k(), range_end=t.k_end()))
    t.call("ttl revoked", "Lease/LeaseTimeToLive", T(ID=lid, keys=True))
    t.call("revoke again", "Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=lid))
    t.call("revoke id 0", "Lease/LeaseRevoke", pb.LeaseRevokeRequest())
    t.call("put revoked lease", "KV/Put", pb.PutRequest(key=t.k("c"), lease=lid))
    # not sent: a negative ID, which etcd 3.4 grants and raftkv refuses (see the JSON suite)


def keepalive(t: GTarget) -> None:
    lid = _lease_base(t)
    t.call("grant", "Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=40, ID=lid))
    s = t.stream("Lease/LeaseKeepAlive")
    R = pb.LeaseKeepAliveRequest
    s.send(R(ID=lid))
    t.note("keepalive", t.recv(s))
    s.send(R(ID=lid))
    s.send(R(ID=lid + 1))
    s.send(R())
    t.note("keepalive known, unknown, 0", t.recv(s, 3))
    t.note("stream stays open", s.quiet(QUIET))
    t.call(
        "ttl after keepalive",
        "Lease/LeaseTimeToLive",
        pb.LeaseTimeToLiveRequest(ID=lid),
        fuzzy_ttl=True,
    )
    s.half_close()
    t.note("half-closed", t.recv(s))
    s2 = t.stream("Lease/LeaseKeepAlive")
    s2.half_close()
    t.note("no requests", t.recv(s2))


# --- watch -------------------------------------------------------------------------------


def _create(t: GTarget, prefix: str = "", **kw: Any) -> pb.WatchRequest:
    return pb.WatchRequest(
        create_request=pb.WatchCreateRequest(key=t.k(prefix), range_end=t.k_end(prefix), **kw)
    )


def watch_events(t: GTarget) -> None:
    s = t.stream("Watch/Watch")
    s.send(_create(t, "w/", prev_kv=True))
    t.note("created", t.recv(s))
    t.call("put w/a", "KV/Put", pb.PutRequest(key=t.k("w/a"), value=b"1"))
    t.note("event put", t.recv(s))
    t.call("put w/a again", "KV/Put", pb.PutRequest(key=t.k("w/a"), value=b"2"))
    t.note("event put prev_kv", t.recv(s))
    two = pb.TxnRequest(
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=t.k("w/b"), value=b"3")),
            pb.RequestOp(request_put=pb.PutRequest(key=t.k("w/c"), value=b"4")),
        ]
    )
    t.call("txn two puts", "KV/Txn", two)
    t.note("one message, two events", t.recv(s))
    t.call("delete w/a", "KV/DeleteRange", pb.DeleteRangeRequest(key=t.k("w/a")))
    t.note("event delete", t.recv(s))
    t.call("put outside", "KV/Put", pb.PutRequest(key=t.k("x"), value=b"1"))
    t.call("delete prefix", "KV/DeleteRange", _del_prefix(t, "w/"))
    t.note("delete prefix events", t.recv(s))
    t.call("put large", "KV/Put", pb.PutRequest(key=t.k("w/big"), value=b"v" * 3000))
    t.note("large event", t.recv(s))
    t.note("stays open", s.quiet(QUIET))


def _del_prefix(t: GTarget, prefix: str) -> pb.DeleteRangeRequest:
    return pb.DeleteRangeRequest(key=t.k(prefix), range_end=t.k_end(prefix))


def watch_filters(t: GTarget) -> None:
    F = pb.WatchCreateRequest
    s1 = t.stream("Watch/Watch")
    s1.send(_create(t, filters=[F.NOPUT]))
    t.note("created noput", t.recv(s1))
    s2 = t.stream("Watch/Watch")
    s2.send(_create(t, filters=[F.NODELETE], prev_kv=True))
    t.note("created nodelete", t.recv(s2))
    s3 = t.stream("Watch/Watch")
    s3.send(_create(t, filters=[F.NOPUT, F.NODELETE]))
    t.note("created both filters", t.recv(s3))
    t.call("put a", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1"))
    t.note("nodelete sees put", t.recv(s2))
    t.call("delete a", "KV/DeleteRange", pb.DeleteRangeRequest(key=t.k("a")))
    t.note("noput sees delete", t.recv(s1))
    t.call("put b", "KV/Put", pb.PutRequest(key=t.k("b"), value=b"1"))
    t.note("nodelete sees put b", t.recv(s2))
    t.note("noput quiet", s1.quiet(QUIET))
    t.note("both filters quiet", s3.quiet(0.1))


def watch_replay(t: GTarget) -> None:
    for i, name in enumerate(("a", "b", "a", "c")):
        t.call(f"put {name}", "KV/Put", pb.PutRequest(key=t.k(name), value=str(i).encode()))
    t.call("delete b", "KV/DeleteRange", pb.DeleteRangeRequest(key=t.k("b"), prev_kv=True))
    s = t.stream("Watch/Watch")
    s.send(_create(t, start_revision=t.rev(1)))
    s.send(
        pb.WatchRequest(
            create_request=pb.WatchCreateRequest(
                key=t.k("a"), start_revision=t.rev(2), prev_kv=True
            )
        )
    )
    got = t.recv(s, 4)
    t.note("two watchers replay", sorted(got, key=_per_watcher))
    t.call("put a live", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"live"))
    got = t.recv(s, 2)
    t.note("both see live put", sorted(got, key=_per_watcher))
    t.call("put c live", "KV/Put", pb.PutRequest(key=t.k("c"), value=b"live"))
    t.note("only the prefix watcher", t.recv(s))
    t.note("quiet", s.quiet(QUIET))
    s2 = t.stream("Watch/Watch")
    s2.send(_create(t, start_revision=t.rev(6)))
    t.note("replay from the latest event", t.recv(s2, 2))
    s2.send(_create(t, start_revision=t.rev(100)))
    t.note("future start_revision created", t.recv(s2))
    t.call("put d", "KV/Put", pb.PutRequest(key=t.k("d"), value=b"1"))
    t.note("put d seen once (only watcher 0)", t.recv(s2))
    t.note("future watcher quiet", s2.quiet(QUIET))


def watch_cancel(t: GTarget) -> None:
    s = t.stream("Watch/Watch")
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("a"))))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("b"))))
    t.note("created two", t.recv(s, 2))
    s.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=0)))
    t.note("canceled 0", t.recv(s))
    s.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=0)))
    s.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=9)))
    t.note("cancel unknown ids: nothing", s.quiet(QUIET))
    t.call("put a", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1"))
    t.call("put b", "KV/Put", pb.PutRequest(key=t.k("b"), value=b"1"))
    t.note("only watcher 1", t.recv(s))
    t.note("quiet", s.quiet(QUIET))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("a"))))
    t.note("ids are not reused", t.recv(s))
    s.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
    t.note("progress", t.recv(s))
    s.send(pb.WatchRequest())
    t.note("empty request ignored", s.quiet(QUIET))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("c"), watch_id=7)))
    t.note("explicit watch id", t.recv(s))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("c"), watch_id=7)))
    t.note("duplicate watch id", t.recv(s))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("c"))))
    t.note("auto id after explicit", t.recv(s))
    s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest()))
    t.note("empty key watch", t.recv(s))
    s.half_close()
    t.note("half-closed stays open", s.quiet(QUIET))


def watch_compacted(t: GTarget) -> None:
    for i in range(4):
        t.call(f"put {i}", "KV/Put", pb.PutRequest(key=t.k("a"), value=str(i).encode()))
    t.call("compact", "KV/Compact", pb.CompactionRequest(revision=t.rev(3), physical=True))
    s = t.stream("Watch/Watch")
    s.send(
        pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("a"), start_revision=t.rev(1)))
    )
    t.note("compacted start", t.recv(s, 2))
    s.send(
        pb.WatchRequest(create_request=pb.WatchCreateRequest(key=t.k("a"), start_revision=t.rev(3)))
    )
    t.note("at compact revision", t.recv(s, 2))
    t.call("put live", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"live"))
    t.note("live after compaction", t.recv(s))
    t.note("stream stays open", s.quiet(QUIET))


# --- cluster, maintenance ------------------------------------------------------------------


def member_list(t: GTarget) -> None:
    t.call("member list", "Cluster/MemberList", pb.MemberListRequest())
    t.call("member remove unknown", "Cluster/MemberRemove", pb.MemberRemoveRequest(ID=5))
    t.call(
        "member update unknown",
        "Cluster/MemberUpdate",
        pb.MemberUpdateRequest(ID=5, peerURLs=["http://127.0.0.1:1"]),
    )
    t.call("member promote unknown", "Cluster/MemberPromote", pb.MemberPromoteRequest(ID=5))
    t.call("member add bad url", "Cluster/MemberAdd", pb.MemberAddRequest(peerURLs=["bad"]))
    t.call("member add no url", "Cluster/MemberAdd", pb.MemberAddRequest())
    t.call("move leader unknown", "Maintenance/MoveLeader", pb.MoveLeaderRequest(targetID=5))


def status(t: GTarget) -> None:
    t.call("status", "Maintenance/Status", pb.StatusRequest())
    t.call("defragment", "Maintenance/Defragment", pb.DefragmentRequest())


def alarms(t: GTarget) -> None:
    A = pb.AlarmRequest
    try:
        _alarms(t)
    finally:  # never leave the shared server out of space
        t.client.call("Maintenance/Alarm", A(action=A.DEACTIVATE, alarm=pb.NOSPACE))


def _alarms(t: GTarget) -> None:
    A = pb.AlarmRequest
    t.call("alarm get", "Maintenance/Alarm", A(action=A.GET))
    t.call("alarm activate", "Maintenance/Alarm", A(action=A.ACTIVATE, alarm=pb.NOSPACE))
    t.call("alarm get active", "Maintenance/Alarm", A(action=A.GET))
    t.call("put nospace", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1"))
    t.call("range nospace", "KV/Range", pb.RangeRequest(key=t.k("a")))
    t.call("alarm deactivate", "Maintenance/Alarm", A(action=A.DEACTIVATE, alarm=pb.NOSPACE))
    t.call("alarm deactivate again", "Maintenance/Alarm", A(action=A.DEACTIVATE, alarm=pb.NOSPACE))
    t.call("put after", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1"))
    t.call("alarm get empty", "Maintenance/Alarm", A(action=A.GET))


def snapshot(t: GTarget) -> None:
    t.call("put", "KV/Put", pb.PutRequest(key=t.k("a"), value=b"1" * 50_000))
    s = t.stream("Maintenance/Snapshot", pb.SnapshotRequest())
    msgs: list[Any] = []
    while True:
        try:
            m = s.recv(10)
        except grpc.RpcError as e:
            t.note("snapshot error", rpc_error(e))
            return
        if m is None:
            break
        msgs.append(m)
    blobs = [m.blob for m in msgs]

    payload = b"".join(blobs[:-1])
    t.note(
        "snapshot shape",
        {
            "at_least_3_messages": len(msgs) >= 3,
            "blobs_within_32k": all(len(b) <= 32 * 1024 for b in blobs),
            "trailer_is_sha256": blobs[-1] == hashlib.sha256(payload).digest(),
            "last_remaining_is_0": msgs[-1].remaining_bytes == 0,
            "first_remaining_is_rest": msgs[0].remaining_bytes == sum(len(b) for b in blobs[1:]),
        },
    )


# --- recipes ---------------------------------------------------------------------------


def lock(t: GTarget) -> None:
    lid = _lease_base(t)
    for i in range(3):
        t.call(f"grant {i}", "Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=60, ID=lid + i))
    name = t.k("mylock")
    first = t.call("lock", "Lock/Lock", lpb.LockRequest(name=name, lease=lid))
    waiter = t.client.future("Lock/Lock", lpb.LockRequest(name=name, lease=lid + 1))
    time.sleep(0.6)
    t.note("second waits", not waiter.done())
    t.call("unlock", "Lock/Unlock", lpb.UnlockRequest(key=first.key if first else b""))
    try:
        second = waiter.result(10)
        t.note("second acquires", {"ok": to_dict(second)})
    except grpc.RpcError as e:
        second = None
        t.note("second acquires", {"error": rpc_error(e)})
    t.call("relock same lease", "Lock/Lock", lpb.LockRequest(name=name, lease=lid + 1))
    t.call("unlock second", "Lock/Unlock", lpb.UnlockRequest(key=second.key if second else b""))
    t.call("unlock unknown key", "Lock/Unlock", lpb.UnlockRequest(key=t.k("nothing")))
    t.call("lock unknown lease", "Lock/Lock", lpb.LockRequest(name=name, lease=lid + 9))
    t.call("lock no name", "Lock/Lock", lpb.LockRequest(lease=lid + 2))
    t.call("waiters", "KV/Range", pb.RangeRequest(key=t.k(), range_end=t.k_end()))


def election(t: GTarget) -> None:
    lid = _lease_base(t)
    for i in range(2):
        t.call(f"grant {i}", "Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=60, ID=lid + i))
    name = t.k("el")
    t.call("no leader yet", "Election/Leader", epb.LeaderRequest(name=name))
    first = t.call(
        "campaign", "Election/Campaign", epb.CampaignRequest(name=name, lease=lid, value=b"a")
    )
    lead = first.leader if first else epb.LeaderKey()
    t.call("leader", "Election/Leader", epb.LeaderRequest(name=name))
    t.call("proclaim", "Election/Proclaim", epb.ProclaimRequest(leader=lead, value=b"b"))
    t.call("leader after proclaim", "Election/Leader", epb.LeaderRequest(name=name))
    obs = t.stream("Election/Observe", epb.LeaderRequest(name=name))
    t.note("observe current", t.recv(obs))
    second = t.client.future(
        "Election/Campaign", epb.CampaignRequest(name=name, lease=lid + 1, value=b"c")
    )
    time.sleep(0.6)
    t.note("second candidate waits", not second.done())
    t.call("resign", "Election/Resign", epb.ResignRequest(leader=lead))
    try:
        t.note("second leads", {"ok": to_dict(second.result(10))})
    except grpc.RpcError as e:
        t.note("second leads", {"error": rpc_error(e)})
    t.note("observe new leader", t.recv(obs))
    t.call("proclaim stale", "Election/Proclaim", epb.ProclaimRequest(leader=lead, value=b"x"))
    t.call("resign stale", "Election/Resign", epb.ResignRequest(leader=lead))
    t.call("resign without leader", "Election/Resign", epb.ResignRequest())
    t.call("campaign unknown lease", "Election/Campaign", epb.CampaignRequest(name=name, lease=7))
    t.call("leader of nothing", "Election/Leader", epb.LeaderRequest(name=t.k("none")))


# --- auth and unknown methods ----------------------------------------------------------------


def auth_disabled(t: GTarget) -> None:
    """What every client sees of auth on a server that has it disabled."""
    t.call("authenticate", "Auth/Authenticate", pb.AuthenticateRequest(name="root", password="x"))
    t.call("auth disable", "Auth/AuthDisable", pb.AuthDisableRequest())


def auth_admin(t: GTarget) -> None:
    """Auth administration with auth disabled: etcd 3.4 serves it (users can be set up
    before enabling auth)."""
    t.call("auth enable without root", "Auth/AuthEnable", pb.AuthEnableRequest())
    t.call("user list", "Auth/UserList", pb.AuthUserListRequest())
    t.call("user get unknown", "Auth/UserGet", pb.AuthUserGetRequest(name="nobody"))
    t.call("role list", "Auth/RoleList", pb.AuthRoleListRequest())
    t.call("role get unknown", "Auth/RoleGet", pb.AuthRoleGetRequest(role="norole"))
    t.call("user delete unknown", "Auth/UserDelete", pb.AuthUserDeleteRequest(name="nobody"))


def auth_status(t: GTarget) -> None:
    t.call("auth status", "Auth/AuthStatus", pb.AuthStatusRequest())


def unimplemented(t: GTarget) -> None:
    t.raw("unknown method", "/etcdserverpb.KV/Nope")
    t.raw("unknown service", "/etcdserverpb.Nothing/Range")
    t.raw("unknown package", "/nothing.KV/Range")
    t.raw("downgrade (etcd 3.5)", "/etcdserverpb.Maintenance/Downgrade")


def bad_message(t: GTarget) -> None:
    t.raw("truncated request message", "/etcdserverpb.KV/Range", b"\xff\xff\xff")
    t.raw("wrong wire type", "/etcdserverpb.KV/Range", b"\x08\x01")


SCENARIOS: dict[str, Callable[[GTarget], None]] = {
    "kv_range": kv_range,
    "kv_delete": kv_delete,
    "txn": txn,
    "txn_errors": txn_errors,
    "compaction": compaction,
    "kv_errors": kv_errors,
    "leases": leases,
    "keepalive": keepalive,
    "watch_events": watch_events,
    "watch_filters": watch_filters,
    "watch_replay": watch_replay,
    "watch_cancel": watch_cancel,
    "watch_compacted": watch_compacted,
    "status": status,
    "alarms": alarms,
    "snapshot": snapshot,
    "lock": lock,
    "election": election,
    "auth_disabled": auth_disabled,
    "auth_admin": auth_admin,
    "auth_status": auth_status,
    "unimplemented": unimplemented,
    "bad_message": bad_message,
    "member_list": member_list,
}


def run(name: str, port: int, is_etcd: bool) -> list[list[Any]]:
    t = GTarget(port, is_etcd, name)
    try:
        SCENARIOS[name](t)
    finally:
        t.close()
    return t.record
