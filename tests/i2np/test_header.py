"""I2NP header forms: standard 16-byte and short 9-byte (i2np.rst "I2NP message header")."""
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError
from core.data.reader import Reader
from core.i2np import (I2NPMessage, MessageType, decode_short, decode_standard, encode_short, encode_standard,
                       read_short, read_standard)

from .strategies import i2np_messages, short_form_messages


def test_standard_header_layout():
    body = b"hello i2np"
    msg = I2NPMessage(MessageType.DATA, 0x01020304, 0x0000018F_00000001, body)
    wire = encode_standard(msg)
    assert len(wire) == 16 + len(body)
    assert wire[0] == 20
    assert wire[1:5] == bytes([1, 2, 3, 4])
    assert wire[5:13] == bytes.fromhex("0000018f00000001")
    assert wire[13:15] == (10).to_bytes(2, "big")
    assert wire[15] == hashlib.sha256(body).digest()[0]
    assert wire[16:] == body
    assert decode_standard(wire) == msg


def test_short_header_layout():
    msg = I2NPMessage(MessageType.TUNNEL_DATA, 0xAABBCCDD, 1_750_000_000_000, b"xyz")
    wire = encode_short(msg)
    assert wire == bytes([18]) + bytes.fromhex("aabbccdd") + (1_750_000_000).to_bytes(4, "big") + b"xyz"
    assert decode_short(wire) == msg


@given(i2np_messages(bodies=st.binary(max_size=2000)))
def test_standard_round_trip(msg):
    wire = encode_standard(msg)
    assert len(wire) == 16 + len(msg.body)
    assert decode_standard(wire) == msg
    assert encode_standard(decode_standard(wire)) == wire
    r = Reader(wire + b"tail", "test")
    assert read_standard(r) == msg
    assert r.rest() == b"tail"


@given(short_form_messages)
def test_short_round_trip(msg):
    wire = encode_short(msg)
    assert len(wire) == 9 + len(msg.body)
    assert decode_short(wire) == msg
    assert encode_short(decode_short(wire)) == wire
    assert read_short(Reader(wire, "test")) == msg


@given(i2np_messages())
def test_conversion_keeps_id_and_rounds_expiration(msg):
    converted = decode_short(encode_short(msg))
    assert (converted.type, converted.msg_id, converted.body) == (msg.type, msg.msg_id, msg.body)
    expected_seconds = ((msg.expiration_ms + 500) // 1000) % 2**32
    assert converted.expiration_ms == expected_seconds * 1000
    if msg.expiration_ms < 2**32 * 1000 - 500:
        assert abs(converted.expiration_ms - msg.expiration_ms) <= 500
    back = decode_standard(encode_standard(converted))
    assert back == converted


@pytest.mark.parametrize("ms, seconds", [(1_000_499, 1000), (1_000_500, 1001), (1_000_999, 1001), (0, 0),
                                         (999, 1), (499, 0)])
def test_short_expiration_rounds_to_nearest_second(ms, seconds):
    wire = encode_short(I2NPMessage(1, 1, ms, b""))
    assert int.from_bytes(wire[5:9], "big") == seconds


def test_checksum_mismatch_rejected():
    wire = bytearray(encode_standard(I2NPMessage(1, 2, 3, b"payload")))
    wire[15] ^= 0x01
    with pytest.raises(ParseError, match="checksum"):
        decode_standard(bytes(wire))
    with pytest.raises(ParseError, match="checksum"):
        read_standard(Reader(bytes(wire), "test"))
    assert decode_standard(bytes(wire), verify_checksum=False).body == b"payload"


def test_body_change_fails_checksum():
    body = bytes(range(50))
    wire = bytearray(encode_standard(I2NPMessage(1, 2, 3, body)))
    # find a flip whose hash first byte differs (almost always the first one)
    for i in range(16, len(wire)):
        mutated = bytearray(wire)
        mutated[i] ^= 0xFF
        if hashlib.sha256(bytes(mutated[16:])).digest()[0] != wire[15]:
            with pytest.raises(ParseError):
                decode_standard(bytes(mutated))
            return
    pytest.fail("no mutation changed the checksum")


def test_size_mismatch_rejected():
    wire = encode_standard(I2NPMessage(1, 2, 3, b"payload"))
    with pytest.raises(ParseError):
        decode_standard(wire + b"x")
    with pytest.raises(ParseError):
        decode_standard(wire[:-1])
    with pytest.raises(ParseError):
        decode_standard(wire[:15])
    with pytest.raises(ParseError):
        decode_short(wire[:8])


def test_standard_body_limit():
    assert len(encode_standard(I2NPMessage(1, 0, 0, bytes(65535)))) == 65551
    with pytest.raises(ValueError):
        encode_standard(I2NPMessage(1, 0, 0, bytes(65536)))


def test_envelope_field_ranges():
    with pytest.raises(ValueError):
        I2NPMessage(256, 0, 0, b"")
    with pytest.raises(ValueError):
        I2NPMessage(1, 2**32, 0, b"")
    with pytest.raises(ValueError):
        I2NPMessage(1, 0, -1, b"")


@given(st.binary(max_size=64))
def test_random_bytes_into_header_decoders(data):
    for decode in (decode_standard, decode_short):
        try:
            decode(data)
        except ParseError:
            pass
