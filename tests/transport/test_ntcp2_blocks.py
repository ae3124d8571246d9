"""NTCP2 block codecs: layouts from ntcp2.rst, round trips, ordering rules, fuzzing."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError, ProtocolError
from core.i2np.header import I2NPMessage, encode_short
from core.transport.ntcp2 import blocks as b


def test_datetime_layout():
    assert b.DateTimeBlock(0x01020304).to_bytes() == bytes.fromhex("000004" "01020304")
    assert b.DateTimeBlock.now(10.5).timestamp == 11      # rounds to the nearest second
    assert b.DateTimeBlock.now(10.49).timestamp == 10


def test_options_layout():
    block = b.OptionsBlock(1, 2, 3, 4, 0x0506, 0x0708, 0x090A, 0x0B0C, b"xy")
    assert block.to_bytes() == bytes.fromhex("01000e" "01020304" "0506" "0708" "090a" "0b0c") + b"xy"
    assert b.OptionsBlock.ratio_to_byte(1.0) == 0x10


def test_router_info_layout_and_flood_flag():
    block = b.RouterInfoBlock(b"RI", flags=b.FLAG_FLOOD_REQUEST)
    assert block.to_bytes() == bytes.fromhex("020003" "01") + b"RI"
    assert block.flood_request
    assert not b.RouterInfoBlock(b"RI").flood_request


def test_i2np_layout_short_header():
    block = b.I2NPBlock(20, 0xAABBCCDD, 0x11223344, b"body")
    assert block.to_bytes() == bytes.fromhex("03000d" "14" "aabbccdd" "11223344") + b"body"


def test_i2np_message_conversion_rounds_expiration_to_seconds():
    message = I2NPMessage(11, 7, 1_700_000_000_600, b"garlic")
    block = b.I2NPBlock.from_message(message)
    assert (block.msg_type, block.msg_id, block.expiration, block.body) == (11, 7, 1_700_000_001, b"garlic")
    assert block.to_message() == I2NPMessage(11, 7, 1_700_000_001_000, b"garlic")
    assert block.to_bytes()[3:] == encode_short(message)


def test_termination_layout_and_reasons():
    block = b.termination(5, b.TerminationReason.CLOCK_SKEW)
    assert block.to_bytes() == bytes.fromhex("040009" "0000000000000005" "07")
    assert b.TerminationReason.BANNED == 17
    assert b.TerminationReason.DATA_PHASE_AEAD_FAILURE == 4
    assert b.TerminationReason.AEAD_FRAMING_ERROR == 9


def test_padding_and_unknown_layout():
    assert b.PaddingBlock(b"\x00" * 3).to_bytes() == bytes.fromhex("fe0003000000")
    assert b.PaddingBlock().to_bytes() == bytes.fromhex("fe0000")
    assert b.parse_blocks(bytes.fromhex("e00002abcd")) == [b.UnknownBlock(224, b"\xab\xcd")]
    with pytest.raises(ValueError):
        b.UnknownBlock(3, b"")


def test_parse_order_rules():
    padding = b.PaddingBlock(b"p").to_bytes()
    term = b.termination(0, 0).to_bytes()
    dt = b.DateTimeBlock(1).to_bytes()
    assert len(b.parse_blocks(dt + term + padding)) == 3
    with pytest.raises(ParseError):
        b.parse_blocks(padding + dt)
    with pytest.raises(ParseError):
        b.parse_blocks(padding + padding)
    with pytest.raises(ParseError):
        b.parse_blocks(term + dt)


@pytest.mark.parametrize("raw", [
    "000003010203",            # DateTime must be 4 bytes
    "00000501020304ff",        # ... not 5
    "01000b" + "00" * 11,      # Options at least 12
    "020001" "00",             # RouterInfo with flag only
    "030008" + "00" * 8,       # I2NP below the 9-byte header
    "040008" + "00" * 8,       # Termination below 9
    "000004010203",            # size overruns the frame
    "00",                      # truncated header
])
def test_malformed_blocks_rejected(raw):
    with pytest.raises(ParseError):
        b.parse_blocks(bytes.fromhex(raw))


def test_message3_blocks_rules():
    ri = b.RouterInfoBlock(b"RI!").to_bytes()
    options = b.OptionsBlock().to_bytes()
    padding = b.PaddingBlock(b"..").to_bytes()
    assert b.parse_message3_blocks(ri + options + padding)[1] == b.OptionsBlock()
    assert b.parse_message3_blocks(ri)[1:] == (None, None)
    for bad in (options + ri, ri + padding + options, ri + b.DateTimeBlock(1).to_bytes(), b"",
                ri + bytes.fromhex("e00000")):
        with pytest.raises(ParseError):
            b.parse_message3_blocks(bad)


def test_block_size_limit():
    b.PaddingBlock(bytes(b.MAX_BLOCK_DATA)).to_bytes()
    with pytest.raises(ValueError):
        b.PaddingBlock(bytes(b.MAX_BLOCK_DATA + 1)).to_bytes()


u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
small = st.binary(max_size=64)
block_strategy = st.one_of(
    st.builds(b.DateTimeBlock, u32),
    st.builds(b.OptionsBlock, u8, u8, u8, u8, u16, u16, u16, u16, small),
    st.builds(b.RouterInfoBlock, st.binary(min_size=1, max_size=64), u8),
    st.builds(b.I2NPBlock, u8, u32, u32, small),
    st.builds(b.UnknownBlock, st.integers(5, 253), small),
)


@given(st.lists(block_strategy, max_size=6), st.booleans(), st.one_of(st.none(), small))
def test_blocks_round_trip(blocks, with_termination, padding):
    blocks = list(blocks)
    if with_termination:
        blocks.append(b.TerminationBlock(2**63, 9, b"why"))
    if padding is not None:
        blocks.append(b.PaddingBlock(padding))
    encoded = b.encode_blocks(blocks)
    assert b.parse_blocks(encoded) == blocks
    assert b.encode_blocks(b.parse_blocks(encoded)) == encoded


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_errors(data):
    for parser in (b.parse_blocks, b.parse_message3_blocks):
        try:
            parser(data)
        except ProtocolError:
            pass


@given(st.lists(block_strategy, min_size=1, max_size=4), st.data())
def test_mutated_frames_only_raise_protocol_errors(blocks, data):
    encoded = bytearray(b.encode_blocks(blocks))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(u8)
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        b.parse_blocks(bytes(encoded[:cut]))
    except ProtocolError:
        pass
