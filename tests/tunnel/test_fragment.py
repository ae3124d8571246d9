"""Gateway fragmentation and endpoint reassembly: every size and delivery type, loss, duplicates, garbage."""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.data.errors import ParseError, ProtocolError
from core.i2np import I2NPMessage, decode_standard
from core.tunnel.fragment import (LOCAL, MAX_BODY_SIZE, FirstFragment, FollowOnFragment, TunnelDelivery,
                                  TunnelDeliveryType, TunnelFragmenter, TunnelMessage, TunnelReassembler,
                                  max_message_size, nonzero_padding)

from .helpers import seeded_rng

GATEWAY = bytes(range(32))
DELIVERIES = [LOCAL, TunnelDelivery.to_router(GATEWAY), TunnelDelivery.to_tunnel(GATEWAY, 0x01020304)]

deliveries = st.sampled_from(DELIVERIES)
first_fragments = st.builds(
    FirstFragment, deliveries, st.binary(min_size=1, max_size=200), st.none() | st.integers(0, 0xFFFFFFFF),
    st.none() | st.integers(0, 255), st.none() | st.binary(max_size=10))
follow_ons = st.builds(FollowOnFragment, st.integers(0, 0xFFFFFFFF), st.integers(1, 63), st.booleans(),
                       st.binary(min_size=1, max_size=200))


@st.composite
def tunnel_messages(draw):
    fragments = tuple(draw(st.lists(st.one_of(first_fragments, follow_ons), max_size=4)))
    return TunnelMessage.create(draw(st.binary(min_size=16, max_size=16)), fragments, seeded_rng(draw(st.integers())))


@given(tunnel_messages())
def test_tunnel_message_round_trip(message):
    data = message.to_bytes()
    assert len(data) == 1024
    assert TunnelMessage.parse(data) == message
    assert TunnelMessage.parse(data).to_bytes() == data


def test_tunnel_message_layout_and_checksum():
    fragment = FirstFragment(TunnelDelivery.to_tunnel(GATEWAY, 5), b"hello")
    message = TunnelMessage.create(b"\x11" * 16, (fragment,), seeded_rng())
    data = message.to_bytes()
    body = fragment.to_bytes()
    assert body == b"\x20" + (5).to_bytes(4, "big") + GATEWAY + b"\x00\x05hello"
    assert data.endswith(b"\x00" + body)
    assert data[16:20] == hashlib.sha256(body + b"\x11" * 16).digest()[:4]
    assert 0 not in data[20:1024 - len(body) - 1]


def test_follow_on_layout():
    fragment = FollowOnFragment(0xAABBCCDD, 5, True, b"xyz")
    assert fragment.to_bytes() == bytes([0x80 | (5 << 1) | 1]) + bytes.fromhex("AABBCCDD") + b"\x00\x03xyz"


@pytest.mark.parametrize("data", [
    bytes([0x60]) + b"\x00\x01x",  # delivery type 3
    bytes([0x01]) + b"\x00\x01x",  # reserved bit
    bytes([0x00]) + b"\x00\x00",  # size 0
    bytes([0x80]) + b"\x00\x00\x00\x01\x00\x01x",  # follow-on number 0
    bytes([0x20]) + bytes(4) + GATEWAY + b"\x00\x01x",  # tunnel id 0
    bytes([0x00]) + b"\x00\x05x",  # size runs past the end
])
def test_bad_instructions_are_parse_errors(data):
    body = data
    iv = b"\x01" * 16
    padding = b"\x07" * (MAX_BODY_SIZE - len(body))
    payload = iv + hashlib.sha256(body + iv).digest()[:4] + padding + b"\x00" + body
    with pytest.raises(ParseError):
        TunnelMessage.parse(payload)


def test_bad_checksum_and_missing_zero():
    message = TunnelMessage.create(b"\x02" * 16, (FirstFragment(LOCAL, b"abc"),), seeded_rng()).to_bytes()
    with pytest.raises(ParseError, match="checksum"):
        TunnelMessage.parse(message[:-1] + bytes([message[-1] ^ 1]))
    with pytest.raises(ParseError):
        TunnelMessage.parse(message[:20] + b"\x05" * 1004)


def _round_trip(messages, delivery, order_seed=None, clock=None):
    fragmenter = TunnelFragmenter(seeded_rng(1))
    for message_id, data in enumerate(messages, start=1):
        fragmenter.put(data, delivery, message_id)
    payloads = fragmenter.flush()
    if order_seed is not None:
        import random
        random.Random(order_seed).shuffle(payloads)
    reassembler = TunnelReassembler(clock or FakeClock(), max_pending_bytes=1 << 24)
    out = []
    for payload in payloads:
        out.extend(reassembler.receive(payload))
    return payloads, out, reassembler


@pytest.mark.parametrize("delivery", DELIVERIES, ids=["local", "router", "tunnel"])
def test_every_size_edge_through_fragmentation(delivery):
    limit = max_message_size(delivery)
    head = delivery.instructions_size + 2
    sizes = sorted({1, 2, 15, 16, 17, MAX_BODY_SIZE - head - 1, MAX_BODY_SIZE - head, MAX_BODY_SIZE - head + 1,
                    1003, 1004, 1999, 2000, 996 * 2, 996 * 2 + 1, 10_000, 32_768, limit - 996, limit - 1, limit})
    rng = seeded_rng(2)
    for size in sizes:
        data = rng(size)
        payloads, out, reassembler = _round_trip([data], delivery)
        assert [(m.delivery, m.data) for m in out] == [(delivery, data)], size
        assert reassembler.pending_count == 0
        assert all(len(p) == 1024 for p in payloads)
    with pytest.raises(ValueError):
        TunnelFragmenter(rng).put(rng(limit + 1), delivery, 1)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(1, 70_000), deliveries), min_size=1, max_size=6), st.integers(0, 100))
def test_many_messages_any_order(specs, order_seed):
    rng = seeded_rng(order_seed)
    fragmenter = TunnelFragmenter(rng)
    expected = []
    for message_id, (size, delivery) in enumerate(specs, start=1):
        size = min(size, max_message_size(delivery))
        data = rng(size)
        expected.append((delivery, data))
        fragmenter.put(data, delivery, message_id)
    payloads = fragmenter.flush()
    import random
    random.Random(order_seed).shuffle(payloads)
    reassembler = TunnelReassembler(FakeClock(), max_pending_bytes=1 << 24)
    out = [m for p in payloads for m in reassembler.receive(p)]
    key = lambda item: item[1]  # noqa: E731
    assert sorted(((m.delivery, m.data) for m in out), key=key) == sorted(expected, key=key)
    assert reassembler.pending_count == 0


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(1, 5000), deliveries), min_size=1, max_size=8), st.integers(0, 100))
def test_fragmenter_bytes_are_what_the_fragment_structures_encode(specs, seed):
    rng = seeded_rng(seed)
    fragmenter = TunnelFragmenter(rng)
    for message_id, (size, delivery) in enumerate(specs, start=1):
        fragmenter.put(rng(size), delivery, message_id)
    for payload in fragmenter.flush():
        assert len(payload) == 1024 and TunnelMessage.parse(payload).to_bytes() == payload


def test_small_messages_share_a_tunnel_message():
    payloads, out, _ = _round_trip([b"a" * 100] * 8, LOCAL)
    assert len(payloads) == 1 and len(out) == 8


def test_i2np_messages_through_the_fragmenter():
    fragmenter = TunnelFragmenter(seeded_rng(3))
    message = I2NPMessage(20, 0x12345678, 1_750_000_000_000, b"\x00\x00\x13\x88" + b"z" * 5000)
    fragmenter.put_message(message, TunnelDelivery.to_router(GATEWAY))
    payloads = fragmenter.flush()
    parsed = [TunnelMessage.parse(p) for p in payloads]
    assert parsed[0].fragments[0].message_id == 0x12345678
    reassembler = TunnelReassembler(FakeClock())
    out = [m for p in payloads for m in reassembler.receive(p)]
    assert decode_standard(out[0].data) == message


def test_lost_fragment_times_out_and_state_stays_bounded():
    clock = FakeClock()
    rng = seeded_rng(4)
    fragmenter = TunnelFragmenter(rng)
    fragmenter.put(rng(5000), LOCAL, 1)
    payloads = fragmenter.flush()
    reassembler = TunnelReassembler(clock, timeout=10.0)
    for payload in payloads[:-2] + payloads[-1:]:
        assert reassembler.receive(payload) == []
    assert reassembler.pending_count == 1
    clock.advance(11)
    assert reassembler.expire() == 1 and reassembler.pending_count == 0
    assert reassembler.receive(payloads[-2]) == []  # too late: a fresh partial that will expire too
    clock.advance(11)
    reassembler.expire()
    assert reassembler.pending_count == 0


def test_duplicate_fragments_are_ignored():
    rng = seeded_rng(5)
    data = rng(2500)
    fragmenter = TunnelFragmenter(rng)
    fragmenter.put(data, LOCAL, 9)
    payloads = fragmenter.flush()
    assert len(payloads) == 3
    reassembler = TunnelReassembler(FakeClock())
    out = []
    for payload in [payloads[0], payloads[0], payloads[1], payloads[1], payloads[2]]:
        out.extend(reassembler.receive(payload))
    assert [m.data for m in out] == [data]
    assert reassembler.dropped_fragments == 2
    assert reassembler.receive(payloads[2]) == []  # a late duplicate starts nothing that completes


def test_conflicting_fragments_drop_the_message():
    rng = seeded_rng(6)
    first = FirstFragment(LOCAL, b"a" * 100, 77)
    second = FollowOnFragment(77, 1, False, b"b" * 100)
    conflicting = FollowOnFragment(77, 1, False, b"c" * 100)
    last = FollowOnFragment(77, 2, True, b"d" * 100)
    reassembler = TunnelReassembler(FakeClock())
    for fragments in [(first,), (second,), (conflicting,), (last,)]:
        assert reassembler.receive(TunnelMessage.create(rng(16), fragments, rng).to_bytes()) == []
    assert reassembler.pending_count == 1  # only the orphaned last fragment remains, until it expires


def test_contradicting_last_markers_drop_the_message():
    rng = seeded_rng(7)
    reassembler = TunnelReassembler(FakeClock())
    for fragment in (FirstFragment(LOCAL, b"a", 5), FollowOnFragment(5, 3, True, b"c"),
                     FollowOnFragment(5, 2, True, b"b")):
        assert reassembler.receive(TunnelMessage.create(rng(16), (fragment,), rng).to_bytes()) == []
    assert reassembler.pending_count == 0


def test_pending_message_and_byte_limits():
    rng = seeded_rng(8)
    reassembler = TunnelReassembler(FakeClock(), max_pending=4, max_pending_bytes=2000)
    for message_id in range(10):
        payload = TunnelMessage.create(rng(16), (FirstFragment(LOCAL, rng(900), message_id),), rng).to_bytes()
        reassembler.receive(payload)
        assert reassembler.pending_count <= 4
    assert reassembler.pending_count == 2  # 2000 bytes hold two 900-byte partials
    assert reassembler.evicted_messages == 8


def test_nonzero_padding():
    padding = nonzero_padding(5000, seeded_rng(9))
    assert len(padding) == 5000 and 0 not in padding


def test_delivery_checks():
    with pytest.raises(ParseError):
        TunnelDelivery(TunnelDeliveryType.ROUTER)
    with pytest.raises(ParseError):
        TunnelDelivery(TunnelDeliveryType.TUNNEL, GATEWAY)
    with pytest.raises(ParseError):
        TunnelDelivery(TunnelDeliveryType.LOCAL, GATEWAY)


@given(st.binary(min_size=1024, max_size=1024))
def test_random_payloads_into_reassembler(data):
    try:
        TunnelReassembler(FakeClock()).receive(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=1003), st.binary(min_size=16, max_size=16))
def test_random_bodies_with_valid_checksum(body, iv):
    """Garbage that passes the checksum still only gives ProtocolError."""
    padding = b"\x01" * (MAX_BODY_SIZE - len(body))
    payload = iv + hashlib.sha256(body + iv).digest()[:4] + padding + b"\x00" + body
    try:
        TunnelReassembler(FakeClock()).receive(payload)
    except ProtocolError:
        pass


@given(st.one_of(first_fragments, follow_ons))
def test_encoded_size_is_the_length_of_the_encoding(fragment):
    assert fragment.encoded_size == len(fragment.to_bytes())
