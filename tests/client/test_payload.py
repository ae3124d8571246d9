"""The gzip client payload: ports and protocol in the header, interop with plain gzip, hostile input."""
import gzip
import os
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.client.payload import (ALWAYS_TRY_BELOW, MAX_PAYLOAD, MISSES_BEFORE_SKIPPING, SKIP_AFTER_MISSES,
                                 ClientPayload, Compressor)
from core.data.errors import ParseError, ProtocolError

payloads = st.builds(ClientPayload, st.binary(max_size=3000), st.integers(0, 255), st.integers(0, 0xFFFF),
                     st.integers(0, 0xFFFF))


@given(payloads, st.booleans())
def test_round_trip(payload, compress):
    assert ClientPayload.parse(payload.to_bytes(compress=compress)) == payload


def test_header_layout_matches_i2cp_overview():
    data = ClientPayload(b"hello" * 40, protocol=17, src_port=0x1234, dst_port=0xABCD).to_bytes()
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0                       # flags
    assert data[4:6] == b"\x12\x34"           # source port, big-endian, in mtime
    assert data[6:8] == b"\xab\xcd"           # destination port
    assert data[8] == 2                       # xflags as Java writes them
    assert data[9] == 17                      # protocol in the OS byte


def test_compression_used_only_when_it_helps():
    text = ClientPayload(b"a" * 5000, 6)
    noise = ClientPayload(os.urandom(5000), 6)
    assert len(text.to_bytes()) < 100
    stored = noise.to_bytes()
    assert len(stored) <= 5000 + 10 + 8 + 5 * 2   # stored blocks: 5 bytes per block of up to 64 KB
    assert len(text.to_bytes(compress=False)) > 5000


@pytest.mark.parametrize("size", [0, 1, 63, 65535, 65536])
def test_stored_members_are_standard_gzip(size):
    body = os.urandom(size)
    member = ClientPayload(body, 6).to_bytes(compress=False)
    assert gzip.decompress(member) == body
    assert len(member) == 10 + 8 + size + 5 * max(1, -(-size // 65535))


def test_compressor_stops_trying_on_incompressible_data_and_probes_again():
    compressor = Compressor()
    text = ClientPayload(b"GET / HTTP/1.1\r\n" * 120, 6)
    assert len(text.to_bytes(compress=compressor)) < len(text.data) // 4
    for _ in range(MISSES_BEFORE_SKIPPING):
        noise = ClientPayload(os.urandom(1730), 6)
        assert ClientPayload.parse(noise.to_bytes(compress=compressor)) == noise
    # skipping now: compressible data too is stored until the next probe
    skipped = text.to_bytes(compress=compressor)
    assert len(skipped) > len(text.data) and ClientPayload.parse(skipped) == text
    short = ClientPayload(b"x" * (ALWAYS_TRY_BELOW - 1), 6)   # short ones (SYNs among them) are always tried
    assert len(short.to_bytes(compress=compressor)) < 100
    sizes = [len(text.to_bytes(compress=compressor)) for _ in range(SKIP_AFTER_MISSES)]
    assert all(size > len(text.data) for size in sizes[:-1])
    assert sizes[-1] < len(text.data) // 4   # the probe found it compressible: trying goes on
    assert len(text.to_bytes(compress=compressor)) < len(text.data) // 4


def test_reads_standard_gzip_with_ports_patched_in():
    body = b"payload from another implementation" * 10
    member = bytearray(gzip.compress(body, mtime=0))
    member[4:8] = struct.pack(">HH", 7, 9)
    member[9] = 18
    parsed = ClientPayload.parse(bytes(member))
    assert parsed == ClientPayload(body, 18, 7, 9)


def test_reads_optional_header_fields():
    body = b"x" * 100
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflater.compress(body) + deflater.flush()
    header = bytes([0x1F, 0x8B, 8, 0x04 | 0x08 | 0x10 | 0x02, 0, 5, 0, 6, 2, 6])
    header += b"\x03\x00abc" + b"name\0" + b"comment\0"
    header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    data = header + raw + struct.pack("<II", zlib.crc32(body), len(body))
    assert ClientPayload.parse(data) == ClientPayload(body, 6, 5, 6)


def _good() -> bytes:
    return ClientPayload(b"some data " * 30, 6, 1, 2).to_bytes()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"\x1f\x8b\x07" + d[3:], "header"),
    (lambda d: d[:3] + b"\x20" + d[4:], "reserved"),
    (lambda d: d[:-8] + b"\0\0\0\0" + d[-4:], "CRC"),
    (lambda d: d[:-4] + b"\0\0\0\0", "size"),
    (lambda d: d + b"\0", "trailer"),
    (lambda d: d[:-1], "trailer is 7 bytes"),
    (lambda d: d[:-9], "truncated"),
    (lambda d: d[:20], "truncated"),
    (lambda d: d[:10] + b"\xff" * 20 + d[30:], "deflate"),
    (lambda d: d[:3] + b"\x08" + d[4:10] + b"name without end", "unterminated"),
    (lambda d: d[:3] + b"\x02" + d[4:], "header CRC"),
    (lambda d: d[:12], "short"),
])
def test_rejects_malformed(mutate, message):
    with pytest.raises(ParseError) as info:
        ClientPayload.parse(mutate(_good()))
    assert info.value.structure == "ClientPayload"
    assert message.lower() in str(info.value).lower()


def test_gzip_bomb_stops_at_the_limit():
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflater.compress(bytes(50 * MAX_PAYLOAD)) + deflater.flush()
    data = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 2, 17]) + bomb + struct.pack("<II", 0, 0)
    assert len(data) < 10_000
    with pytest.raises(ParseError, match="inflates beyond"):
        ClientPayload.parse(data)


def test_limit_is_inclusive():
    payload = ClientPayload(bytes(MAX_PAYLOAD))
    assert ClientPayload.parse(payload.to_bytes()) == payload
    with pytest.raises(ValueError):
        ClientPayload(bytes(MAX_PAYLOAD + 1))


@given(st.binary(max_size=400))
def test_random_bytes_raise_only_protocol_errors(data):
    try:
        ClientPayload.parse(data)
    except ProtocolError:
        pass


@given(st.data())
def test_mutated_payloads_raise_only_protocol_errors(data):
    good = bytearray(_good())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(good) - 1))
        good[index] = data.draw(st.integers(0, 255))
    try:
        parsed = ClientPayload.parse(bytes(good))
    except ProtocolError:
        return
    assert parsed.data == b"some data " * 30   # the CRC lets no corrupted body through
