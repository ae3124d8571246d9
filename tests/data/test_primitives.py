import pytest
from hypothesis import given, strategies as st

from core.data.errors import ParseError, ProtocolError
from core.data.primitives import (Mapping, date_from_seconds, date_to_seconds, read_date, read_string,
                                  write_date, write_string)
from core.data.reader import Reader

keys = st.text(max_size=40).filter(lambda s: len(s.encode("utf-8", "surrogatepass")) <= 255)
utf8_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


def test_mapping_wire_format():
    m = Mapping.from_dict({"port": "1234", "host": "1.2.3.4"})
    assert m.items == (("host", "1.2.3.4"), ("port", "1234"))
    body = b"\x04host=\x071.2.3.4;\x04port=\x041234;"
    assert m.to_bytes() == len(body).to_bytes(2, "big") + body
    assert Mapping.parse(m.to_bytes()) == m


def test_mapping_keeps_wire_order():
    m = Mapping((("b", "1"), ("a", "2")))
    again = Mapping.parse(m.to_bytes())
    assert again.items == (("b", "1"), ("a", "2"))
    assert not again.is_sorted()
    assert Mapping.from_dict(again.as_dict()).is_sorted()


def test_mapping_sorts_like_java_string_compare():
    # U+FF21 sorts after U+1F600 by code point but before it by UTF-16 code unit
    m = Mapping.from_dict({"\U0001F600": "x", "\uFF21": "y", "B": "z", "a": "w"})
    assert [k for k, _ in m.items] == ["B", "a", "\U0001F600", "\uFF21"]


def test_mapping_get_and_contains():
    m = Mapping.from_dict({"caps": "XfR"})
    assert m.get("caps") == "XfR" and m.get("nope") is None and m.get("nope", "d") == "d"
    assert "caps" in m and "nope" not in m and len(m) == 1


def test_mapping_duplicates():
    body = b"\x01a=\x011;\x01a=\x012;"
    data = len(body).to_bytes(2, "big") + body
    with pytest.raises(ParseError, match="duplicate"):
        Mapping.parse(data)
    assert Mapping.parse(data, allow_duplicates=True).items == (("a", "1"), ("a", "2"))
    with pytest.raises(ParseError):
        Mapping.from_dict([("a", "1"), ("a", "2")])


@pytest.mark.parametrize("data", [
    b"\x00\x05\x01a=\x011",           # size longer than the pairs
    b"\x00\x06\x01a:\x011;",          # no '='
    b"\x00\x06\x01a=\x011,",          # no ';'
    b"\x00\x06\x01a=\x01\xff;",       # not UTF-8
    b"\x00\x03\x01a=",                # truncated value
    b"\x00\x00\x00",                  # trailing byte
])
def test_mapping_rejects(data):
    with pytest.raises(ParseError):
        Mapping.parse(data)


def test_mapping_limits():
    with pytest.raises(ParseError):
        Mapping.from_dict({"k": "v" * 256})
    with pytest.raises(ParseError):
        Mapping.from_dict({f"{i:04d}": "v" * 250 for i in range(300)})
    Mapping.from_dict({"k": "é" * 127})  # 254 bytes is fine


def test_string_and_date():
    assert write_string("héllo") == b"\x06h\xc3\xa9llo"
    assert read_string(Reader(b"\x06h\xc3\xa9llo", "t")) == "héllo"
    assert write_string("") == b"\x00"
    with pytest.raises(ParseError):
        write_string("x" * 256)
    with pytest.raises(ParseError):
        read_string(Reader(b"\x05abc", "t"))
    assert write_date(1) == b"\x00" * 7 + b"\x01"
    assert read_date(Reader(write_date(1_700_000_000_123), "t")) == 1_700_000_000_123
    assert date_from_seconds(1.5) == 1500 and date_to_seconds(1500) == 1.5 and date_to_seconds(0) is None
    with pytest.raises(ParseError):
        write_date(-1)


@given(st.lists(st.tuples(keys, keys), max_size=20))
def test_mapping_round_trip(pairs):
    m = Mapping(tuple(pairs))
    data = m.to_bytes()
    assert Mapping.parse(data, allow_duplicates=True) == m
    assert Mapping.parse(data, allow_duplicates=True).to_bytes() == data


@given(st.dictionaries(utf8_text, utf8_text, max_size=10))
def test_mapping_from_dict_round_trip(d):
    m = Mapping.from_dict(d)
    assert m.as_dict() == d and m.is_sorted()
    assert Mapping.parse(m.to_bytes()) == m


@given(st.binary(max_size=300))
def test_mapping_random_bytes(data):
    try:
        Mapping.parse(data)
    except ProtocolError:
        pass


@given(st.dictionaries(keys, keys, min_size=1, max_size=6), st.data())
def test_mapping_mutated_bytes(d, data):
    raw = bytearray(Mapping.from_dict(d).to_bytes())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    try:
        Mapping.parse(bytes(raw))
    except ProtocolError:
        pass
