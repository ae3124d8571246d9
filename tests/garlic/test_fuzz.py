"""Random and mutated bytes into every garlic entry point: only ProtocolError (parsers) or None (receivers)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.crypto.x25519 import X25519Keypair
from core.data.errors import ProtocolError
from core.garlic.routers import RouterGarlicReceiver, read_router_message
from core.garlic.session import read_new_session

from .helpers import Pair, clove


@st.composite
def mutated(draw, wire):
    """Flip, insert, delete, truncate or overwrite bytes of a valid encoding."""
    data = bytearray(draw(wire))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x07, 0x0B, 0x7F, 0x80, 0xFE, 0xFF]))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and data:
            del data[pos]
        elif action == "truncate":
            del data[pos:]
    return bytes(data)


_PAIR = Pair(seed=b"fuzz")
_PAIR.handshake()
_SAMPLES = [
    _PAIR.alice.encrypt(_PAIR.b_key(), [clove(b"ns")]).data,
    _PAIR.bob.encrypt(_PAIR.a_key(), [clove(b"es")]).data,
    _PAIR.alice.encrypt(_PAIR.b_key(), [clove(b"es")]).data,
]


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=400), mutated(st.sampled_from(_SAMPLES))))
def test_manager_decrypt_returns_none_or_a_result(data):
    for manager in (_PAIR.alice, _PAIR.bob):
        result = manager.decrypt(data)   # must never raise
        assert result is None or result.blocks is not None


@given(st.binary(max_size=300))
def test_new_session_and_router_readers_raise_only_protocol_errors(data):
    key = X25519Keypair(bytes(range(32)))
    for crypto_type in (4, 6):
        try:
            read_new_session(data, crypto_type, key)
        except ProtocolError:
            pass
    try:
        read_router_message(data, key)
    except ProtocolError:
        pass


@given(st.binary(max_size=300))
def test_router_receiver_returns_none_for_noise(data):
    receiver = RouterGarlicReceiver(bytes(range(32)), clock=FakeClock())
    assert receiver.decrypt(data) is None
