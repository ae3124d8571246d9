"""Garlic clove delivery instructions, legacy cloves and clove sets, ECIES Garlic Clove blocks."""
import pytest
from hypothesis import given

from core.data.errors import ParseError
from core.data.reader import Reader
from core.i2np import (DeliveryStatus, DeliveryType, GarlicClove, GarlicCloveBlock, GarlicCloveDeliveryInstructions,
                       GarlicCloveSet, I2NPMessage, MessageType, encode_standard, parse_payload)

from .strategies import delivery_instructions, garlic_clove_blocks, garlic_clove_sets, garlic_cloves

HASH = bytes(range(32))


def test_delivery_instruction_lengths_and_flags():
    # i2np.rst "Garlic Clove Delivery Instructions": 1, 33, 33 and 37 bytes
    assert GarlicCloveDeliveryInstructions.local().to_bytes() == b"\x00"
    assert GarlicCloveDeliveryInstructions.to_destination(HASH).to_bytes() == b"\x20" + HASH
    assert GarlicCloveDeliveryInstructions.to_router(HASH).to_bytes() == b"\x40" + HASH
    tunnel = GarlicCloveDeliveryInstructions.to_tunnel(HASH, 0x01020304)
    assert tunnel.to_bytes() == b"\x60" + HASH + b"\x01\x02\x03\x04"


def test_delivery_instruction_optional_fields_order():
    key = bytes([7]) * 32
    di = GarlicCloveDeliveryInstructions(DeliveryType.TUNNEL, HASH, 5, session_key=key, delay=9)
    wire = di.to_bytes()
    assert wire == b"\xF0" + key + HASH + (5).to_bytes(4, "big") + (9).to_bytes(4, "big")
    assert GarlicCloveDeliveryInstructions.parse(wire) == di


@given(delivery_instructions())
def test_delivery_instructions_round_trip(di):
    wire = di.to_bytes()
    assert GarlicCloveDeliveryInstructions.parse(wire) == di
    r = Reader(wire + b"rest", "test")
    assert GarlicCloveDeliveryInstructions.read(r) == di and r.rest() == b"rest"


def test_delivery_instruction_errors():
    for flag in (0x01, 0x08, 0x2F):
        with pytest.raises(ParseError, match="reserved"):
            GarlicCloveDeliveryInstructions.parse(bytes([flag]) + HASH)
    with pytest.raises(ParseError, match="nonzero"):
        GarlicCloveDeliveryInstructions.parse(b"\x60" + HASH + bytes(4))
    with pytest.raises(ParseError):
        GarlicCloveDeliveryInstructions.parse(b"\x40" + HASH[:31])
    with pytest.raises(ParseError):
        GarlicCloveDeliveryInstructions.parse(b"")
    with pytest.raises(ValueError):
        GarlicCloveDeliveryInstructions(DeliveryType.LOCAL, HASH)
    with pytest.raises(ValueError):
        GarlicCloveDeliveryInstructions(DeliveryType.ROUTER, HASH, 5)
    with pytest.raises(ValueError):
        GarlicCloveDeliveryInstructions(DeliveryType.TUNNEL, HASH)


def test_legacy_clove_layout():
    status = DeliveryStatus(99, 1_750_000_000_000)
    inner = I2NPMessage.build(status, 5, 1_750_000_060_000)
    clove = GarlicClove(GarlicCloveDeliveryInstructions.local(), inner, 0xCAFEBABE, 1_750_000_060_000)
    wire = clove.to_bytes()
    assert wire == (b"\x00" + encode_standard(inner) + bytes.fromhex("cafebabe")
                    + (1_750_000_060_000).to_bytes(8, "big") + b"\x00\x00\x00")
    parsed = GarlicClove.parse(wire)
    assert parsed == clove and parse_payload(parsed.message) == status


@given(garlic_cloves)
def test_legacy_clove_round_trip(clove):
    assert GarlicClove.parse(clove.to_bytes()) == clove


@given(garlic_clove_sets)
def test_clove_set_round_trip(clove_set):
    wire = clove_set.to_bytes()
    assert wire[0] == len(clove_set.cloves)
    assert GarlicCloveSet.parse(wire) == clove_set


def test_clove_set_errors():
    clove = GarlicClove(GarlicCloveDeliveryInstructions.local(), I2NPMessage(20, 1, 2, b"\0\0\0\0"), 3, 4)
    good = GarlicCloveSet((clove,), 7, 8).to_bytes()
    with pytest.raises(ParseError, match="without cloves"):
        GarlicCloveSet.parse(b"\x00" + good[1:])
    with pytest.raises(ParseError):
        GarlicCloveSet.parse(b"\x02" + good[1:])
    with pytest.raises(ParseError):
        GarlicCloveSet.parse(good + b"\x00")
    with pytest.raises(ValueError):
        GarlicCloveSet((), 7, 8)
    with pytest.raises(ParseError):  # a NULL certificate with a payload
        GarlicClove.parse(b"\x00" + encode_standard(I2NPMessage(20, 1, 2, b"")) + bytes(12) + b"\x00\x00\x01\x00")


def test_clove_block_layout():
    # ecies.rst "Garlic Clove": delivery instructions, then type, msg id, 4-byte expiration in seconds, body
    inner = I2NPMessage(MessageType.DATA, 0x0A0B0C0D, 1_750_000_000_000, b"\x00\x00\x00\x02hi")
    block = GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_destination(HASH), inner)
    data = b"\x20" + HASH + b"\x14" + bytes.fromhex("0a0b0c0d") + (1_750_000_000).to_bytes(4, "big") + inner.body
    assert block.to_bytes() == data
    assert block.to_block() == b"\x0b" + len(data).to_bytes(2, "big") + data
    assert GarlicCloveBlock.parse(data) == block
    assert parse_payload(GarlicCloveBlock.parse(data).message).payload == b"hi"


@given(garlic_clove_blocks)
def test_clove_block_round_trip(block):
    wire = block.to_bytes()
    assert GarlicCloveBlock.parse(wire) == block
    assert block.to_block()[3:] == wire


def test_clove_block_errors():
    with pytest.raises(ParseError):
        GarlicCloveBlock.parse(b"\x00" + bytes(8))  # 9-byte header cut short
    with pytest.raises(ParseError):
        GarlicCloveBlock.parse(b"\x20" + HASH[:10])
    big = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), I2NPMessage(20, 1, 0, bytes(65516)))
    with pytest.raises(ValueError):
        big.to_block()
