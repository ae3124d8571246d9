"""ElGamal/AES+SessionTags (legacy/elgamal-aes.md): block format, new and existing sessions, tag delivery,
confirmation, expiry and bounds, malformed input."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from core.clock import FakeClock
from core.crypto import aes, elgamal
from core.data.errors import ProtocolError
from core.garlic.elgamal_aes import (ElGamalAesConfig, ElGamalAesManager, encode_aes_block, read_aes_block)
from tests.garlic.helpers import CountingRng

# one key pair for the module: ElGamal key generation costs ~25 ms
BOB_KEY = elgamal.generate_private(CountingRng(b"bob"))


def pair(config: ElGamalAesConfig = ElGamalAesConfig()):
    clock = FakeClock()
    alice = ElGamalAesManager(None, clock=clock, rng=CountingRng(b"alice"), config=config)
    bob = ElGamalAesManager(BOB_KEY, clock=clock, rng=CountingRng(b"bob-rng"), config=config)
    return clock, alice, bob


def test_aes_block_layout_per_spec():
    tag = bytes(range(32))
    block = encode_aes_block([tag], b"payload", CountingRng(b"p"))
    assert len(block) % 16 == 0
    assert block[:2] == b"\x00\x01" and block[2:34] == tag
    assert block[34:38] == (7).to_bytes(4, "big") and block[38:70] == hashlib.sha256(b"payload").digest()
    assert block[70] == 0 and block[71:78] == b"payload"
    assert read_aes_block(block) == ((tag,), b"payload")


@pytest.mark.parametrize("mutate", [
    lambda b: b[:32],                                   # shorter than the 48-byte minimum
    lambda b: b[:-1],                                   # not a multiple of 16
    lambda b: b"\x00\xc9" + b[2:],                      # 201 tags
    lambda b: b"\x00\x09" + b[2:],                      # more tags than bytes
    lambda b: b[:34] + b"\x00\x00\xff\xff" + b[38:],    # payload size past the end
    lambda b: b[:38] + bytes(32) + b[70:],              # payload hash mismatch
    lambda b: b[:70] + b"\x02" + b[71:],                # unknown flag
])
def test_malformed_aes_blocks_raise_parse_errors(mutate):
    block = encode_aes_block([bytes(32)], b"x" * 40, CountingRng(b"m"))
    with pytest.raises(ProtocolError):
        read_aes_block(mutate(block))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_read_aes_block_raises_only_protocol_errors(data):
    try:
        read_aes_block(data)
    except ProtocolError:
        pass


def test_new_session_then_tags_after_confirmation():
    clock, alice, bob = pair()
    key = bob.public_key
    assert alice.wants_tags(key)
    first = alice.encrypt(key, b"hello", tags_message_id=7)
    assert first.new_session and first.tags_sent == 40 and len(first.data) >= 514 + 48
    assert bob.decrypt_existing(first.data) is None
    got = bob.decrypt_new(first.data)
    assert got.payload == b"hello" and got.new_session and got.tags_received == 40
    assert bob.inbound_tag_count == 40
    # not confirmed yet: still New Session, and no second batch while one waits
    second = alice.encrypt(key, b"again")
    assert second.new_session and not alice.wants_tags(key)
    clock.mono += ElGamalAesConfig().retry_after    # that DeliveryStatus is overdue: a second batch may go
    assert alice.wants_tags(key)
    assert bob.decrypt_new(second.data).payload == b"again"
    assert alice.confirm(7) and not alice.confirm(7) and alice.usable_tags(key) == 40
    third = alice.encrypt(key, b"tagged")
    assert not third.new_session and len(third.data) % 16 == 0
    got = bob.decrypt_existing(third.data)
    assert got.payload == b"tagged" and not got.new_session and bob.inbound_tag_count == 39
    # a tag opens one message only; a replayed New Session is dropped before any ElGamal work
    assert bob.decrypt_existing(third.data) is None
    assert bob.decrypt_new(first.data) is None and bob.stats["replayed_new"] == 1


def test_new_batch_at_the_low_mark_and_tags_expire():
    config = ElGamalAesConfig(tags_to_send=6)
    clock, alice, bob = pair(config)
    key = bob.public_key
    bob.decrypt_new(alice.encrypt(key, b"a", tags_message_id=1).data)
    alice.confirm(1)
    for n in range(2):
        assert not alice.wants_tags(key)
        assert bob.decrypt_existing(alice.encrypt(key, b"%d" % n).data).payload == b"%d" % n
    assert alice.wants_tags(key)                 # 4 = 2/3 of a batch left
    alice.encrypt(key, b"2")
    # outbound tags end before the far end forgets them; unconfirmed batches end too
    clock.mono += config.outbound_tag_lifetime + 1
    assert alice.usable_tags(key) == 3 and alice.wants_tags(key) and alice.usable_tags(key) == 0
    alice.encrypt(key, b"b", tags_message_id=2)
    clock.mono += config.confirm_timeout + 1
    assert alice.wants_tags(key) and not alice.confirm(2)
    clock.mono += config.inbound_tag_lifetime
    bob.upkeep()
    assert bob.inbound_tag_count == 0


def test_seal_for_self_round_trip_needs_no_elgamal_key():
    _, alice, _ = pair()
    sealed = alice.seal_for_self(b"status")
    assert alice.decrypt_existing(sealed).payload == b"status"
    assert alice.decrypt_existing(sealed) is None


def test_bounds_on_inbound_tags_and_sessions():
    config = ElGamalAesConfig(tags_to_send=50, max_inbound_tags=60, max_sessions=2)
    _, alice, bob = pair(config)
    for n in range(2):
        bob.decrypt_new(alice.encrypt(bob.public_key, b"x", tags_message_id=n).data)
    assert bob.inbound_tag_count == 60 and bob.stats["inbound_tags_evicted"] == 40
    for n in range(3):
        alice.encrypt(elgamal.public_from_private((n + 2).to_bytes(256, "big")), b"y")
    assert len(alice._sessions) == 2


def test_undecryptable_input_is_dropped_not_raised():
    _, alice, bob = pair()
    good = alice.encrypt(bob.public_key, b"z").data
    assert bob.decrypt_new(good[:514] + bytes(16) + good[530:]) is None and bob.stats["aes_malformed"] == 1
    assert bob.decrypt_new(bytes(514 + 48)) is None
    assert bob.decrypt_new(good[:514] + b"\x01" * 15) is None
    assert ElGamalAesManager(None, clock=FakeClock()).decrypt_new(good) is None
    other = ElGamalAesManager(elgamal.generate_private(CountingRng(b"o")), clock=FakeClock())
    assert other.decrypt_new(good) is None and other.stats["new_failed"] == 1


def test_new_session_decryptions_are_rate_limited():
    config = ElGamalAesConfig(new_session_per_second=1, new_session_burst=2)
    _, alice, bob = pair(config)
    messages = [alice.encrypt(bob.public_key, b"%d" % n).data for n in range(3)]
    assert [bob.decrypt_new(m) is not None for m in messages] == [True, True, False]
    assert bob.stats["new_rate_limited"] == 1


def test_existing_session_wire_format():
    """Tag, then the AES block under the session key with IV = SHA-256(tag)[:16]."""
    _, alice, bob = pair()
    first = alice.encrypt(bob.public_key, b"n", tags_message_id=1)
    session_key = elgamal.decrypt(BOB_KEY, first.data[:514])[:32]
    alice.confirm(1)
    data = alice.encrypt(bob.public_key, b"wire").data
    block = aes.cbc_decrypt(session_key, hashlib.sha256(data[:32]).digest()[:16], data[32:])
    assert read_aes_block(block) == ((), b"wire")


def test_a_busy_session_gets_bigger_batches():
    """Tags ran out while the next batch was unconfirmed: the batch doubles, up to max_tags_to_send."""
    config = ElGamalAesConfig(tags_to_send=3, max_tags_to_send=10)
    clock, alice, bob = pair(config)
    key = bob.public_key
    alice.encrypt(key, b"", tags_message_id=1)
    alice.confirm(1)
    sizes = []
    for n in range(2, 8):
        while alice.usable_tags(key):
            alice.encrypt(key, b"", tags_message_id=n if alice.wants_tags(key) else None)
        assert alice.encrypt(key, b"").new_session            # ran out before confirmation
        sizes.append(alice.encrypt(key, b"", tags_message_id=100 + n).tags_sent)
        alice.confirm(n)
        alice.confirm(100 + n)
    assert sizes == [6, 10, 10, 10, 10, 10]
