"""Garlic to routers (Noise N one-shot) and lookup replies under a reply key and tag (ecies-routers.rst)."""
from __future__ import annotations

import pytest

from core.clock import FakeClock
from core.crypto import x25519
from core.crypto.chacha import ChaChaPoly
from core.crypto.hashes import hkdf, sha256
from core.data.errors import CryptoError
from core.garlic.blocks import DateTime, PayloadKind, encode_payload, parse_payload
from core.garlic.routers import (RouterGarlicReceiver, encrypt_to_router, encrypt_with_reply_key,
                                 read_router_message)
from core.garlic.session import MessageKind, RatchetConfig
from core.i2np import DatabaseLookup, DatabaseSearchReply, I2NPMessage, ReplyEncryption
from core.i2np.garlic import GarlicCloveBlock, GarlicCloveDeliveryInstructions

from .helpers import CountingRng, Pair, bodies, clove

ROUTER_KEY = bytes(range(1, 33))


def _receiver(clock, **config):
    return RouterGarlicReceiver(ROUTER_KEY, clock=clock, config=RatchetConfig(**config))


def test_one_shot_to_router_round_trip():
    clock = FakeClock()
    receiver = _receiver(clock)
    data = encrypt_to_router(receiver.static_key.public_bytes, [clove(b"to router")], clock=clock,
                             rng=CountingRng(b"r"))
    got = receiver.decrypt(data)
    assert got.kind is MessageKind.ROUTER and bodies(got) == [b"to router"]
    assert isinstance(got.blocks[0], DateTime) and got.blocks[0].timestamp == int(clock.time())
    assert receiver.decrypt(data) is None and receiver.stats["replayed"] == 1


def test_router_message_matches_an_independent_noise_n_derivation():
    """Spelled out from ecies-routers.rst "KDF for Initial ck and h" / "KDF for Message" with raw hashes."""
    clock = FakeClock()
    router_public = x25519.public_from_private(ROUTER_KEY)
    data = encrypt_to_router(router_public, [], clock=clock, rng=CountingRng(b"n"), padding_max=0)
    ephemeral = data[:32]
    h = b"Noise_N_25519_ChaChaPoly_SHA256" + b"\x00"
    ck = h
    h = sha256(h)
    h = sha256(h + router_public)
    h = sha256(h + ephemeral)
    keydata = hkdf(ck, x25519.dh(ROUTER_KEY, ephemeral), b"", 64)
    payload = ChaChaPoly(keydata[32:]).decrypt(0, data[32:], h)
    assert parse_payload(payload, PayloadKind.ROUTER) == (DateTime(int(clock.time())),)


def test_router_message_to_another_key_fails():
    clock = FakeClock()
    data = encrypt_to_router(x25519.public_from_private(bytes(32 * [7])), [], clock=clock)
    with pytest.raises(CryptoError):
        read_router_message(data, _receiver(clock).static_key)


def test_router_rejects_skewed_messages():
    clock = FakeClock()
    receiver = _receiver(clock)
    old = encrypt_to_router(receiver.static_key.public_bytes, [], clock=FakeClock(clock.time() - 400))
    assert receiver.decrypt(old) is None and receiver.stats["skew"] == 1


def test_lookup_reply_by_reply_key_and_tag():
    """A DatabaseLookup carries our reply key and tag; the floodfill's reply decrypts by the tag."""
    clock = FakeClock()
    rng = CountingRng(b"lookup")
    receiver = _receiver(clock)
    lookup = DatabaseLookup(bytes(32), bytes(range(32)), reply_encryption=ReplyEncryption.ECIES,
                            reply_key=rng(32), reply_tags=(rng(8),))
    receiver.add_reply_key(lookup.reply_key, lookup.reply_tags[0])
    reply = I2NPMessage.build(DatabaseSearchReply(bytes(32), (), bytes(range(32))), 5, 1_750_000_060_000)
    block = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), reply)
    data = encrypt_with_reply_key(lookup.reply_key, lookup.reply_tags[0], [block], rng=rng)
    assert data[:8] == lookup.reply_tags[0]
    wrong = data[:-1] + bytes((data[-1] ^ 1,))
    assert receiver.decrypt(wrong) is None                  # a forgery does not use up the tag
    got = receiver.decrypt(data)
    assert got.kind is MessageKind.REPLY_KEY and got.cloves[0].message == reply
    assert receiver.decrypt(data) is None and receiver.stats["replayed_tag"] == 1
    assert len(receiver.reply_keys) == 0


def test_used_tags_are_remembered_in_fixed_memory():
    """Thousands of answered lookups: replays are still dropped, and the used-tag memory does not grow."""
    import gc
    import tracemalloc
    clock = FakeClock()
    rng = CountingRng(b"many lookups")
    receiver = _receiver(clock, used_tag_memory=4096)
    key = rng(32)
    replies = [(tag, encrypt_with_reply_key(key, tag, [], rng=rng)) for tag in (rng(8) for _ in range(6000))]

    def answer(batch):
        for tag, data in batch:
            receiver.add_reply_key(key, tag)
            assert receiver.decrypt(data).kind is MessageKind.REPLY_KEY
            clock.advance(0.01)

    answer(replies[:100])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        answer(replies[100:])
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown   # 5,900 tags kept as objects took about 0.7 MB
    assert receiver.decrypt(replies[-1][1]) is None and receiver.stats["replayed_tag"] == 1


def test_reply_in_i2pd_layout_decrypts():
    """i2pd's reply: tag || ChaChaPoly(key, nonce 0, clove block + padding, ad = tag), no DateTime."""
    key, tag = bytes(32 * [3]), bytes(8 * [9])
    payload = encode_payload([clove(b"store")]) + bytes.fromhex("fe 0002 0000")
    data = tag + ChaChaPoly(key).encrypt(0, payload, tag)
    pair = Pair()
    pair.alice.add_reply_key(key, tag)
    assert bodies(pair.alice.decrypt(data)) == [b"store"]


def test_reply_keys_expire():
    clock = FakeClock()
    receiver = _receiver(clock)
    receiver.add_reply_key(bytes(32), bytes(8), lifetime=10)
    clock.advance(11)
    receiver.upkeep()
    assert len(receiver.reply_keys) == 0


def test_router_new_session_flood_is_rate_limited():
    clock = FakeClock()
    receiver = _receiver(clock, ns_per_second=50, ns_burst=20)
    rng = CountingRng(b"flood")
    for _ in range(500):
        receiver.decrypt(rng(120))
    assert receiver.stats["failed"] == 20 and receiver.stats["rate_limited"] == 480
    clock.advance(1)
    for _ in range(500):
        receiver.decrypt(rng(120))
    assert receiver.stats["failed"] == 40                   # refilled up to the burst, no more
