"""HPACK encoding and decoding that remembers header blocks which cannot change the
dynamic table (h2's encoder and decoder, one pair per HTTP/2 connection).

In steady state every unary call carries the same headers both ways: the client's
request block is a few one-byte indexed references (grpc-go and grpcio index what they
send), and our response headers and `grpc-status: 0` trailers encode to indexed
references once the first call has added them to the table. hpack still searches the
table, builds header tuples and converts strings for each of them, every call. A
block made only of indexed references (every byte has the high bit set) neither adds
to nor evicts from the table, so its meaning stays fixed until some other block or a
size change does; these classes keep such blocks and forget them all whenever the
table may have changed. Anything else goes through hpack unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from h2.connection import H2Connection
from hpack import Decoder, Encoder, HeaderTuple

# Bounds on what one connection may keep: a client that varies more is just slower, and
# a hostile one pins at most MAX_CACHED short blocks (a few KiB), not its header lists.
MAX_CACHED = 16  # distinct blocks per connection and direction
MAX_BLOCK = 32  # bytes: a steady-state gRPC block is 2-20 indexed references


def _cacheable(block: bytes) -> bool:
    """Short, and only one-byte indexed references (anything else may change the table,
    or is not worth keeping: the caller forgets what it had)."""
    return 0 < len(block) <= MAX_BLOCK and min(block) >= 0x80


def _state(coder: Encoder | Decoder) -> tuple[int, int]:
    """What a table change outside encode/decode (a size setting) can alter."""
    table = coder.header_table
    return table.maxsize, len(table.dynamic_entries)


class CachingEncoder(Encoder):
    """Returns the remembered block for a header list encoded before, while the table
    is unchanged. Only plain tuples are looked up: a `NeverIndexedHeaderTuple` compares
    equal to its plain twin but must be encoded differently."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._state = _state(self)

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        key: tuple[Any, ...] | None = None
        if self.header_table.resized or _state(self) != self._state:
            self._cache.clear()  # a size change to announce, or evictions
        elif isinstance(headers, list) and all(type(h) is tuple for h in headers):
            key = tuple(headers)
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        block = super().encode(headers, huffman)
        if not _cacheable(block):
            self._cache.clear()  # it may have added to (or resized) the table
        elif key is not None and len(self._cache) < MAX_CACHED:
            self._cache[key] = block
        self._state = _state(self)
        return block


class CachingDecoder(Decoder):
    """Returns the remembered headers of an indexed-only block decoded before, while
    the table is unchanged (a fresh list each time: callers may keep it)."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self._cache: dict[tuple[bytes, bool], list[HeaderTuple]] = {}
        self._state = (_state(self), self.max_header_list_size)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        state = (_state(self), self.max_header_list_size)
        if state != self._state:  # a resize may have evicted; a smaller list limit
            self._cache.clear()  # must be checked again
            self._state = state
        indexed = _cacheable(data)
        if indexed:
            hit = self._cache.get((data, raw))
            if hit is not None:
                return list(hit)
        headers = list(super().decode(data, raw))
        if not indexed:
            self._cache.clear()
            self._state = (_state(self), self.max_header_list_size)
        elif len(self._cache) < MAX_CACHED:
            self._cache[(bytes(data), raw)] = headers
            return list(headers)
        return headers


def install(conn: H2Connection) -> None:
    """Give a new h2 connection the caching pair, before it has coded any header block
    (h2 creates a plain Encoder and Decoder and keeps them as public attributes)."""
    old = conn.decoder
    conn.encoder = CachingEncoder()
    conn.decoder = CachingDecoder(old.max_header_list_size)
    conn.decoder.max_allowed_table_size = old.max_allowed_table_size
