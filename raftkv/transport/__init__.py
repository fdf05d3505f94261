"""Peer-to-peer transport: persistent TCP streams carrying msgpack-framed Raft messages."""

from raftkv.transport.codec import decode_message, encode_message
from raftkv.transport.tcp import PeerTransport

__all__ = ["PeerTransport", "decode_message", "encode_message"]
