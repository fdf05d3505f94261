"""Server-less checks of the gateway's Go-compatibility rules against etcd's recorded
answers (expected/errors.json), so a regression shows up without starting anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raftkv.server.etcd.errors import EtcdError
from raftkv.server.etcd.jsonpb import request_object, to_int, unb64
from tests.conformance.scenarios import BASE64_CASES

RECORDED = {
    label: v
    for label, v in json.loads((Path(__file__).parent / "expected/errors.json").read_text())
}


def _etcd_error(label: str) -> str | None:
    v: Any = RECORDED[label]
    return v["body"]["error"] if v["status"] != 200 else None


@pytest.mark.parametrize("bad", BASE64_CASES)
def test_base64_errors_match_go(bad: str) -> None:
    want = _etcd_error(f"bad base64 {bad!r}")
    try:
        unb64(bad, "key")
        got = None
    except EtcdError as e:
        got = e.message
    assert got == want


@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("truncated json", '{"key":'),
        ("truncated string", '{"key":"Zm9'),
        ("invalid char", "xx"),
        ("bad object key", "{x}"),
        ("missing colon", '{"key" "Zm9v"}'),
    ],
)
def test_json_errors_match_go(label: str, body: str) -> None:
    with pytest.raises(EtcdError) as e:
        request_object(body.encode())
    assert e.value.message == _etcd_error(label)
    assert e.value.decode  # answered before the RPC, with a Content-Length


def test_int64_accepts_numbers_and_strings() -> None:
    assert to_int(4660, "ID") == to_int("4660", "ID") == 4660
    assert to_int(None, "ID") == 0
    with pytest.raises(EtcdError):
        to_int("12x", "ID")
    with pytest.raises(EtcdError):
        to_int(1 << 63, "ID")
