"""raftkv-only checks of stream request handling that a one-shot curl body (what the
differential suite sends) cannot exercise: messages arriving in pieces over time."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.conformance.harness import RawStream, Target, b64, run_raftkv


def test_watch_messages_split_across_reads(tmp_path: Path) -> None:
    with run_raftkv(tmp_path) as port:
        first = json.dumps({"create_request": {"key": b64("a")}}).encode()
        second = json.dumps({"create_request": {"key": b64("b"), "prev_kv": True}}).encode()
        body = first + second
        sock = socket.create_connection(("127.0.0.1", port), 5)
        head = f"POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        cut = len(first) + second.index(b"true") + 2  # '"prev_kv":tr' is not JSON yet
        sock.sendall(head.encode() + body[:cut])
        time.sleep(0.3)
        sock.sendall(body[cut:])
        s = RawStream.__new__(RawStream)  # reuse the chunk parser on this socket
        s.sock, s.buf, s.ended, s.chunked = sock, b"", False, True
        s._until(b"\r\n\r\n")
        created = s.messages(2)
        assert [m["result"].get("watch_id") for m in created] == [None, "1"]
        assert all(m["result"]["created"] for m in created)
        Target(port, is_etcd=False).raw("POST", "/v3/kv/put", {"key": b64("b"), "value": "dg=="})
        (event,) = s.messages(1)
        assert event["result"]["watch_id"] == "1"
        assert event["result"]["events"][0]["kv"]["key"] == b64("b")
        s.close()
