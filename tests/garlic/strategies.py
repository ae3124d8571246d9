"""Hypothesis strategies for ratchet payload blocks."""
from hypothesis import strategies as st

from core.garlic.blocks import (Ack, AckRequest, DateTime, MessageNumber, NextKey, Options, Padding, Termination,
                                UnknownBlock)
from tests.i2np.strategies import garlic_clove_blocks

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
keys = st.binary(min_size=32, max_size=32)

datetimes = st.builds(DateTime, st.integers(0, 2**32 - 1))
terminations = st.builds(Termination, u8, st.binary(max_size=40))
options = st.builds(Options, u8, u8, u8, u16, u16, u16, u8, u8, u8, u8, u16, u16, u16, u16, st.binary(max_size=30))
message_numbers = st.builds(MessageNumber, u16)
acks = st.builds(Ack, st.lists(st.tuples(u16, u16), min_size=1, max_size=10).map(tuple))
ack_requests = st.builds(AckRequest, u8)
paddings = st.builds(Padding, st.binary(max_size=40))
unknowns = st.builds(UnknownBlock, st.sampled_from([1, 2, 3, 10, 12, 100, 224, 253, 255]), st.binary(max_size=40))


@st.composite
def next_keys(draw):
    reverse = draw(st.booleans())
    key = draw(st.none() | keys)
    flags = (NextKey.KEY_PRESENT if key else 0) | (NextKey.REVERSE if reverse else 0)
    if not reverse and draw(st.booleans()):
        flags |= NextKey.REQUEST_REVERSE
    flags |= draw(st.integers(0, 31)) << 3   # future bits survive a round trip
    return NextKey(flags, draw(st.integers(0, 32767)), key)


any_block = st.one_of(datetimes, terminations, options, message_numbers, next_keys(), acks, ack_requests,
                      garlic_clove_blocks, paddings, unknowns)


@st.composite
def existing_session_payloads(draw):
    """Blocks in an order the ES rules allow."""
    body = draw(st.lists(st.one_of(datetimes, options, message_numbers, acks, ack_requests, garlic_clove_blocks,
                                   unknowns), max_size=5))
    body += draw(st.lists(next_keys(), max_size=2))
    if draw(st.booleans()):
        body.append(draw(terminations))
    if draw(st.booleans()):
        body.append(draw(paddings))
    return body


@st.composite
def new_session_payloads(draw):
    body = [draw(datetimes)]
    body += draw(st.lists(st.one_of(options, garlic_clove_blocks, unknowns), max_size=4))
    if draw(st.booleans()):
        body.append(draw(paddings))
    return body
