"""Request sequences sent identically to etcd 3.4 and raftkv (see harness.Target).

Each scenario starts from a fresh server, so revisions line up exactly. Bodies come
from the captured exchanges in the gateway wire-format notes, plus the error cases.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.conformance.harness import Target, b64, snapshot_shape

FOO, BAR = b64("foo"), b64("bar")
PFX, PFX_END = b64("foo/"), b64("foo0")


# Go's encoding/base64 (strict padding, newlines skipped): etcd's error offsets
BASE64_CASES = (
    "not base64!!",
    "Zm9",
    "Zm9v=",
    "Zg=",
    "Zg==Zg==",
    "@",
    "Zm9v\nYmFy",
    "Z===",
    "Zm9v\r\n",
    "Zm==",
    "Zm=",
    "Zm9vYg=x",
    "====",
    "Zm9vYmFy====",
    "\nZm9v",
    "Zm9v\n=",
    "Zg=\n=",
    "Zg=\n",
    "Zm9-",
    "Zm9_",
)


def kv(t: Target) -> None:
    t.call("put", "/v3/kv/put", {"key": FOO, "value": BAR})
    t.call("put prev_kv", "/v3/kv/put", {"key": FOO, "value": b64("bar2"), "prev_kv": True})
    for k, v in (("foo/a", "1"), ("foo/b", "2"), ("fop", "x")):
        t.call(f"put {k}", "/v3/kv/put", {"key": b64(k), "value": b64(v)})
    t.call("range one", "/v3/kv/range", {"key": FOO})
    t.call("range prefix", "/v3/kv/range", {"key": PFX, "range_end": PFX_END})
    t.call("range limit", "/v3/kv/range", {"key": PFX, "range_end": PFX_END, "limit": 1})
    t.call("range count", "/v3/kv/range", {"key": PFX, "range_end": PFX_END, "count_only": True})
    desc = {"key": PFX, "range_end": PFX_END, "keys_only": True}
    t.call("range desc", "/v3/kv/range", {**desc, "sort_order": "DESCEND", "sort_target": "KEY"})
    t.call("range desc numeric", "/v3/kv/range", {**desc, "sort_order": 2, "sort_target": 0})
    t.call(
        "range by value",
        "/v3/kv/range",
        {"key": "AA==", "range_end": "AA==", "sort_target": "VALUE"},
    )
    t.call("range missing", "/v3/kv/range", {"key": b64("nope")})
    t.call("range all", "/v3/kv/range", {"key": "AA==", "range_end": "AA==", "count_only": True})
    t.call("range historical", "/v3/kv/range", {"key": FOO, "revision": 2})
    t.call("range string int64", "/v3/kv/range", {"key": FOO, "revision": "2"})
    t.call("range serializable", "/v3/kv/range", {"key": FOO, "serializable": True})
    t.call(
        "range mod filter",
        "/v3/kv/range",
        {"key": "AA==", "range_end": "AA==", "min_mod_revision": 4, "max_mod_revision": 5},
    )
    t.call("range future", "/v3/kv/range", {"key": FOO, "revision": 1000})
    t.call("range negative revision", "/v3/kv/range", {"key": FOO, "revision": -3})
    t.call("range negative limit", "/v3/kv/range", {"key": PFX, "range_end": PFX_END, "limit": -1})
    t.call("put negative lease", "/v3/kv/put", {"key": FOO, "lease": -5})
    t.call("range huge revision", "/v3/kv/range", {"key": FOO, "revision": "9223372036854775807"})
    t.call(
        "range revision too big", "/v3/kv/range", {"key": FOO, "revision": "9223372036854775808"}
    )
    t.call("range revision float", "/v3/kv/range", {"key": FOO, "revision": 1.5})
    t.call("range revision junk", "/v3/kv/range", {"key": FOO, "revision": "12x"})
    t.call("range revision word", "/v3/kv/range", {"key": FOO, "revision": "abc"})
    t.call("range revision bool", "/v3/kv/range", {"key": FOO, "revision": True})
    t.call("range revision list", "/v3/kv/range", {"key": FOO, "revision": [1]})
    t.call("range revision negative str", "/v3/kv/range", {"key": FOO, "revision": "-1"})
    t.call("range key number", "/v3/kv/range", {"key": 5})
    t.call("range bool as string", "/v3/kv/range", {"key": FOO, "keys_only": "true"})
    cas = {
        "compare": [{"key": FOO, "result": "EQUAL", "target": "VALUE", "value": b64("bar2")}],
        "success": [{"request_put": {"key": FOO, "value": b64("bar3")}}],
        "failure": [{"request_range": {"key": FOO}}],
    }
    t.call("txn cas ok", "/v3/kv/txn", cas)
    t.call("txn cas fails", "/v3/kv/txn", cas)
    create = {
        "compare": [
            {"key": b64("newkey"), "result": "EQUAL", "target": "CREATE", "create_revision": 0}
        ],
        "success": [{"request_put": {"key": b64("newkey"), "value": b64("v")}}],
        "failure": [],
    }
    t.call("txn create 1", "/v3/kv/txn", create)
    t.call("txn create 2", "/v3/kv/txn", create)
    mixed = {
        "compare": [
            {"key": FOO, "result": "GREATER", "target": "VERSION", "version": "1"},
            {"key": FOO, "result": "LESS", "target": "MOD", "mod_revision": 100},
            {"key": FOO, "result": "NOT_EQUAL", "target": "LEASE", "lease": 5},
        ],
        "success": [
            {"request_range": {"key": PFX, "range_end": PFX_END}},
            {"request_delete_range": {"key": b64("fop"), "prev_kv": True}},
            {
                "request_txn": {
                    "success": [{"request_put": {"key": b64("nested"), "value": "bg=="}}]
                }
            },
        ],
    }
    t.call("txn mixed nested", "/v3/kv/txn", mixed)
    rng = {
        "key": PFX,
        "range_end": PFX_END,
        "result": "GREATER",
        "target": "VALUE",
        "value": "MA==",
    }
    t.call("txn range compare", "/v3/kv/txn", {"compare": [rng], "success": []})
    num = {"key": FOO, "result": 1, "target": 3, "value": b64("zzz")}
    t.call("txn numeric enums", "/v3/kv/txn", {"compare": [num]})
    t.call("txn empty", "/v3/kv/txn", {})
    t.call(
        "delete prefix", "/v3/kv/deleterange", {"key": PFX, "range_end": PFX_END, "prev_kv": True}
    )
    t.call("delete nothing", "/v3/kv/deleterange", {"key": b64("nothing")})
    t.call("put ignore_value missing", "/v3/kv/put", {"key": b64("nokey"), "ignore_value": True})
    t.call("put ignore_value", "/v3/kv/put", {"key": FOO, "ignore_value": True})
    t.call("range after ignore_value", "/v3/kv/range", {"key": FOO})
    t.call("unknown field", "/v3/kv/put", {"key": FOO, "bogus_field": 1})
    t.call("form content type", "/v3/kv/range", {"key": FOO})
    t.call("v3beta alias", "/v3beta/kv/range", {"key": FOO})
    t.call("compact", "/v3/kv/compaction", {"revision": 5})
    t.call("compact physical", "/v3/kv/compaction", {"revision": 6, "physical": True})
    t.call("compact again", "/v3/kv/compaction", {"revision": 4})
    t.call("compact future", "/v3/kv/compaction", {"revision": 100000})
    t.call("range compacted", "/v3/kv/range", {"key": FOO, "revision": 3})
    t.call("range at compact rev", "/v3/kv/range", {"key": FOO, "revision": 6})


def errors(t: Target) -> None:
    t.call("missing key", "/v3/kv/put", {"value": "dg=="})
    t.call("range missing key", "/v3/kv/range", {})
    t.call("delete missing key", "/v3/kv/deleterange", {})
    for bad in BASE64_CASES:
        t.call(f"bad base64 {bad!r}", "/v3/kv/put", {"key": bad, "value": "dg=="})
    t.call("bad base64 value", "/v3/kv/put", {"key": FOO, "value": "a b"})
    t.call("truncated json", "/v3/kv/put", '{"key":')
    t.call("truncated string", "/v3/kv/put", '{"key":"Zm9')
    t.call("invalid char", "/v3/kv/put", "xx")
    t.call("bad object key", "/v3/kv/put", "{x}")
    t.call("missing colon", "/v3/kv/put", '{"key" "Zm9v"}')
    t.call("trailing garbage ignored", "/v3/kv/put", '{"key":"Zm9v"} garbage')
    t.call("empty body", "/v3/kv/range", "")
    t.call("unknown enum", "/v3/kv/range", {"key": FOO, "sort_order": "SIDEWAYS"})
    t.call("unknown target enum", "/v3/kv/txn", {"compare": [{"key": FOO, "target": "COLOR"}]})
    dup = {"success": [{"request_put": {"key": FOO}}, {"request_put": {"key": FOO}}]}
    t.call("duplicate key txn", "/v3/kv/txn", dup)
    put_del = {
        "success": [
            {"request_delete_range": {"key": PFX, "range_end": PFX_END}},
            {"request_put": {"key": b64("foo/x")}},
        ]
    }
    t.call("put inside delete txn", "/v3/kv/txn", put_del)
    many = {"success": [{"request_put": {"key": b64(f"k{i}")}} for i in range(129)]}
    t.call("too many txn ops", "/v3/kv/txn", many)
    t.call("txn empty op", "/v3/kv/txn", {"success": [{}]})
    t.call("txn op without key", "/v3/kv/txn", {"success": [{"request_range": {}}]})
    t.call("lease too large", "/v3/lease/grant", {"TTL": 9999999999})
    # etcd's 1.5 MiB limit is on the decoded request, not on the (base64) JSON body
    big = {"key": FOO, "value": b64("x" * 1_200_000)}
    t.call("put 1.2 MB value", "/v3/kv/put", big, keep_body=False)
    t.call("range 1.2 MB value", "/v3/kv/range", {"key": FOO, "keys_only": True})
    t.call("put 1.6 MB value", "/v3/kv/put", {"key": FOO, "value": b64("x" * 1_600_000)})
    t.call("put 3 MB body", "/v3/kv/put", {"key": FOO, "value": b64("x" * 3_000_000)})
    txn = {
        "success": [
            {"request_put": {"key": b64(f"t{i}"), "value": b64("y" * 400_000)}} for i in range(4)
        ]
    }
    t.call("txn 1.6 MB", "/v3/kv/txn", txn)
    t.call("put unknown lease", "/v3/kv/put", {"key": FOO, "lease": 4660})
    t.call("unknown route", "/v3/kv/rag", {})
    t.call("unknown prefix route", "/v3/nothing/here", {})
    t.call("GET on POST route", "/v3/kv/range", method="GET")
    t.call("PUT on POST route", "/v3/kv/put", {"key": FOO}, method="PUT")
    t.call("v3alpha gone", "/v3alpha/kv/range", {})
    t.call("hashkv not routed", "/v3/maintenance/hashkv", {})
    t.call("auth status not routed", "/v3/auth/status", {})
    t.call("auth authenticate", "/v3/auth/authenticate", {"name": "root", "password": "x"})
    t.call(
        "auth role revoke bad base64",
        "/v3/auth/role/revoke",
        {"role": "r1", "key": "/", "range_end": "0"},
    )
    t.call("watch truncated", "/v3/watch", '{"create_request":')
    t.call("watch bad base64", "/v3/watch", '{"create_request":{"key":"!"}}')
    t.call("keepalive garbage", "/v3/lease/keepalive", "xx")
    t.call("version", "/version", method="GET")
    t.call("CORS preflight", "/v3/kv/range", method="OPTIONS")
    t.call("CORS preflight watch", "/v3/watch", method="OPTIONS")


def leases(t: Target) -> None:
    t.call("grant 60", "/v3/lease/grant", {"TTL": 60}, alias_id="lease60")
    t.call("grant 4660", "/v3/lease/grant", {"TTL": 30, "ID": 4660})
    t.call("grant exists", "/v3/lease/grant", {"TTL": 30, "ID": 4660})
    t.call("grant string ids", "/v3/lease/grant", {"TTL": "40", "ID": "4661"})
    t.call("put leased", "/v3/kv/put", {"key": b64("leased1"), "value": "dg==", "lease": 4660})
    t.call(
        "put leased str", "/v3/kv/put", {"key": b64("leased2"), "value": "dg==", "lease": "4660"}
    )
    t.call("range leased", "/v3/kv/range", {"key": b64("leased1")})
    t.call("ttl keys", "/v3/lease/timetolive", {"ID": 4660, "keys": True}, fuzzy_ttl=True)
    t.call("ttl alias", "/v3/kv/lease/timetolive", {"ID": 4660}, fuzzy_ttl=True)
    t.call("ttl unknown", "/v3/lease/timetolive", {"ID": 999})
    t.call("leases", "/v3/lease/leases", {})
    t.call("leases alias", "/v3/kv/lease/leases", {})
    s = t.stream("/v3/lease/keepalive", {"ID": 4660})
    t.note("keepalive one head", {"status": s.status, "headers": _hdrs(s.headers)})
    t.note("keepalive one", t.messages(s, 1))
    t.note("keepalive one end", s.quiet(2.0))
    s.close()
    s = t.stream("/v3/lease/keepalive", '{"ID":4660}\n{"ID":"4660"}{"ID":999}')
    t.note("keepalive three", t.messages(s, 3))
    t.note("keepalive three end", s.quiet(2.0))
    s.close()
    s = t.stream("/v3/lease/keepalive", "")
    t.note("keepalive empty", {"status": s.status, "end": s.quiet(2.0)})
    s.close()
    t.call("revoke", "/v3/lease/revoke", {"ID": 4660})
    t.call("range revoked keys", "/v3/kv/range", {"key": b64("leased"), "range_end": b64("leasee")})
    t.call("ttl revoked", "/v3/lease/timetolive", {"ID": 4660, "keys": True})
    t.call("revoke again", "/v3/lease/revoke", {"ID": 4660})
    t.call("revoke again alias", "/v3/kv/lease/revoke", {"ID": 4660})
    t.call("revoke alias", "/v3/kv/lease/revoke", {"ID": 4661})
    t.call("put revoked lease", "/v3/kv/put", {"key": "eA==", "value": "dg==", "lease": 4660})
    t.call("grant negative ttl", "/v3/lease/grant", {"TTL": -5, "ID": 7000}, min_ttl=True)
    t.call("grant ttl 1", "/v3/lease/grant", {"TTL": 1, "ID": 7001}, min_ttl=True)
    # not compared: etcd 3.4 grants a negative lease ID; raftkv's store refuses it (400)
    t.call("revoke id 0", "/v3/lease/revoke", {})
    t.call("ttl id 0", "/v3/lease/timetolive", {})
    s = t.stream("/v3/lease/keepalive", "{}")
    t.note("keepalive id 0", t.messages(s, 1))
    s.close()


def msgs(*messages: Any, sep: str = "\n") -> str:
    """A streaming request body: several JSON messages, newline-separated or not."""
    return "".join(json.dumps(m, separators=(",", ":")) + sep for m in messages)


def _per_watcher(m: Any) -> tuple[int, int]:
    r = m["result"]
    return int(r.get("watch_id", 0)), 0 if r.get("created") else 1


def _hdrs(h: dict[str, str]) -> dict[str, str]:
    from tests.conformance.harness import KEPT_HEADERS

    return {k: h[k] for k in KEPT_HEADERS if k in h}


def watch(t: Target) -> None:
    w, w_end = b64("w/"), b64("w0")
    s = t.stream("/v3/watch", {"create_request": {"key": w, "range_end": w_end, "prev_kv": True}})
    t.note("watch head", {"status": s.status, "headers": _hdrs(s.headers)})
    t.note("created", t.messages(s, 1))
    t.call("put w/a", "/v3/kv/put", {"key": b64("w/a"), "value": b64("1")})
    t.call("put w/a again", "/v3/kv/put", {"key": b64("w/a"), "value": b64("2")})
    two = {
        "success": [
            {"request_put": {"key": b64(k), "value": b64(v)}}
            for k, v in (("w/b", "3"), ("w/c", "4"))
        ]
    }
    t.call("txn two puts", "/v3/kv/txn", two)
    t.call("delete w/a", "/v3/kv/deleterange", {"key": b64("w/a")})
    t.call("put outside", "/v3/kv/put", {"key": b64("x"), "value": b64("1")})
    t.note("events", t.messages(s, 4))
    t.call("put large", "/v3/kv/put", {"key": b64("w/big"), "value": b64("v" * 3000)})
    t.note("large event", t.messages(s, 1))
    t.note("stays open", s.quiet())
    s.close()

    body = msgs(
        {"create_request": {"key": b64("w/a"), "start_revision": 2}},
        {
            "create_request": {
                "key": w,
                "range_end": w_end,
                "start_revision": 2,
                "filters": ["NOPUT"],
            }
        },
        {
            "create_request": {
                "key": w,
                "range_end": w_end,
                "start_revision": 3,
                "filters": [1],
                "prev_kv": True,
            }
        },
    )
    s = t.stream("/v3/watch", body)
    # etcd interleaves one watcher's replay with the next one's creation at random, so
    # the order is compared per watcher: created first, then its events
    got = t.messages(s, 6)
    t.note("history", sorted(got, key=_per_watcher))
    t.call("put after history", "/v3/kv/put", {"key": b64("w/a"), "value": b64("5")})
    got = t.messages(s, 2)
    t.note("live after history", sorted(got, key=_per_watcher))
    s.close()

    cancel = msgs(
        {"create_request": {"key": b64("w/a")}},
        {"cancel_request": {"watch_id": 0}},
        {"cancel_request": {"watch_id": 5}},
        sep="",
    )
    s = t.stream("/v3/watch", cancel)
    t.note("cancel", t.messages(s, 2))
    t.call("put after cancel", "/v3/kv/put", {"key": b64("w/a"), "value": b64("6")})
    t.note("nothing after cancel", s.quiet())
    s.close()

    s = t.stream("/v3/watch", msgs({"create_request": {"key": w}}, {"progress_request": {}}))
    t.note("progress", t.messages(s, 2))
    s.close()

    ids = msgs(
        {"create_request": {"key": w, "watch_id": 7, "fragment": True}},
        {"create_request": {"key": w}},
        {"create_request": {"key": w, "watch_id": 7}},
        {"create_request": {"key": w, "watch_id": "1"}},
        {"create_request": {"key": w}},
        sep="",
    )
    s = t.stream("/v3/watch", ids)
    t.note("watch ids", t.messages(s, 5))
    s.close()

    try:
        s = t.stream("/v3/watch", "", head_timeout=1.0)
        t.note("empty watch body", {"status": s.status, "state": s.quiet()})
        s.close()
    except TimeoutError:
        t.note("empty watch body", "no response head until the first message")

    t.call("compact", "/v3/kv/compaction", {"revision": 8, "physical": True})
    s = t.stream("/v3/watch", {"create_request": {"key": b64("w/a"), "start_revision": 3}})
    t.note("compacted", t.messages(s, 2))
    s.close()
    s = t.stream("/v3/watch", {"create_request": {"key": b64("w/a"), "start_revision": 8}})
    t.note("at compact revision", t.messages(s, 2))
    s.close()
    s = t.stream("/v3/watch", {"create_request": {"key": b64("w/a"), "start_revision": 100}})
    t.note("future start", t.messages(s, 1))
    t.note("future start quiet", s.quiet())
    s.close()


def maintenance(t: Target) -> None:
    t.call("put", "/v3/kv/put", {"key": FOO, "value": BAR})
    t.call("status", "/v3/maintenance/status", {})
    t.call("hash", "/v3/maintenance/hash", {})
    t.call(
        "alarm get empty",
        "/v3/maintenance/alarm",
        {"action": "GET", "memberID": 0, "alarm": "NONE"},
    )
    t.call(
        "alarm activate",
        "/v3/maintenance/alarm",
        {"action": "ACTIVATE", "memberID": 0, "alarm": "NOSPACE"},
    )
    t.call("alarm get", "/v3/maintenance/alarm", {"action": "GET"})
    t.call("status with alarm", "/v3/maintenance/status", {})
    t.call("put nospace", "/v3/kv/put", {"key": FOO, "value": BAR})
    t.call("txn put nospace", "/v3/kv/txn", {"success": [{"request_put": {"key": FOO}}]})
    t.call("txn range nospace", "/v3/kv/txn", {"success": [{"request_range": {"key": FOO}}]})
    t.call("grant nospace", "/v3/lease/grant", {"TTL": 30, "ID": 5})
    t.call("delete nospace", "/v3/kv/deleterange", {"key": b64("absent")})
    t.call("range nospace", "/v3/kv/range", {"key": FOO})
    t.call("alarm deactivate", "/v3/maintenance/alarm", {"action": 2, "memberID": 0, "alarm": 1})
    t.call(
        "alarm deactivate again",
        "/v3/maintenance/alarm",
        {"action": "DEACTIVATE", "alarm": "NOSPACE"},
    )
    t.call("alarm bad enum", "/v3/maintenance/alarm", {"action": "EXPLODE"})
    t.call("put after deactivate", "/v3/kv/put", {"key": FOO, "value": BAR})
    t.call("defragment", "/v3/maintenance/defragment", {})
    t.call("member list", "/v3/cluster/member/list", {})
    t.call("version", "/version", method="GET")
    t.call("member remove unknown", "/v3/cluster/member/remove", {"ID": 5})
    t.call("member promote unknown", "/v3/cluster/member/promote", {"ID": "5"})
    t.call(
        "member update unknown",
        "/v3/cluster/member/update",
        {"ID": 5, "peerURLs": ["http://127.0.0.1:1"]},
    )
    t.call("member add bad url", "/v3/cluster/member/add", {"peerURLs": ["bad"]})
    t.call("member add no url", "/v3/cluster/member/add", {})
    t.call("transfer to unknown", "/v3/maintenance/transfer-leadership", {"targetID": 5})
    s = t.stream("/v3/maintenance/snapshot", {})
    t.note("snapshot head", {"status": s.status, "headers": _hdrs(s.headers)})
    msgs: list[Any] = []
    while not s.ended:
        msgs += t.messages(s, 1)
    s.close()
    t.note("snapshot shape", snapshot_shape(msgs))


def lock(t: Target) -> None:
    name = b64("mylock")
    t.call("grant 777", "/v3/lease/grant", {"TTL": 30, "ID": 777})
    t.call("grant 778", "/v3/lease/grant", {"TTL": 30, "ID": 778})
    t.call("lock", "/v3/lock/lock", {"name": name, "lease": 777})
    result: dict[str, Any] = {}

    def second() -> None:
        result["answer"] = t.raw("POST", "/v3/lock/lock", {"name": name, "lease": 778})
        result["at"] = time.monotonic()

    th = threading.Thread(target=second)
    th.start()
    time.sleep(0.8)
    t.note("second lock still waiting", th.is_alive())
    unlocked_at = time.monotonic()
    t.call("unlock", "/v3/lock/unlock", {"key": b64("mylock/309")})
    th.join(10)
    t.note("second lock acquired", result["answer"])
    t.note("acquired after unlock", result["at"] >= unlocked_at)
    t.call("grant 779", "/v3/lease/grant", {"TTL": 30, "ID": 779})
    gone = t.stream_nowait("/v3/lock/lock", {"name": name, "lease": 779})
    time.sleep(0.5)
    gone.close()  # a waiter that disconnects gives its queue slot back
    time.sleep(1.5)
    t.call("waiter gone", "/v3/kv/range", {"key": b64("mylock/"), "range_end": b64("mylock0")})
    t.call("relock same lease", "/v3/lock/lock", {"name": name, "lease": 778})
    t.call("unlock second", "/v3/lock/unlock", {"key": b64("mylock/30a")})
    t.call("lock unknown lease", "/v3/lock/lock", {"name": name, "lease": 780})


def election(t: Target) -> None:
    name = b64("myelection")
    t.call("grant 900", "/v3/lease/grant", {"TTL": 30, "ID": 900})
    t.call("grant 901", "/v3/lease/grant", {"TTL": 30, "ID": 901})
    t.call("no leader yet", "/v3/election/leader", {"name": name})
    first = t.call(
        "campaign", "/v3/election/campaign", {"name": name, "lease": 900, "value": b64("a")}
    )
    lead = first["body"]["leader"]
    t.call("leader", "/v3/election/leader", {"name": name})
    t.call("proclaim", "/v3/election/proclaim", {"leader": lead, "value": b64("b")})
    t.call("leader after proclaim", "/v3/election/leader", {"name": name})
    obs = t.stream("/v3/election/observe", {"name": name})
    t.note("observe head", {"status": obs.status, "headers": _hdrs(obs.headers)})
    t.note("observe current", t.messages(obs, 1))
    result: dict[str, Any] = {}

    def second() -> None:
        body = {"name": name, "lease": 901, "value": b64("c")}
        result["answer"] = t.raw("POST", "/v3/election/campaign", body)

    th = threading.Thread(target=second)
    th.start()
    time.sleep(0.8)
    t.note("second candidate waiting", th.is_alive())
    t.call("resign", "/v3/election/resign", {"leader": lead})
    th.join(10)
    t.note("second candidate leads", result["answer"])
    t.note("observe new leader", t.messages(obs, 1))
    obs.close()
    t.call("proclaim stale", "/v3/election/proclaim", {"leader": lead, "value": b64("x")})
    t.call("resign stale", "/v3/election/resign", {"leader": lead})
    t.call("resign without leader", "/v3/election/resign", {})
    t.call("campaign unknown lease", "/v3/election/campaign", {"name": name, "lease": 902})


SCENARIOS: dict[str, Callable[[Target], None]] = {
    "election": election,
    "kv": kv,
    "errors": errors,
    "leases": leases,
    "watch": watch,
    "maintenance": maintenance,
    "lock": lock,
}
