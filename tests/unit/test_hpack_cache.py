"""The gRPC face's caching HPACK coder pair (raftkv/server/grpc/hpack_cache.py) codes
every header block exactly as plain hpack does, whatever the table does meanwhile."""

from __future__ import annotations

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.server.grpc.hpack_cache import MAX_BLOCK, MAX_CACHED, CachingDecoder, CachingEncoder

# a few blocks, so they repeat (and hit the caches) while table entries are added,
# shifted and evicted between the repeats
NAMES = [":status", "content-type", "grpc-status", "x-a", "x-b"]
VALUES = ["200", "0", "application/grpc", "a" * 40, "b" * 300]
header = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES))
BLOCKS = st.lists(st.lists(header, min_size=1, max_size=3), min_size=2, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_encodes_and_decodes_as_plain_hpack(data: st.DataObject) -> None:
    blocks = data.draw(BLOCKS)
    block = st.sampled_from(blocks)
    step = st.one_of(
        st.tuples(st.just("headers"), block),
        st.tuples(st.just("headers"), block),
        st.tuples(st.just("never"), block),  # the same pairs, never indexed
        st.tuples(st.just("resize"), st.sampled_from([0, 64, 512, 4096])),
    )
    steps = data.draw(st.lists(step, min_size=1, max_size=40))
    plain, caching = Encoder(), CachingEncoder()
    dec_plain, dec_caching = Decoder(), CachingDecoder()
    for kind, arg in steps:
        if kind == "resize":
            for coder in (plain, caching, dec_plain, dec_caching):
                coder.header_table_size = arg  # type: ignore[union-attr]
            continue
        headers = list(arg)  # type: ignore[call-overload]
        if kind == "never":
            headers = [NeverIndexedHeaderTuple(n, v) for n, v in headers]
        want = plain.encode(list(headers))
        assert caching.encode(list(headers)) == want
        assert dec_caching.decode(want, raw=True) == dec_plain.decode(want, raw=True)


def test_steady_state_blocks_come_from_the_cache() -> None:
    enc, dec = CachingEncoder(), CachingDecoder()
    trailers = [("grpc-status", "0")]
    first = enc.encode(list(trailers))  # adds grpc-status: 0 to the table
    again = enc.encode(list(trailers))
    assert first != again and min(again) >= 0x80
    assert enc.encode(list(trailers)) is again  # the remembered block
    dec.decode(first)
    got = dec.decode(again)
    got2 = dec.decode(again)
    assert got == got2 == [("grpc-status", "0")] and got is not got2  # fresh lists
    # a block that changes the table forgets what indices meant
    enc.encode([("x-a", "a" * 40)])
    assert enc.encode(list(trailers)) is not again


def test_a_client_cannot_make_the_decoder_keep_much() -> None:
    dec = CachingDecoder()
    for n in range(1, 200):  # distinct valid indexed-only blocks, long and short
        dec.decode(bytes([0x82]) * n)
    assert len(dec._cache) <= MAX_CACHED
    assert all(len(block) <= MAX_BLOCK for block, _ in dec._cache)
