"""Elligator2 checked both ways against Monocypher.

tests/crypto/data/elligator2_vectors.json was made once with pymonocypher 4.0.3.4
(Monocypher 4), which these tests do not import:
  encode: private_key_i = SHA-256(b"elligator2 vector private %d" % i), public key by X25519,
          tweak = SHA-256(b"elligator2 vector tweak %d" % i)[0],
          representative = crypto_elligator_rev(public_key, tweak) (null where it refuses);
  decode: representative = SHA-256(b"elligator2 vector representative %d" % i) and three
          edge cases, public_key = crypto_elligator_map(representative).
Monocypher's tweak has the same layout as ours: bit 0 picks the representative,
bits 6-7 are the padding bits.
"""
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from core.crypto import elligator2, x25519
from core.data.errors import CryptoError

VECTORS = json.loads((Path(__file__).parent / "data" / "elligator2_vectors.json").read_text())


def seeded_rng(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


@pytest.mark.parametrize("vector", VECTORS["encode"], ids=lambda v: v["public_key"][:8])
def test_encode_matches_monocypher(vector):
    public_key = bytes.fromhex(vector["public_key"])
    assert x25519.public_from_private(bytes.fromhex(vector["private_key"])) == public_key
    representative = elligator2.encode(public_key, vector["tweak"])
    if vector["representative"] is None:
        assert representative is None
    else:
        assert representative.hex() == vector["representative"]
        assert elligator2.decode(representative) == public_key


def test_vectors_cover_both_outcomes_and_both_branches():
    encodable = [v for v in VECTORS["encode"] if v["representative"] is not None]
    assert 0 < len(encodable) < len(VECTORS["encode"])
    assert {v["tweak"] & 1 for v in encodable} == {0, 1}


@pytest.mark.parametrize("vector", VECTORS["decode"], ids=lambda v: v["representative"][:8])
def test_decode_matches_monocypher(vector):
    assert elligator2.decode(bytes.fromhex(vector["representative"])).hex() == vector["public_key"]


def test_padding_bits_are_carried_and_ignored():
    _, public_key, _ = elligator2.generate_keypair(seeded_rng(1))
    plain = elligator2.encode(public_key, 0x00)
    assert plain[31] & 0xC0 == 0
    for padding in (0x40, 0x80, 0xC0):
        padded = elligator2.encode(public_key, padding)
        assert padded[31] & 0xC0 == padding
        assert padded[:31] == plain[:31] and padded[31] & 0x3F == plain[31]
        assert elligator2.decode(padded) == public_key


def test_both_representatives_decode_to_the_key():
    _, public_key, _ = elligator2.generate_keypair(seeded_rng(2))
    first, second = elligator2.encode(public_key, 0), elligator2.encode(public_key, 1)
    assert first != second
    assert elligator2.decode(first) == elligator2.decode(second) == public_key
    for representative in (first, second):
        assert int.from_bytes(representative, "little") <= (elligator2.P - 1) // 2


def test_generate_keypair():
    rng = seeded_rng(3)
    for _ in range(20):
        private_key, public_key, representative = elligator2.generate_keypair(rng)
        assert x25519.public_from_private(private_key) == public_key
        assert elligator2.decode(representative) == public_key
    assert elligator2.generate_keypair(seeded_rng(4)) == elligator2.generate_keypair(seeded_rng(4))


def test_generate_keypair_gives_up_on_a_broken_rng():
    unencodable = next(v for v in VECTORS["encode"] if v["representative"] is None)
    private_key = bytes.fromhex(unencodable["private_key"])
    with pytest.raises(CryptoError):
        elligator2.generate_keypair(lambda n: private_key if n == 32 else bytes(n))


def test_unencodable_inputs():
    assert elligator2.encode(bytes(32), 0) is None
    assert elligator2.encode((0x0101 << 240).to_bytes(32, "little"), 0) is None  # on the twist, not the curve
    assert elligator2.encode((elligator2.P - elligator2.A).to_bytes(32, "little"), 0) is None
    assert elligator2.encode(elligator2.P.to_bytes(32, "little"), 0) is None
    with pytest.raises(CryptoError):
        elligator2.encode(bytes(31), 0)


def test_decode_rejects_out_of_range_and_wrong_length():
    too_big = ((elligator2.P - 1) // 2 + 1).to_bytes(32, "little")
    with pytest.raises(CryptoError):
        elligator2.decode(too_big)
    with pytest.raises(CryptoError):
        elligator2.decode(bytes(33))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_decode_gives_a_curve_point_that_re_encodes(representative):
    masked = int.from_bytes(representative, "little") & ((1 << 254) - 1)
    if masked > (elligator2.P - 1) // 2:
        with pytest.raises(CryptoError):
            elligator2.decode(representative)
        return
    public_key = elligator2.decode(representative)
    u = int.from_bytes(public_key, "little")
    assert u < elligator2.P
    assert pow((u * u * u + elligator2.A * u * u + u) % elligator2.P, (elligator2.P - 1) // 2, elligator2.P) in (0, 1)
    if u == 0:
        assert masked == 0  # the one degenerate representative; encode refuses the low-order key 0
        return
    assert masked in {int.from_bytes(elligator2.encode(public_key, t), "little") for t in (0, 1)}


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(min_value=0, max_value=255))
def test_encode_round_trips_whenever_it_succeeds(public_key, tweak):
    representative = elligator2.encode(public_key, tweak)
    if representative is not None:
        assert representative[31] & 0xC0 == tweak & 0xC0
        assert elligator2.decode(representative) == public_key
