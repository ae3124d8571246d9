"""Payload blocks: layouts, round trips, ordering rules per message kind, hostile bytes."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError, ProtocolError
from core.garlic.blocks import (Ack, AckRequest, DateTime, MessageNumber, NextKey, Options, Padding, PayloadKind,
                                Termination, UnknownBlock, encode_payload, parse_payload)

from .strategies import any_block, existing_session_payloads, new_session_payloads
from .test_fuzz import mutated

ES = PayloadKind.EXISTING_SESSION


def test_block_layouts_from_the_spec():
    assert DateTime(0x01020304).to_block() == bytes.fromhex("00 0004 01020304")
    assert Termination(1).to_block() == bytes.fromhex("04 0001 01")
    assert MessageNumber(0x0102).to_block() == bytes.fromhex("06 0002 0102")
    assert NextKey.forward(0, b"\x11" * 32, True).to_block() == bytes.fromhex("07 0023 05 0000") + b"\x11" * 32
    assert NextKey.reverse_key(3, None).to_block() == bytes.fromhex("07 0003 02 0003")
    assert Ack(((1, 2), (3, 4))).to_block() == bytes.fromhex("08 0008 0001 0002 0003 0004")
    assert AckRequest().to_block() == bytes.fromhex("09 0001 00")
    assert Padding(bytes(3)).to_block() == bytes.fromhex("fe 0003 000000")
    assert len(Options().to_bytes()) == 21 and Options().to_block()[:3] == bytes.fromhex("05 0015")


@given(any_block)
def test_every_block_round_trips(block):
    data = block.to_block()
    (parsed,) = parse_payload(data, ES) if not isinstance(block, DateTime) else parse_payload(data, ES)
    assert parsed == block and parsed.to_block() == data


@given(existing_session_payloads())
def test_existing_session_payload_round_trip(blocks):
    data = encode_payload(blocks)
    assert list(parse_payload(data, ES)) == blocks


@given(new_session_payloads())
def test_new_session_payload_round_trip(blocks):
    data = encode_payload(blocks)
    for kind in (PayloadKind.NEW_SESSION, PayloadKind.ROUTER, PayloadKind.NEW_SESSION_REPLY):
        assert list(parse_payload(data, kind)) == blocks


@pytest.mark.parametrize("blocks, kind, message", [
    ([Padding(b"x"), DateTime(1)], ES, "last block"),
    ([Padding(), Padding()], ES, "last block"),
    ([Termination(0), AckRequest()], ES, "Termination"),
    ([NextKey.forward(0, None, True)] * 3, ES, "two Next Key"),
    ([Options()], PayloadKind.NEW_SESSION, "DateTime"),
    ([], PayloadKind.ROUTER, "DateTime"),
    ([DateTime(1), NextKey.forward(0, None, True)], PayloadKind.NEW_SESSION, "not allowed"),
    ([DateTime(1), Ack(((0, 0),))], PayloadKind.NEW_SESSION, "not allowed"),
    ([Termination(0)], PayloadKind.NEW_SESSION_REPLY, "not allowed"),
    ([AckRequest()], PayloadKind.NEW_SESSION_REPLY, "not allowed"),
])
def test_ordering_rules(blocks, kind, message):
    with pytest.raises(ParseError, match=message):
        parse_payload(b"".join(b.to_block() for b in blocks), kind)


def test_termination_may_be_followed_by_padding_and_unknown_blocks_are_kept():
    blocks = [UnknownBlock(200, b"future"), Termination(0, b"bye"), Padding(b"\x00")]
    assert list(parse_payload(encode_payload(blocks), ES)) == blocks
    assert list(parse_payload(encode_payload([DateTime(5), UnknownBlock(3)]), PayloadKind.NEW_SESSION)) == \
        [DateTime(5), UnknownBlock(3)]


@pytest.mark.parametrize("data", [
    bytes.fromhex("00 0003 010203"),                 # DateTime of 3 bytes
    bytes.fromhex("07 0023 00 0000") + bytes(32),   # 35 bytes but no key flag
    bytes.fromhex("07 0003 01 0000"),                # key flag but 3 bytes
    bytes.fromhex("07 0003 06 0000"),                # reverse and request-reverse
    bytes.fromhex("07 0003 00 8000"),                # key id above 32767
    bytes.fromhex("08 0003 000000"),                 # Ack not a multiple of 4
    bytes.fromhex("08 0000"),                        # empty Ack
    bytes.fromhex("09 0002 0000"),                   # Ack Request of 2 bytes
    bytes.fromhex("06 0001 00"),                     # Message Number of 1 byte
    bytes.fromhex("04 0000"),                        # Termination without a reason
    bytes.fromhex("05 0014") + bytes(20),            # Options below 21 bytes
    bytes.fromhex("0b 0005 0000000000"),             # clove cut short
    bytes.fromhex("00 0004 0102"),                   # block longer than the payload
    bytes.fromhex("fe 00"),                          # truncated header
])
def test_malformed_blocks_raise_parse_error(data):
    with pytest.raises(ParseError):
        parse_payload(data, ES)


def test_size_limits():
    assert len(encode_payload([Padding(bytes(65516))])) == 65519
    with pytest.raises(ValueError):
        encode_payload([Padding(bytes(65516)), AckRequest()])
    with pytest.raises(ParseError):
        parse_payload(bytes(65520), ES)


@given(st.binary(max_size=300), st.sampled_from(list(PayloadKind)))
def test_random_bytes_give_only_protocol_errors(data, kind):
    try:
        parse_payload(data, kind)
    except ProtocolError:
        pass


@given(mutated(existing_session_payloads().map(encode_payload)), st.sampled_from(list(PayloadKind)))
def test_mutated_payloads_give_only_protocol_errors(data, kind):
    try:
        blocks = parse_payload(data, kind)
    except ProtocolError:
        return
    assert encode_payload(list(blocks)) == data
