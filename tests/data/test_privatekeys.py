import os
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from core.crypto import signing, x25519
from core.data.errors import ParseError, ProtocolError, SignatureError
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo

FIXTURES = Path(__file__).parent / "fixtures"
# throwaway test key of a router that never joined any network (see fixtures/make_i2pd_fixture.py)
I2PD_KEYS = (FIXTURES / "i2pd-router-TESTKEY.keys").read_bytes()
I2PD_RI = (FIXTURES / "i2pd-router.info").read_bytes()


def seeded_rng(seed=1):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def test_i2pd_router_keys_match_router_info():
    keys = PrivateKeys.parse(I2PD_KEYS)
    ri = RouterInfo.parse(I2PD_RI)
    assert keys.to_bytes() == I2PD_KEYS
    assert keys.router_identity == ri.identity
    assert x25519.public_from_private(keys.private_key) == ri.identity.public_key
    assert ri.identity.verify(b"data", keys.sign(b"data"))
    assert not keys.is_offline
    # re-signing i2pd's RouterInfo content with its key gives a RouterInfo that verifies
    again = RouterInfo.create(ri.identity, keys.signing_private_key, ri.published, ri.addresses, ri.options)
    assert again.to_bytes() == I2PD_RI  # Ed25519 is deterministic


def test_generate_default_x25519_ed25519():
    keys = PrivateKeys.generate(rng=seeded_rng(1))
    dest = keys.destination
    assert dest.sig_type == 7 and dest.crypto_type == 4 and len(dest) == 391
    assert len(keys.to_bytes()) == 391 + 32 + 32
    assert x25519.public_from_private(keys.private_key) == dest.public_key
    assert dest.verify(b"m", keys.sign(b"m")) and keys.signature_len == 64
    assert PrivateKeys.parse(keys.to_bytes()) == keys


def test_generate_elgamal_field_destination():
    keys = PrivateKeys.generate(crypto_type=0, rng=seeded_rng(2))
    assert keys.destination.crypto_type == 0 and len(keys.private_key) == 256
    data = keys.to_bytes()
    assert len(data) == 391 + 256 + 32
    assert PrivateKeys.parse(data) == keys


def test_repr_has_no_private_keys():
    keys = PrivateKeys.generate(rng=seeded_rng(3))
    assert keys.signing_private_key.hex() not in repr(keys)
    assert repr(keys.private_key)[2:-1] not in repr(keys)


def test_offline_keys_round_trip_and_sign():
    keys = PrivateKeys.generate(rng=seeded_rng(4))
    offline = keys.with_offline_key(expires=1_800_000_000, rng=seeded_rng(5))
    assert offline.is_offline and not any(offline.signing_private_key)
    data = offline.to_bytes()
    # Destination, X25519 private key, zeroed signing key, expires, type, transient key, signature, transient private
    assert len(data) == 391 + 32 + 32 + 4 + 2 + 32 + 64 + 32
    assert data[455:459] == (1_800_000_000).to_bytes(4, "big") and data[459:461] == b"\x00\x07"
    again = PrivateKeys.parse(data)
    assert again == offline
    signature = again.sign(b"ls2")
    assert signing.verify(7, again.transient.public_key, b"ls2", signature)
    assert not again.destination.verify(b"ls2", signature)
    assert keys.destination.verify(again.transient.offline_signature_bytes[:38], again.transient.signature)
    with pytest.raises(SignatureError):
        offline.with_offline_key(expires=1, rng=os.urandom)


def test_offline_bad_signature_rejected():
    offline = PrivateKeys.generate(rng=seeded_rng(6)).with_offline_key(expires=1_800_000_000, rng=seeded_rng(7))
    data = bytearray(offline.to_bytes())
    data[460 + 10] ^= 1  # inside the transient public key
    with pytest.raises(SignatureError):
        PrivateKeys.parse(bytes(data))


@pytest.mark.parametrize("cut", [1, 32, 100])
def test_truncated_rejected(cut):
    with pytest.raises(ParseError):
        PrivateKeys.parse(I2PD_KEYS[:-cut])


def test_save_and_load(tmp_path):
    keys = PrivateKeys.generate(rng=seeded_rng(8))
    path = tmp_path / "dest.keys"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PrivateKeys.load(path) == keys


@given(st.binary(min_size=8, max_size=8), st.booleans())
def test_round_trip(seed, offline):
    keys = PrivateKeys.generate(rng=seeded_rng(seed))
    if offline:
        keys = keys.with_offline_key(expires=int.from_bytes(seed[:4], "big"), rng=seeded_rng(seed + b"t"))
    assert PrivateKeys.parse(keys.to_bytes()) == keys


@given(st.data())
def test_mutated_bytes(data):
    raw = bytearray(I2PD_KEYS + b"" if data.draw(st.booleans()) else
                    PrivateKeys.generate(rng=seeded_rng(9)).with_offline_key(expires=5, rng=seeded_rng(10)).to_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[:len(raw) - data.draw(st.integers(0, 40))]
    try:
        PrivateKeys.parse(bytes(raw))
    except ProtocolError:
        pass


@given(st.binary(max_size=700))
def test_random_bytes(data):
    try:
        PrivateKeys.parse(data)
    except ProtocolError:
        pass
