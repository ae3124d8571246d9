"""ML-KEM-768/1024 through cryptography: sizes per ecies-hybrid.rst, round trips, seeds, bad input."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from core.crypto import mlkem
from core.data.errors import CryptoError

PARAMS = [mlkem.MLKEM768, mlkem.MLKEM1024]


def seeded_rng(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


def test_size_table():
    # ecies-hybrid.rst "Sizes": PQ key len for NS, ciphertext len for NSR; crypto types 6 and 7
    table = {(p.crypto_type, p.encap_key_len, p.ciphertext_len) for p in PARAMS}
    assert table == {(6, 1184, 1088), (7, 1568, 1568)}
    assert mlkem.BY_CRYPTO_TYPE[6] is mlkem.MLKEM768 and mlkem.BY_CRYPTO_TYPE[7] is mlkem.MLKEM1024


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.name)
def test_round_trip_with_real_sizes(params):
    encap_key, decap_key = mlkem.keygen(params, seeded_rng(1))
    assert len(encap_key) == params.encap_key_len and len(decap_key) == mlkem.SEED_LEN
    ciphertext, shared_key = mlkem.encapsulate(params, encap_key)
    assert len(ciphertext) == params.ciphertext_len and len(shared_key) == mlkem.SHARED_KEY_LEN
    assert mlkem.decapsulate(params, decap_key, ciphertext) == shared_key
    assert mlkem.Decapsulator(params, decap_key).decapsulate(ciphertext) == shared_key
    other_ciphertext, other_shared = mlkem.encapsulate(params, encap_key)
    assert other_ciphertext != ciphertext and other_shared != shared_key


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.name)
def test_keygen_from_seed_is_deterministic(params):
    seed = bytes(range(64))
    assert mlkem.keygen_from_seed(params, seed) == mlkem.keygen_from_seed(params, seed)
    assert mlkem.keygen(params, seeded_rng(5)) == mlkem.keygen(params, seeded_rng(5))
    assert mlkem.keygen_from_seed(params, seed)[0] != mlkem.keygen_from_seed(params, bytes(64))[0]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.name)
def test_tampered_ciphertext_gives_a_different_key(params):
    encap_key, decap_key = mlkem.keygen(params, seeded_rng(2))
    ciphertext, shared_key = mlkem.encapsulate(params, encap_key)
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert mlkem.decapsulate(params, decap_key, tampered) != shared_key  # FIPS 203 implicit rejection
    _, wrong_key = mlkem.keygen(params, seeded_rng(3))
    assert mlkem.decapsulate(params, wrong_key, ciphertext) != shared_key


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.name)
def test_malformed_input_is_crypto_error(params):
    encap_key, decap_key = mlkem.keygen(params, seeded_rng(4))
    with pytest.raises(CryptoError):
        mlkem.encapsulate(params, encap_key[:-1])
    with pytest.raises(CryptoError):
        mlkem.encapsulate(params, b"\xff" * params.encap_key_len)  # coefficients >= q fail the FIPS 203 check
    with pytest.raises(CryptoError):
        mlkem.decapsulate(params, decap_key, bytes(params.ciphertext_len + 1))
    with pytest.raises(CryptoError):
        mlkem.keygen_from_seed(params, bytes(63))
    with pytest.raises(CryptoError):
        mlkem.Decapsulator(params, bytes(65))


_KEYS = {p.name: mlkem.keygen(p, seeded_rng(7)) for p in PARAMS}


@settings(max_examples=40, deadline=None)
@given(params=st.sampled_from(PARAMS), position=st.integers(min_value=0), value=st.integers(0, 255),
       cut=st.integers(min_value=0, max_value=3))
def test_mutated_inputs_give_only_crypto_errors(params, position, value, cut):
    encap_key, decap_key = _KEYS[params.name]
    mutated = bytearray(encap_key)
    mutated[position % len(mutated)] = value
    mutated = bytes(mutated[:len(mutated) - cut])
    try:
        ciphertext, shared_key = mlkem.encapsulate(params, mutated)
    except CryptoError:
        return
    assert cut == 0 and len(shared_key) == 32
    mutated_ciphertext = bytearray(ciphertext)
    mutated_ciphertext[position % len(ciphertext)] = value
    assert len(mlkem.decapsulate(params, decap_key, bytes(mutated_ciphertext))) == 32
