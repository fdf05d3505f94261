"""A small grpcio client for etcd's v3 API, built from raftkv/etcdpb's descriptors.

No stubs are generated: every method's wire path, request and response classes come
from the service definitions in the generated modules, so a call is
`EtcdClient(port).call("KV/Range", pb.RangeRequest(key=b"foo"))`. Streams are read by
a background thread into a queue, so that every read can have a timeout.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from raftkv.etcdpb import rpc_pb2, v3election_pb2, v3lock_pb2

CALL_TIMEOUT = 10.0  # every unary call's deadline
STREAM_DEADLINE = 60.0  # every stream's deadline


@dataclass(frozen=True)
class Method:
    path: str  # /etcdserverpb.KV/Range
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool


def _methods() -> dict[str, Method]:
    out: dict[str, Method] = {}
    for mod in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                out[f"{svc.name}/{m.name}"] = Method(
                    f"/{svc.full_name}/{m.name}",
                    GetMessageClass(m.input_type),
                    GetMessageClass(m.output_type),
                    m.client_streaming,
                    m.server_streaming,
                )
    return out


METHODS = _methods()  # "KV/Range", "Watch/Watch", "Lock/Lock", "Election/Campaign", ...

_END = object()


class Stream:
    """A client- or bidi-streaming call: `send`, then `recv(timeout)` each answer."""

    def __init__(self, call_factory: Any, request: Message | None, deadline: float) -> None:
        self._out: queue.Queue[Any] = queue.Queue()
        self._in: queue.Queue[Any] = queue.Queue()
        if request is None:
            self.call = call_factory(self._requests(), timeout=deadline)
        else:
            self.call = call_factory(request, timeout=deadline)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[Message]:
        while (m := self._out.get()) is not _END:
            yield m

    def _read(self) -> None:
        try:
            for m in self.call:
                self._in.put(m)
            self._in.put(_END)
        except grpc.RpcError as e:
            self._in.put(e)

    def send(self, msg: Message) -> None:
        self._out.put(msg)

    def half_close(self) -> None:
        self._out.put(_END)

    def recv(self, timeout: float = 5.0) -> Any:
        """The next message; None at a clean end; raises the call's RpcError if it
        failed, queue.Empty if nothing arrives within `timeout`."""
        item = self._in.get(timeout=timeout)
        if item is _END:
            return None
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def recv_n(self, n: int, timeout: float = 5.0) -> list[Any]:
        return [self.recv(timeout) for _ in range(n)]

    def quiet(self, timeout: float = 0.5) -> str:
        """'open' if nothing arrives within `timeout`; else what arrived."""
        try:
            item = self.recv(timeout)
        except queue.Empty:
            return "open"
        except grpc.RpcError as e:
            return f"error {e.code().name}: {e.details()}"
        return "ended" if item is None else f"unexpected message {item}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._out.put(_END)
            self.call.cancel()
        self._reader.join(5)


class EtcdClient:
    """One channel to one endpoint."""

    def __init__(self, port: int, host: str = "127.0.0.1", options: Any = None) -> None:
        self.target = f"{host}:{port}"
        self.channel = grpc.insecure_channel(self.target, options=options or [])

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def _callable(self, m: Method) -> Any:
        kind = ("stream" if m.client_streaming else "unary") + (
            "_stream" if m.server_streaming else "_unary"
        )
        return getattr(self.channel, kind)(
            m.path,
            request_serializer=m.request.SerializeToString,
            response_deserializer=m.response.FromString,
        )

    def call(self, name: str, request: Message, timeout: float = CALL_TIMEOUT) -> Any:
        """A unary call; raises grpc.RpcError on a non-OK status."""
        m = METHODS[name]
        assert not (m.client_streaming or m.server_streaming), name
        return self._callable(m)(request, timeout=timeout)

    def future(self, name: str, request: Message, timeout: float = CALL_TIMEOUT) -> Any:
        return self._callable(METHODS[name]).future(request, timeout=timeout)

    def stream(
        self, name: str, request: Message | None = None, deadline: float = STREAM_DEADLINE
    ) -> Stream:
        """Watch/LeaseKeepAlive (no `request`: send with .send) or a server stream
        (Snapshot, Observe: its one `request`)."""
        m = METHODS[name]
        assert m.server_streaming, name
        return Stream(self._callable(m), None if m.client_streaming else request, deadline)

    def raw(
        self,
        path: str,
        payload: bytes,
        timeout: float = CALL_TIMEOUT,
    ) -> bytes:
        """A unary call to any path with an already-serialized request."""
        fn = self.channel.unary_unary(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        out: bytes = fn(payload, timeout=timeout)
        return out


def rpc_error(e: grpc.RpcError) -> dict[str, str]:
    return {"code": e.code().name, "details": e.details() or ""}
