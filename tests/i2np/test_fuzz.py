"""Random and mutated bytes into every I2NP parser: only ProtocolError subclasses may come out."""
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.errors import ProtocolError
from core.i2np import (MESSAGE_CLASSES, GarlicClove, GarlicCloveBlock, GarlicCloveDeliveryInstructions,
                       GarlicCloveSet, decode_short, decode_standard, encode_standard, parse_message)

from .strategies import (delivery_instructions, garlic_clove_blocks, garlic_clove_sets, garlic_cloves,
                         i2np_messages, typed_messages)

OTHER_PARSERS = [decode_standard, decode_short, GarlicCloveDeliveryInstructions.parse, GarlicClove.parse,
                 GarlicCloveSet.parse, GarlicCloveBlock.parse]


def _accepts_or_protocol_error(parse, data):
    try:
        result = parse(data)
    except ProtocolError:
        return None
    return result


@st.composite
def mutated(draw, wire):
    """Flip, insert, delete or truncate bytes of a valid encoding."""
    data = bytearray(draw(wire))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set", "fill"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x08, 0x10, 0x12, 0x7F, 0x80, 0xFF]))
        elif action == "fill":  # runs of 00/FF hit zero ids, empty and maximal counts and lengths
            run = draw(st.integers(1, 8))
            data[pos:pos + run] = bytes([draw(st.sampled_from([0x00, 0xFF]))]) * len(data[pos:pos + run])
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 4))]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


@given(st.integers(0, 255), st.binary(max_size=600))
def test_random_bodies_into_registry(msg_type, body):
    _accepts_or_protocol_error(lambda b: parse_message(msg_type, b), body)


@given(st.sampled_from(sorted(MESSAGE_CLASSES)), st.binary(max_size=600))
def test_random_bodies_into_every_message(msg_type, body):
    _accepts_or_protocol_error(lambda b: parse_message(msg_type, b), body)


@settings(max_examples=1000)
@given(typed_messages.flatmap(lambda m: st.tuples(st.just(m.TYPE), mutated(st.just(m.to_bytes())))))
def test_mutated_messages(case):
    msg_type, data = case
    parsed = _accepts_or_protocol_error(lambda b: parse_message(msg_type, b), data)
    if parsed is not None:
        assert parsed.to_bytes() == data  # anything accepted re-encodes to the same bytes


@given(st.sampled_from(OTHER_PARSERS), st.binary(max_size=300))
def test_random_bytes_into_other_parsers(parse, data):
    _accepts_or_protocol_error(parse, data)


_ENCODINGS = st.one_of(
    st.tuples(st.just(decode_standard), i2np_messages().map(encode_standard)),
    st.tuples(st.just(GarlicCloveDeliveryInstructions.parse), delivery_instructions().map(lambda d: d.to_bytes())),
    st.tuples(st.just(GarlicClove.parse), garlic_cloves.map(lambda c: c.to_bytes())),
    st.tuples(st.just(GarlicCloveSet.parse), garlic_clove_sets.map(lambda c: c.to_bytes())),
    st.tuples(st.just(GarlicCloveBlock.parse), garlic_clove_blocks.map(lambda c: c.to_bytes())),
)


@settings(max_examples=1000)
@given(_ENCODINGS.flatmap(lambda case: st.tuples(st.just(case[0]), mutated(st.just(case[1])))))
def test_mutated_other_structures(case):
    parse, data = case
    _accepts_or_protocol_error(parse, data)
