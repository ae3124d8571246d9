"""ML-KEM-768 hybrid ratchet (ecies-hybrid.rst, crypto type 6) and its fallback to X25519."""
from __future__ import annotations

from core.garlic.session import MessageKind, RatchetConfig

from .helpers import Pair, bodies, clove

MLKEM768 = 6


def test_hybrid_session_sizes_and_life():
    p = Pair(alice_types=(4, MLKEM768), bob_types=(4, MLKEM768), config=RatchetConfig(padding_max=0))
    c = clove(b"pq")
    pl = len(c.to_block())
    ns = p.alice.encrypt(p.b_key(MLKEM768), [c], crypto_type=MLKEM768)
    assert len(ns.data) == 1296 + 7 + pl                  # ecies-hybrid.rst "NS Format" sizes
    got = p.bob.decrypt(ns.data)
    assert got.kind is MessageKind.NEW_SESSION and got.session.crypto_type == MLKEM768
    assert got.remote_static_key == p.a_key(MLKEM768)
    nsr = p.bob.encrypt(p.a_key(MLKEM768), [c])
    assert len(nsr.data) == 1176 + pl                      # "NSR Format" sizes
    assert bodies(p.alice.decrypt(nsr.data)) == [b"pq"]
    for i in range(30):
        m = p.alice.encrypt(p.b_key(MLKEM768), [clove(b"%d" % i)])
        assert len(m.data) == 24 + len(clove(b"%d" % i).to_block())   # ES is unchanged
        assert bodies(p.bob.decrypt(m.data)) == [b"%d" % i]
        m = p.bob.encrypt(p.a_key(MLKEM768), [clove(b"r%d" % i)])
        assert bodies(p.alice.decrypt(m.data)) == [b"r%d" % i]


def test_hybrid_receiver_still_accepts_x25519_new_sessions():
    p = Pair(alice_types=(4,), bob_types=(4, MLKEM768))
    ns = p.alice.encrypt(p.b_key(4), [clove(b"x" * 1400)])  # long enough to be tried as hybrid first
    got = p.bob.decrypt(ns.data)
    assert got.kind is MessageKind.NEW_SESSION and got.session.crypto_type == 4
    assert bodies(p.alice.decrypt(p.bob.encrypt(p.a_key(), [clove(b"ok")]).data)) == [b"ok"]


def test_hybrid_one_time_message():
    p = Pair(alice_types=(4,), bob_types=(MLKEM768,))
    m = p.alice.encrypt_one_time(p.b_key(MLKEM768), [clove(b"raw")], crypto_type=MLKEM768)
    got = p.bob.decrypt(m.data)
    assert got.kind is MessageKind.ONE_TIME and bodies(got) == [b"raw"]


def test_tampered_kem_ciphertext_fails_the_reply():
    p = Pair(alice_types=(MLKEM768,), bob_types=(MLKEM768,))
    p.bob.decrypt(p.alice.encrypt(p.b_key(MLKEM768), [], crypto_type=MLKEM768).data)
    nsr = bytearray(p.bob.encrypt(p.a_key(MLKEM768), []).data)
    nsr[50] ^= 1
    assert p.alice.decrypt(bytes(nsr)) is None
    assert not p.alice.session(p.b_key(MLKEM768)).established


def test_leaseset2_key_choice_picks_hybrid_only_when_both_ends_offer_it():
    from core.data.leaseset import Lease2, LeaseSet2
    from core.data.privatekeys import PrivateKeys

    from .helpers import CountingRng

    p = Pair(alice_types=(4, MLKEM768), bob_types=(4, MLKEM768))
    keys = PrivateKeys.generate(rng=CountingRng(b"bob-dest"))
    ls = LeaseSet2.create(keys, published=1_750_000_000, expires_offset=600,
                          encryption_keys=[(MLKEM768, p.b_key(MLKEM768)), (4, p.b_key(4))],
                          leases=[Lease2(bytes(32), 1, 1_750_000_600)])
    crypto_type, key = ls.select_encryption_key(p.alice.crypto_types)
    assert crypto_type == MLKEM768
    ns = p.alice.encrypt(key, [clove(b"pq")], crypto_type=crypto_type)
    assert p.bob.decrypt(ns.data).session.crypto_type == MLKEM768
    x25519_only = Pair(alice_types=(4,), bob_types=(4, MLKEM768))
    assert ls.select_encryption_key(x25519_only.alice.crypto_types)[0] == 4
