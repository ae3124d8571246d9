"""Tag sets and KDFs: an independent spelling of the spec's formulas, windows, bounds."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from core.garlic import kdf
from core.garlic.session import MessageKind, RatchetConfig
from core.garlic.tagset import InboundTagSet, OutboundTagSet, TagIndex, TagSetExhausted

from .helpers import CountingRng, Pair, clove

ROOT, K = bytes(range(32)), bytes(range(32, 64))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, n: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < n:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:n]


def _spec_entries(root_key: bytes, k: bytes, count: int):
    """ecies.rst "DH INITIALIZATION KDF", "4b" and "4c" written out directly."""
    keydata = _hkdf(root_key, k, b"KDFDHRatchetStep", 64)
    next_root, ck = keydata[:32], keydata[32:]
    keydata = _hkdf(ck, b"", b"TagAndKeyGenKeys", 64)
    sesstag_ck, symmkey_ck = keydata[:32], keydata[32:]
    keydata = _hkdf(sesstag_ck, b"", b"STInitialization", 64)
    tag_chain, constant = keydata[:32], keydata[32:]
    entries = []
    for _ in range(count):
        keydata = _hkdf(tag_chain, constant, b"SessionTagKeyGen", 64)
        tag_chain, tag = keydata[:32], keydata[32:40]
        keydata = _hkdf(symmkey_ck, b"", b"SymmetricRatchet", 64)
        symmkey_ck, key = keydata[:32], keydata[32:]
        entries.append((tag, key))
    return next_root, entries


def test_outbound_tag_set_matches_the_spec_formulas():
    next_root, entries = _spec_entries(ROOT, K, 5)
    tagset = OutboundTagSet(ROOT, K, tagset_id=3)
    assert tagset.next_root_key == next_root
    assert [tagset.next_entry() for _ in range(5)] == [(i, t, k) for i, (t, k) in enumerate(entries)]


def test_protocol_name_initial_states():
    # "h = SHA256(protocol_name); ck = h; h = SHA256(h)" then MixHash(bpk)
    bpk = bytes(32 * [5])
    for crypto_type, name in ((4, b"Noise_IKelg2+hs2_25519_ChaChaPoly_SHA256"),
                              (6, b"Noise_IKhfselg2_25519+MLKEM768_ChaChaPoly_SHA256")):
        h0 = hashlib.sha256(name).digest()
        state = kdf.initial_state(crypto_type, bpk)
        assert state.ck == h0
        assert state.h == hashlib.sha256(hashlib.sha256(h0).digest() + bpk).digest()
    # i2pd's precomputed SHA256("Noise_IKelg2+hs2_25519_ChaChaPoly_SHA256")
    assert hashlib.sha256(kdf.PROTOCOL_IK).digest()[:4] == bytes.fromhex("4caf11ef")


def test_other_kdfs_match_the_spec():
    assert kdf.nsr_tagset_key(ROOT) == _hkdf(ROOT, b"", b"SessionReplyTags", 32)
    assert kdf.split(ROOT) == (_hkdf(ROOT, b"", b"", 64)[:32], _hkdf(ROOT, b"", b"", 64)[32:])
    assert kdf.attach_payload_key(K) == _hkdf(K, b"", b"AttachPayloadKDF", 32)
    assert kdf.ratchet_tagset_key(K) == _hkdf(K, b"", b"XDHRatchetTagSet", 32)


def _inbound(index, **kw):
    args = dict(tagset_id=0, index=index, owner=None, purpose=None, min_window=24, max_window=160, created=0.0)
    args.update(kw)
    return InboundTagSet(ROOT, K, **args)


def test_inbound_window_grows_and_trims():
    index = TagIndex(10_000)
    inbound = _inbound(index)
    outbound = OutboundTagSet(ROOT, K)
    entries = [outbound.next_entry() for _ in range(400)]
    assert len(index) == 24
    for n, tag, key in entries[:400]:
        found = index.get(tag)
        assert found == (inbound, n)
        assert inbound.key_for(n) == key
        inbound.consume(n)
    look_ahead = min(160, 24 + 399 // 4)
    assert inbound.tag_count == look_ahead  # N+1 .. N+look_ahead
    assert index.get(entries[10][1]) is None


def test_skipped_keys_are_kept_and_trimmed():
    index = TagIndex(10_000)
    inbound = _inbound(index)
    outbound = OutboundTagSet(ROOT, K)
    entries = [outbound.next_entry() for _ in range(30)]
    assert inbound.key_for(20) == entries[20][2]
    inbound.consume(20)
    # window after N=20: tags to 20 + 29, none below 20 - 14
    assert inbound.key_for(10) == entries[10][2]          # skipped, still within the window
    assert inbound.key_for(5) is None and index.get(entries[5][1]) is None
    inbound.trim_below(12)
    assert inbound.key_for(10) is None and index.get(entries[10][1]) is None
    assert inbound.key_for(12) == entries[12][2]


def test_trim_above_for_message_number():
    index = TagIndex(10_000)
    inbound = _inbound(index)
    inbound.trim_above(4)
    assert inbound.tag_count == 5
    inbound.consume(4)
    assert inbound.tag_count == 4                          # 0-3 stay for late arrivals, nothing past 4


def test_tag_index_cap_pauses_generation_without_losing_step():
    index = TagIndex(10)
    inbound = _inbound(index)
    assert len(index) == 10 and inbound.tag_count == 10
    outbound = OutboundTagSet(ROOT, K)
    entries = [outbound.next_entry() for _ in range(40)]
    for n in range(10):
        inbound.consume(n)
    # room again: generation resumes at the right index
    assert [index.get(entries[n][1]) for n in range(10, 20)] == [(inbound, n) for n in range(10, 20)]


def test_outbound_tag_set_exhaustion():
    tagset = OutboundTagSet(ROOT, K)
    tagset.next_index = 65535
    tagset.next_entry()
    with pytest.raises(TagSetExhausted):
        tagset.next_entry()


def test_destination_tag_total_stays_under_its_cap():
    p = Pair(config=RatchetConfig(max_tags=100))
    for _ in range(20):
        p.alice.encrypt(p.b_key(), [])                    # 8 handshakes kept * 12 NSR tags
    assert p.alice.tag_count <= 100


def test_new_session_flood_costs_bounded_memory_and_cpu():
    p = Pair(config=RatchetConfig(ns_per_second=100, ns_burst=50, max_pending_inbound=16))
    rng = CountingRng(b"junk")
    for _ in range(2000):
        assert p.bob.decrypt(rng(200)) is None
    assert p.bob.stats["ns_failed"] == 50 and p.bob.stats["ns_rate_limited"] == 1950
    # valid NS from many distinct senders: pending sessions stay bounded
    p.clock.advance(10)
    senders = [Pair(seed=b"s%d" % i) for i in range(40)]
    for s in senders:
        ns = s.alice.encrypt(p.b_key(), [clove(b"hi")])
        assert p.bob.decrypt(ns.data).kind is MessageKind.NEW_SESSION
    assert p.bob.session_count <= 16
    assert p.bob.tag_count == 0                           # no tags until Bob answers
