"""Messages and statuses of the gRPC face: bounded receive, transcoding, errors.

grpclib trusts a message's length prefix and buffers whatever it announces, so
requests are read here instead, against etcd's receive limit (--max-request-bytes +
512 KiB, as etcd configures grpc-go), with grpc-go's wording for what it refuses.

The cold RPCs (cluster, maintenance, lease admin, recipes) are transcoded: a protobuf
request becomes the canonical JSON form of its message (grpc-gateway's mapping:
original field names, int64 as strings, bytes as base64) and goes through the same
parse -> service -> encode functions as the JSON gateway, so the two etcd faces
cannot drift apart. The hot RPCs (KV, watch events) are converted directly.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import DecodeError, Message
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from raftkv.server.etcd.errors import EtcdError
from raftkv.server.etcd.routes import as_etcd

M = TypeVar("M", bound=Message)
GRPC_OVERHEAD = 512 * 1024  # etcd: grpc.MaxRecvMsgSize(MaxRequestBytes + grpcOverheadBytes)


async def recv(stream: Stream[Any, Any], cls: type[M], limit: int) -> M | None:
    """The next request message, or None once the client has half-closed."""
    raw = stream._stream  # grpclib's HTTP/2 stream: read the frame header ourselves
    head = await raw.recv_data(5)
    if not head:
        return None
    if len(head) < 5:
        raise GRPCError(Status.INTERNAL, "grpc: truncated message header")
    if head[0] not in (0, 1):
        raise GRPCError(Status.INTERNAL, f"grpc: invalid compressed-flag {head[0]}")
    if head[0] == 1:
        raise GRPCError(
            Status.UNIMPLEMENTED, "grpc: compressed messages are not supported by raftkv"
        )
    size = int.from_bytes(head[1:], "big")
    if size > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"grpc: received message larger than max ({size} vs. {limit})",
        )
    body = await raw.recv_data(size)
    if len(body) < size:
        raise GRPCError(Status.INTERNAL, "grpc: truncated message")
    msg = cls()
    try:
        msg.ParseFromString(body)
    except DecodeError as e:
        raise GRPCError(Status.INTERNAL, f"grpc: error unmarshalling request: {e}") from None
    return msg


async def recv_one(stream: Stream[Any, Any], cls: type[M], limit: int) -> M:
    msg = await recv(stream, cls, limit)
    if msg is None:
        raise GRPCError(Status.INTERNAL, "grpc: the client sent no request message")
    return msg


def to_dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def to_pb(body: dict[str, Any], cls: type[M]) -> M:
    return ParseDict(body, cls(), ignore_unknown_fields=True)


def status_of(e: BaseException, wrapped: bool = False) -> GRPCError:
    """etcd's gRPC status for an error of the services or of the JSON-form parsers
    (the same table the gateway uses); anything else propagates as a bug."""
    err: EtcdError = as_etcd(e, wrapped)
    return GRPCError(Status(int(err.code)), err.message)
