"""The sans-I/O SAM line parser, formatter, version choice and line buffer."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError, ProtocolError
from core.sam.parser import (LineBuffer, LineTooLong, SamError, format_error, format_line, negotiate_version,
                             parse_datagram_header, parse_line, parse_sig_type, quote, tokenize)


def test_command_subcommand_and_options():
    cmd = parse_line(b"SESSION CREATE STYLE=STREAM ID=test DESTINATION=TRANSIENT inbound.length=1\n")
    assert (cmd.verb, cmd.action) == ("SESSION", "CREATE")
    assert cmd.options == {"STYLE": "STREAM", "ID": "test", "DESTINATION": "TRANSIENT", "inbound.length": "1"}


def test_commands_map_to_upper_case_but_keys_and_values_do_not():
    cmd = parse_line("hello version min=3.0 Max=3.1")
    assert (cmd.verb, cmd.action) == ("HELLO", "VERSION")
    assert cmd.options == {"min": "3.0", "Max": "3.1"}


def test_quotes_escapes_and_spaces():
    cmd = parse_line(r'AUTH ADD USER="a b"   PASSWORD="q\"uo\\te" X=p"art q"uoted')
    assert cmd.options == {"USER": "a b", "PASSWORD": 'q"uo\\te', "X": "part quoted"}


def test_equals_inside_a_value_and_first_equals_splits():
    cmd = parse_line('X Y i2cp.leaseSetOption.0=_smtp._tcp=1 Q="a=b"')
    assert cmd.options == {"i2cp.leaseSetOption.0": "_smtp._tcp=1", "Q": "a=b"}


def test_empty_values():
    cmd = parse_line('RAW SEND PROTOCOL FROM_PORT= TO_PORT=""')
    assert cmd.options == {"PROTOCOL": "", "FROM_PORT": "", "TO_PORT": ""}
    assert cmd.get("PROTOCOL") is None and cmd.get("FROM_PORT", "d") == "d"


def test_command_alone_and_last_duplicate_wins():
    assert parse_line("QUIT").verb == "QUIT"
    assert parse_line("A B K=1 K=2").options == {"K": "2"}


def test_ping_keeps_its_text():
    assert parse_line("PING hello  world ").text == "hello  world "
    assert parse_line("ping").verb == "PING" and parse_line("ping").text == ""
    assert parse_line("PINGX").verb == "PINGX"


def test_utf8_values():
    assert parse_line("A B NAME=\u00e9t\u00e9.i2p").options["NAME"] == "\u00e9t\u00e9.i2p"


@pytest.mark.parametrize("line", [
    b"", b"   ", 'A B X="open'.encode(), b"A B =value", b"A B \"k y\"=v", b"\xff\xfe", b"K=V B",
    b"A B\rC", b"A\x00B",
])
def test_malformed_lines(line):
    with pytest.raises(ParseError):
        parse_line(line)


def test_format_line_quotes_what_needs_it():
    line = format_line("NAMING", "REPLY", RESULT="OK", NAME="a b", EMPTY="", Q='x"y', NONE=None, FLAG=True,
                       MESSAGE="done")
    assert line == b'NAMING REPLY RESULT=OK NAME="a b" EMPTY="" Q="x\\"y" FLAG=true MESSAGE="done"\n'
    assert format_line("PONG") == b"PONG\n"
    assert format_line("DEST", "REPLY", PUB="ab~-==") == b"DEST REPLY PUB=ab~-==\n"   # base64 goes bare
    assert format_line("A", "B", MESSAGE="two\nlines") == b'A B MESSAGE="two lines"\n'


def test_format_error_picks_the_reply_of_the_command_family():
    assert format_error("STREAM", "INVALID_ID", "x") == b'STREAM STATUS RESULT=INVALID_ID MESSAGE="x"\n'
    assert format_error("NAMING", "KEY_NOT_FOUND").startswith(b"NAMING REPLY RESULT=KEY_NOT_FOUND")
    assert format_error("BOGUS", "I2P_ERROR", "?").startswith(b"SESSION STATUS RESULT=I2P_ERROR")


@pytest.mark.parametrize("low, high, chosen", [
    (None, None, "3.3"), ("3.0", "3.1", "3.1"), ("3.1", "3.1", "3.1"), ("3", "3", "3.3"), ("3.0", "3", "3.3"),
    ("3.2", None, "3.3"), (None, "3.0", "3.0"), ("3.1", "3.3", "3.3"), ("3.0", "4.0", "3.3"), ("2.0", "2.9", None),
    ("3.4", "3.9", None), ("3.2", "3.1", None), ("1", "3.2", "3.2"), ("3.1.0", "3.2.5", "3.2"),
])
def test_version_negotiation(low, high, chosen):
    assert negotiate_version(low, high) == chosen


@pytest.mark.parametrize("bad", ["x", "3.a", "", "3..1", "3.1.2.3", "-1", "99999.1"])
def test_bad_versions(bad):
    with pytest.raises(SamError):
        negotiate_version(bad, None)


def test_signature_types_by_name_and_number():
    assert parse_sig_type("7") == 7
    assert parse_sig_type("EdDSA_SHA512_Ed25519") == 7
    assert parse_sig_type("ecdsa_sha256_p256") == 1
    assert parse_sig_type("DSA_SHA1") == 0
    assert parse_sig_type("RedDSA_SHA512_Ed25519") == 11
    for bad in ("12", "ED448", "", "-1", "7.0"):
        with pytest.raises(SamError):
            parse_sig_type(bad)


def test_line_buffer():
    buffer = LineBuffer(max_line=10)
    buffer.feed(b"ab")
    assert buffer.next_line() is None
    buffer.feed(b"c\nde\nrest")
    assert buffer.next_line() == b"abc"
    assert buffer.next_line() == b"de"
    assert buffer.next_line() is None
    assert buffer.take(5) is None and buffer.take(4) == b"rest"
    buffer.feed(b"x" * 11)
    with pytest.raises(LineTooLong):
        buffer.next_line()
    buffer = LineBuffer(max_line=10)
    buffer.feed(b"y" * 10 + b"\nz")
    assert buffer.next_line() == b"y" * 10 and buffer.take_all() == b"z"


def test_datagram_header():
    header, payload = parse_datagram_header(b"3.3 nick dest FROM_PORT=1 TO_PORT=2\n\x00payload\n")
    assert (header.version, header.nickname, header.destination) == ("3.3", "nick", "dest")
    assert header.options == {"FROM_PORT": "1", "TO_PORT": "2"} and payload == b"\x00payload\n"
    assert parse_datagram_header(b"3.0 n d\n")[1] == b""
    for bad in (b"3.0 n d", b"2.0 n d\n", b"3.0 n\n", b"3.x n d\n", b"3.0 N=1 d\n", b"\xff n d\n", b"3.0 n d =1\n"):
        with pytest.raises(ParseError):
            parse_datagram_header(bad)


# ---------------------------------------------------------------- properties

@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_errors(data):
    try:
        parse_line(data)
    except ProtocolError:
        pass
    try:
        parse_datagram_header(data)
    except ProtocolError:
        pass


_ALPHABET = st.sampled_from(list('abcXYZ019 \t"\\=.-_~é\u00a0') + ["\u4e2d"])


@given(st.text(_ALPHABET, max_size=80))
def test_random_text_raises_only_parse_errors(text):
    try:
        cmd = parse_line(text)
    except ParseError:
        return
    assert cmd.verb == cmd.verb.upper()


_KEYS = st.text(st.characters(blacklist_characters=' \t"\\=\r\n\0', blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
_VALUES = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=40)


@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_format_then_parse_round_trips(options):
    cmd = parse_line(format_line("SESSION", "CREATE", options))
    assert (cmd.verb, cmd.action) == ("SESSION", "CREATE")
    assert cmd.options == options


@given(_VALUES)
def test_quote_round_trips_inside_a_token(value):
    tokens = tokenize("K=" + quote(value))
    assert len(tokens) == 1 and tokens[0] == ("K=" + value, 1)
