"""b33 addresses (checked against i2pd 2.45.1) and the daily blinded keys of encrypted leasesets."""
import random
import zlib

import pytest
from hypothesis import given, strategies as st

from core.crypto import red25519, signing
from core.data.encoding import b32decode, b32encode
from core.data.errors import ParseError, ProtocolError
from core.data.leaseset import EncryptedLeaseSet
from core.data.leaseset_blinding import (BlindedAddress, blind_private_key, date_string, generate_alpha,
                                         is_blinded_b32)
from core.data.privatekeys import PrivateKeys

NOW = 1_750_000_000  # 2025-06-15 15:06:40 UTC

# i2pd 2.45.1's web console ("Encrypted B33 address") for destinations with these signing keys
I2PD_B33 = [
    (7, "b7eab9c081d5bb8a93ef8204f4034eca3a4cfc2cce2c59c2c20e8ede248a26fa",
     "lzqv7n7kxhaidvn3rkj67aqe6qbu5sr2jt6cztrmlhbmeduo3ysiujx2.b32.i2p"),
    (11, "ea24eab19c0c6ec2a7652eec2bc3aff74e4bbf750e1db2942e05cb42d6c73e43",
     "djk6t2re5kyzyddoyktwklxmfpb2752ojo7xkdq5wkkc4bolillmopsd.b32.i2p"),
]


def seeded_rng(seed):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


@pytest.mark.parametrize("sig_type,public_hex,hostname", I2PD_B33)
def test_b33_matches_i2pd(sig_type, public_hex, hostname):
    address = BlindedAddress(sig_type, 11, bytes.fromhex(public_hex))
    assert address.hostname == hostname
    assert BlindedAddress.parse(hostname) == address
    assert BlindedAddress.parse(hostname.upper()[:-8]) == address
    assert is_blinded_b32(hostname) and len(b32decode(hostname[:-8])) == 35


def test_b33_layout_by_hand():
    key = bytes(range(32))
    checksum = zlib.crc32(key)
    data = BlindedAddress(7, 11, key, secret_required=True, client_auth_required=True).to_bytes()
    assert data == bytes([0x06 ^ checksum & 0xFF, 7 ^ (checksum >> 8) & 0xFF, 11 ^ (checksum >> 16) & 0xFF]) + key
    parsed = BlindedAddress.from_bytes(data)
    assert parsed.secret_required and parsed.client_auth_required


def test_b33_two_byte_sig_types_decode():
    key = bytes(range(32))
    data = bytearray(b"\x01" + b"\x00\x07" + b"\x00\x0b" + key)
    checksum = zlib.crc32(bytes(data[3:]))
    for i in range(3):
        data[i] ^= (checksum >> (8 * i)) & 0xFF
    address = BlindedAddress.parse(b32encode(bytes(data)) + ".b32.i2p")
    assert (address.sig_type, address.blinded_sig_type, address.public_key) == (7, 11, key)


def test_b33_rejections():
    good = I2PD_B33[0][2]
    with pytest.raises(ParseError, match="at least 56"):
        BlindedAddress.parse("a" * 52 + ".b32.i2p")
    text = good[:-8]
    for i in (0, 5, 30, 54):  # a changed character anywhere breaks the CRC-masked header
        wrong = text[:i] + ("a" if text[i] != "a" else "b") + text[i + 1:]
        with pytest.raises(ParseError):
            BlindedAddress.parse(wrong)
    with pytest.raises(ParseError):
        BlindedAddress.parse(text + "a")  # 57 characters: non-zero unused bits or wrong length
    key = bytes(range(32))
    with pytest.raises(ParseError, match="cannot be blinded"):
        BlindedAddress(1, 11, bytes(64))
    with pytest.raises(ParseError, match="blinded signing type"):
        BlindedAddress(7, 7, key)
    with pytest.raises(ParseError, match="length"):
        BlindedAddress(7, 11, key[:31])
    assert not is_blinded_b32("a" * 52 + ".b32.i2p") and not is_blinded_b32(text)


@given(st.binary(max_size=80))
def test_b33_random_input_raises_only_protocol_errors(data):
    for parse in (lambda: BlindedAddress.from_bytes(data), lambda: BlindedAddress.parse(b32encode(data))):
        try:
            parse()
        except ProtocolError:
            pass


@given(st.sampled_from([7, 11]), st.binary(min_size=32, max_size=32), st.booleans(), st.booleans())
def test_b33_round_trip(sig_type, key, secret, auth):
    address = BlindedAddress(sig_type, 11, key, secret, auth)
    assert BlindedAddress.parse(address.hostname) == address
    assert BlindedAddress.from_bytes(address.to_bytes()) == address


def test_date_string_is_the_utc_day():
    assert date_string(NOW) == b"20250615"
    assert date_string(1_750_032_000 - 1) == b"20250615" and date_string(1_750_032_000) == b"20250616"


@pytest.mark.parametrize("sig_type", [7, 11])
def test_blinded_keys_agree_and_sign_an_encrypted_leaseset(sig_type):
    keys = PrivateKeys.generate(sig_type, 4, seeded_rng(sig_type))
    address = BlindedAddress.for_destination(keys.destination)
    alpha = address.alpha(NOW)
    assert alpha == generate_alpha(keys.destination.signing_public_key, sig_type, 11, NOW)
    blinded_private = blind_private_key(sig_type, keys.signing_private_key, alpha)
    blinded_public = address.blinded_public_key(NOW)
    # encryptedleaseset.rst: BLIND_PRIVKEY and BLIND_PUBKEY give the same A'
    assert red25519.public_from_private(blinded_private) == blinded_public
    els = EncryptedLeaseSet.create(lambda d: signing.sign(11, blinded_private, d, seeded_rng(9)),
                                   blinded_sig_type=11, blinded_public_key=blinded_public, published=NOW,
                                   expires_offset=600, encrypted_data=b"\x00" * 64)
    parsed = EncryptedLeaseSet.parse(els.to_bytes())
    assert parsed.verify(NOW) and parsed.hash == address.store_hash(NOW)


def test_blinding_changes_with_day_and_secret():
    address = BlindedAddress(7, 11, bytes.fromhex(I2PD_B33[0][1]))
    today = address.blinded_public_key(NOW)
    assert address.blinded_public_key(NOW + 3600) == today          # same UTC day
    assert address.blinded_public_key(NOW + 86400) != today
    assert address.blinded_public_key(NOW, "secret") != today
    assert address.store_hash(NOW) != address.store_hash(NOW + 86400)
    assert today != address.public_key


def test_alpha_by_the_spec_formula():
    from core.crypto.hashes import hkdf, sha256
    key = bytes.fromhex(I2PD_B33[0][1])
    seed = hkdf(sha256(b"I2PGenerateAlpha" + key + b"\x00\x07\x00\x0b"), b"20250615" + "pw".encode(),
                b"i2pblinding1", 64)
    expected = (int.from_bytes(seed, "little") % red25519.L).to_bytes(32, "little")
    assert generate_alpha(key, 7, 11, NOW, "pw") == expected


def test_blind_private_key_rejects_other_types():
    with pytest.raises(ParseError):
        blind_private_key(1, bytes(32), bytes(32))
