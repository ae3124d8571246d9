import base64

import pytest
from hypothesis import given, strategies as st

from core.data.encoding import b32decode, b32encode, b64decode, b64encode
from core.data.errors import ParseError, ProtocolError


def test_b64_uses_i2p_alphabet():
    data = bytes([0xFB, 0xFF, 0xBF])  # '+/+/' in standard Base64
    assert base64.b64encode(data) == b"+/+/"
    assert b64encode(data) == "-~-~"
    assert b64decode("-~-~") == data


def test_b64_padding_written_and_optional_on_decode():
    assert b64encode(b"a") == "YQ=="
    assert b64decode("YQ==") == b"a"
    assert b64decode("YQ") == b"a"
    assert b64decode("") == b""


@pytest.mark.parametrize("bad", ["+/+/", "YQ=", "YQ===", "Y", "YQ==YQ==", "Y Q=", "Yé==", "====", "YQ\n"])
def test_b64_rejects_bad_text(bad):
    with pytest.raises(ParseError):
        b64decode(bad)


def test_b32_known_vector():
    # RFC 4648 section 10, lowercased and unpadded
    assert b32encode(b"foobar") == "mzxw6ytboi"
    assert b32decode("mzxw6ytboi") == b"foobar"
    assert b32decode("MZXW6YTBOI======") == b"foobar"
    assert b32encode(bytes(32)) == "a" * 52


@pytest.mark.parametrize("bad", ["m", "mzx", "mzxw6y", "mzxw6ytb1i", "mzxw6ytboi=", "é"])
def test_b32_rejects_bad_text(bad):
    with pytest.raises(ParseError):
        b32decode(bad)


@given(st.binary(max_size=600))
def test_b64_round_trip(data):
    text = b64encode(data)
    assert b64decode(text) == data
    assert b64decode(text.rstrip("=")) == data


@given(st.binary(max_size=100))
def test_b32_round_trip(data):
    text = b32encode(data)
    assert text == text.lower() and "=" not in text
    assert b32decode(text) == data
    assert b32decode(text.upper()) == data


@given(st.text(max_size=80))
def test_decoders_raise_only_protocol_errors(text):
    for decode in (b64decode, b32decode):
        try:
            decode(text)
        except ProtocolError:
            pass
