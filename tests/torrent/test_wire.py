"""The peer wire codec (BEP 3, BEP 10): round trips, split feeds, and bounds."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from apps.torrent import wire
from core.data.errors import ProtocolError

HASH, PID = bytes(range(20)), b"-PY0100-" + b"x" * 12


def messages():
    return [wire.encode(wire.CHOKE), wire.encode(wire.INTERESTED), wire.encode(wire.HAVE, index=7),
            wire.encode(wire.BITFIELD, data=b"\xff\xe0"), wire.encode(wire.REQUEST, index=1, begin=16384, length=16384),
            wire.encode(wire.PIECE, index=2, begin=0, data=b"z" * 100), wire.encode(-1),
            wire.encode_extended(0, {b"m": {b"ut_metadata": 3}}), wire.encode(wire.CANCEL, index=1, begin=0, length=5)]


def test_handshake_and_messages_in_any_split():
    stream = wire.Handshake(HASH, PID).to_bytes() + b"".join(messages())
    for step in (1, 3, 7, 68, 1000):
        codec = wire.PeerWire(piece_count=11)
        out = []
        for i in range(0, len(stream), step):
            out += codec.feed(stream[i:i + step])
        assert out[0] == wire.Handshake(HASH, PID) and out[0].extensions
        kinds = [m.kind for m in out[1:]]
        assert kinds == [wire.CHOKE, wire.INTERESTED, wire.HAVE, wire.BITFIELD, wire.REQUEST, wire.PIECE, -1,
                         wire.EXTENDED, wire.CANCEL]
        assert out[3].index == 7 and out[5].begin == 16384 and out[6].data == b"z" * 100
        assert wire.decode_extended(out[8].data) == ({b"m": {b"ut_metadata": 3}}, b"")


def test_bitfield_bits():
    bits = [True, False, True] + [False] * 6 + [True]
    data = wire.bitfield_bytes(bits, 10)
    assert data == b"\xa0\x40" and wire.bitfield_pieces(data, 10) == bits
    with pytest.raises(wire.WireError, match="spare"):
        wire.bitfield_pieces(b"\xa0\x41", 10)


@pytest.mark.parametrize("bad, reason", [
    (b"\xff\xff\xff\xff", "over the"),                                     # a 4 GiB message
    ((2 * 1024 * 1024).to_bytes(4, "big"), "over the"),
    (b"\x00\x00\x00\x02\x00\x00", "payload"),
    (b"\x00\x00\x00\x01\x63", "unknown"),
    (wire.encode(wire.REQUEST, index=0, begin=0, length=1 << 20), "request for"),
    (wire.encode(wire.BITFIELD, data=b"\xff"), "bitfield of 1 bytes"),
])
def test_bad_messages(bad, reason):
    codec = wire.PeerWire(piece_count=11)
    codec.feed(wire.Handshake(HASH, PID).to_bytes())
    with pytest.raises(wire.WireError, match=reason):
        codec.feed(bad)


def test_not_bittorrent():
    with pytest.raises(wire.WireError):
        wire.PeerWire().feed(b"GET / HTTP/1.1\r\n")


@given(st.binary(max_size=200))
def test_fuzzed_stream_raises_only_protocol_errors(data):
    codec = wire.PeerWire(piece_count=20)
    codec.feed(wire.Handshake(HASH, PID).to_bytes())
    try:
        for m in codec.feed(data):
            if m.kind == wire.EXTENDED:
                wire.decode_extended(m.data)
    except ProtocolError:
        pass
