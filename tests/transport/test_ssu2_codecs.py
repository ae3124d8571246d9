"""SSU2 blocks and headers: exact round trips, ACK ranges, and ProtocolError on every malformed input."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.crypto.chacha import ChaChaStream
from core.data.errors import ParseError, ProtocolError
from core.transport.ssu2 import blocks as b
from core.transport.ssu2 import header as h

SAMPLES = [
    b.DateTimeBlock(1_750_000_000),
    b.OptionsBlock(1, 2, 3, 4, 5, 6, 7, 8, b"more"),
    b.RouterInfoBlock.of(b"R" * 300),
    b.RouterInfoBlock.of(b"R" * 300, flood=True, compress=True),
    b.I2NPBlock(20, 7, 1_750_000_060, b"body"),
    b.FirstFragmentBlock(20, 7, 1_750_000_060, b"part"),
    b.FollowOnFragmentBlock(3, True, 7, b"tail"),
    b.TerminationBlock(12, b.TerminationReason.IDLE_TIMEOUT, b"x"),
    b.RelayRequestBlock(1, 2, 3, 2, 12345, "10.1.2.3", bytes(64)),
    b.RelayResponseBlock(0, 1, 2, 2, 4000, "::1", bytes(64), token=99),
    b.RelayResponseBlock(5, 1, 2, 2, None, None, b""),
    b.RelayIntroBlock(bytes(range(32)), 1, 2, 3, 2, 8080, "127.0.0.1", bytes(64)),
    b.PeerTestBlock(1, 0, None, 2, 77, 1_750_000_000, 9000, "127.0.0.2", bytes(64)),
    b.PeerTestBlock(2, 0, bytes(32), 2, 77, 1_750_000_000, 9000, "127.0.0.2", bytes(64)),
    b.AckBlock(10, 2, ((1, 2), (2, 3))),
    b.AddressBlock(1234, "192.168.1.1"),
    b.AddressBlock(1234, "2001:db8::1"),
    b.RelayTagBlock(5),
    b.NewTokenBlock(1_750_003_600, 0x1122334455667788),
    b.FirstPacketNumberBlock(1000),
    b.CongestionBlock(1),
    b.OpaqueBlock(b.RELAY_TAG_REQUEST),
    b.OpaqueBlock(b.PATH_CHALLENGE, b"12345678"),
    b.OpaqueBlock(200, b"future"),
    b.PaddingBlock(b"\x00" * 5),
]


@pytest.mark.parametrize("block", SAMPLES, ids=lambda blk: type(blk).__name__)
def test_every_block_round_trips(block):
    encoded = block.to_bytes()
    assert b.parse_blocks(encoded) == [block]
    assert b.encode_blocks(b.parse_blocks(encoded)) == encoded


def test_gzip_router_info_decompresses():
    block = b.RouterInfoBlock.of(b"abc" * 500, compress=True)
    assert block.compressed and len(block.payload) < 100
    assert b.parse_blocks(block.to_bytes())[0].router_info == b"abc" * 500


def test_gzip_bomb_is_refused():
    import gzip
    block = b.RouterInfoBlock(gzip.compress(bytes(10 << 20)), b.RouterInfoBlock.FLAG_GZIP)
    with pytest.raises(ParseError):
        block.router_info


def test_ack_spec_example():
    """ssu2.rst "Ack": ACK 10 9 8 6 5 2 1 0, NACK 7 4 3."""
    ack = b.AckBlock.from_packets([10, 9, 8, 6, 5, 2, 1, 0])
    assert (ack.ack_through, ack.acnt, ack.ranges) == (10, 2, ((1, 2), (2, 3)))
    assert sorted(ack.acked()) == [0, 1, 2, 5, 6, 8, 9, 10]


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 3000), min_size=1, max_size=200))
def test_ack_ranges_cover_exactly_what_was_received(received):
    ack = b.AckBlock.from_packets(received, max_ranges=1000)
    assert set(ack.acked()) == received
    assert b.parse_blocks(ack.to_bytes()) == [ack]


def test_ordering_rules():
    pad = b.PaddingBlock(b"").to_bytes()
    dt = b.DateTimeBlock(1).to_bytes()
    term = b.TerminationBlock(0, 0).to_bytes()
    with pytest.raises(ParseError):
        b.parse_blocks(pad + dt)
    with pytest.raises(ParseError):
        b.parse_blocks(term + dt)
    assert len(b.parse_blocks(term + pad)) == 2


@pytest.mark.parametrize("raw", [
    bytes((b.DATETIME, 0, 3, 1, 2, 3)),                   # DateTime must be 4
    bytes((b.ACK, 0, 4, 0, 0, 0, 1)),                     # ACK below 5
    bytes((b.ACK, 0, 7, 0, 0, 0, 1, 0, 0, 0)),            # range 0/0
    bytes((b.ADDRESS, 0, 5, 1, 2, 3, 4, 5)),              # neither 6 nor 18
    bytes((b.ROUTER_INFO, 0, 3, 0, 2, 9)),                # RI fragment field not 0/1
    bytes((b.FOLLOW_ON_FRAGMENT, 0, 6, 0, 0, 0, 0, 1, 9)),  # fragment number 0
    bytes((b.FIRST_FRAGMENT, 0, 9)) + bytes(9),           # no fragment data
    bytes((b.RELAY_TAG, 0, 4, 0, 0, 0, 0)),               # zero tag
    bytes((b.PEER_TEST, 0, 3, 9, 0, 0)),                  # message number 9
    bytes((b.RELAY_RESPONSE, 0, 12, 0, 0)) + bytes(10),   # accepted without a token
    bytes((b.I2NP, 0, 20, 1)),                            # size overruns
])
def test_malformed_blocks_raise_parse_error(raw):
    with pytest.raises(ProtocolError):
        b.parse_blocks(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_payloads_only_raise_protocol_errors(data):
    try:
        blocks = b.parse_blocks(data)
    except ProtocolError:
        return
    assert b.encode_blocks(blocks) == data


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_blocks_raise_protocol_errors(block, data):
    encoded = block.to_bytes()
    cut = data.draw(st.integers(1, len(encoded) - 1)) if len(encoded) > 1 else 1
    try:
        b.parse_blocks(encoded[:cut])
    except ProtocolError:
        return
    assert cut >= 3   # only a shorter but self-consistent block may parse (e.g. padding)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.sampled_from(sorted(h.LONG_TYPES)),
       st.integers(0, 255), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_long_header_round_trip(dest, pn, typ, netid, src, token):
    header = h.LongHeader(dest, pn, typ, netid, src, token)
    assert h.LongHeader.parse(header.to_bytes()) == header


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.binary(min_size=40, max_size=200),
       st.sampled_from([0, 16, 48]))
def test_header_protection_inverts(k1, k2, packet, extra):
    packet = packet.ljust(16 + extra + 24, b"\x07")     # real packets end in a MAC after the encrypted part
    protected = h.protect(packet, k1, k2, extra)
    assert len(protected) == len(packet)
    assert h.unprotect_short(protected, k1, k2) == packet[:16]
    assert h.unprotect_dest_id(protected, k1) == int.from_bytes(packet[:8], "big")
    if extra:
        assert h.unprotect_rest(protected, k2, extra) == packet[16:16 + extra]
    assert protected[16 + extra:] == packet[16 + extra:]
    # a session's keys as the ChaChaStream objects it keeps: the same masks as the key bytes
    s1, s2 = ChaChaStream(k1), ChaChaStream(k2)
    assert h.protect(packet, s1, s2, extra) == protected
    assert h.unprotect_short(protected, s1, s2) == packet[:16]
    assert h.unprotect_dest_id(protected, s1) == int.from_bytes(packet[:8], "big")
    if extra:
        assert h.unprotect_rest(protected, s2, extra) == packet[16:16 + extra]


def test_short_header_fields():
    header = h.ShortHeader(1, 2, h.SESSION_CONFIRMED, bytes((0x12, 0, 0)))
    assert h.ShortHeader.parse(header.to_bytes()) == header
    assert header.fragment == (1, 2)
    assert h.ShortHeader(1, 2, h.DATA, b"\x01\x00\x00").immediate_ack
    with pytest.raises(ParseError):
        h.ShortHeader.parse(b"short")
    with pytest.raises(ParseError):
        h.LongHeader.parse(bytes(31))
