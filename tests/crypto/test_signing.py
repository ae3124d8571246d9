"""Signing types 0-8 and 11: RFC vectors, kept vectors, and properties.

tests/crypto/data/dsa_vector.json: x and k are SHA-256 of fixed labels reduced
mod q; r = (g^k mod p) mod q, s = k^-1 (SHA1(m) + x r) mod q, computed once by
the textbook formula. rsa_vectors.json: keys made once with cryptography's
rsa.generate_private_key(65537, bits) and PKCS#1 v1.5 signatures.
"""
import hashlib
import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings, strategies as st

from core.crypto import dsa, signing
from core.data.errors import CryptoError, SignatureError
from core.data.keytypes import SIG_TYPES

DATA = Path(__file__).parent / "data"
SIGNABLE = (0, 1, 2, 3, 7, 8, 11)
VERIFIABLE = (0, 1, 2, 3, 4, 5, 6, 7, 8, 11)


def seeded_rng(seed: int):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


# RFC 8032 section 7.1, TEST 1-3 and TEST SHA(abc)
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret,public,message,signature", RFC8032)
def test_ed25519_rfc8032(secret, public, message, signature):
    secret, public, message, signature = map(bytes.fromhex, (secret, public, message, signature))
    assert signing.public_from_private(7, secret) == public
    assert signing.sign(7, secret, message) == signature
    assert signing.verify(7, public, message, signature)
    assert not signing.verify(7, public, message + b"\x00", signature)
    assert not signing.verify(7, public, message, signature[:-1] + bytes([signature[-1] ^ 1]))


def test_ed25519_rejects_non_canonical_s():
    secret, public, message, signature = map(bytes.fromhex, RFC8032[0])
    s = int.from_bytes(signature[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    assert not signing.verify(7, public, message, signature[:32] + s.to_bytes(32, "little"))


# RFC 6979 appendix A.2.5 (P-256), A.2.6 (P-384), A.2.7 (P-521): deterministic ECDSA, messages "sample"/"test"
RFC6979_P256 = {
    "x": "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
    "ux": "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6",
    "uy": "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
    "sample": ("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
               "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
    "test": ("F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
             "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"),
}


@pytest.mark.parametrize("message", ["sample", "test"])
def test_ecdsa_p256_rfc6979_a_2_5(message):
    vector = RFC6979_P256
    private_key = bytes.fromhex(vector["x"])
    public_key = bytes.fromhex(vector["ux"] + vector["uy"])
    signature = bytes.fromhex("".join(vector[message]))
    assert signing.public_from_private(1, private_key) == public_key
    assert signing.verify(1, public_key, message.encode(), signature)
    assert signing.sign(1, private_key, message.encode()) == signature
    assert not signing.verify(1, public_key, b"other", signature)


def test_ecdsa_rejects_point_off_curve_and_zero_signature():
    public_key = bytes.fromhex(RFC6979_P256["ux"] + RFC6979_P256["uy"])
    signature = bytes.fromhex("".join(RFC6979_P256["sample"]))
    off_curve = public_key[:-1] + bytes([public_key[-1] ^ 1])
    assert not signing.verify(1, off_curve, b"sample", signature)
    assert not signing.verify(1, public_key, b"sample", bytes(64))
    assert not signing.verify(1, public_key, b"sample", b"\xff" * 64)


def test_dsa_kept_vector():
    vector = {k: bytes.fromhex(v) for k, v in json.loads((DATA / "dsa_vector.json").read_text()).items()}
    assert dsa.public_from_private(vector["private_key"]) == vector["public_key"]
    k = int.from_bytes(vector["k"], "big")
    assert pow(dsa.G, k, dsa.P) % dsa.Q == int.from_bytes(vector["signature"][:20], "big")
    assert signing.verify(0, vector["public_key"], vector["message"], vector["signature"])
    assert not signing.verify(0, vector["public_key"], vector["message"] + b"!", vector["signature"])


def test_dsa_group_is_sound():
    assert dsa.P.bit_length() == 1024 and dsa.Q.bit_length() == 160
    assert (dsa.P - 1) % dsa.Q == 0
    assert pow(dsa.G, dsa.Q, dsa.P) == 1 and dsa.G != 1


def test_dsa_round_trip_and_bad_keys():
    private_key, public_key = signing.generate(0, seeded_rng(1))
    signature = signing.sign(0, private_key, b"router info")
    assert signing.verify(0, public_key, b"router info", signature)
    assert not signing.verify(0, bytes(128), b"router info", signature)
    assert not signing.verify(0, dsa.P.to_bytes(128, "big"), b"router info", signature)
    assert not signing.verify(0, public_key, b"router info", dsa.Q.to_bytes(20, "big") + signature[20:])
    with pytest.raises(CryptoError):
        signing.sign(0, bytes(20), b"x")


@pytest.mark.parametrize("vector", json.loads((DATA / "rsa_vectors.json").read_text())["vectors"],
                         ids=lambda v: f"type{v['sig_type']}")
def test_rsa_kept_vectors(vector):
    code = vector["sig_type"]
    modulus, message, signature = (bytes.fromhex(vector[k]) for k in ("modulus", "message", "signature"))
    assert signing.verify(code, modulus, message, signature)
    assert not signing.verify(code, modulus, message + b"x", signature)
    assert not signing.verify(code, modulus[:-1] + bytes([modulus[-1] ^ 2]), message, signature)
    assert not signing.verify(code, bytes(len(modulus)), message, signature)
    with pytest.raises(SignatureError):
        signing.sign(code, bytes(SIG_TYPES[code].private_key_len), message)


def test_ed25519ph_is_ed25519_over_sha512():
    private_key = bytes(range(32))
    message = b"su3 content" * 100
    library_key = Ed25519PrivateKey.from_private_bytes(private_key)
    signature = library_key.sign(hashlib.sha512(message).digest())
    public_key = library_key.public_key().public_bytes_raw()
    assert signing.verify(8, public_key, message, signature)
    assert not signing.verify(7, public_key, message, signature)
    assert signing.sign(8, private_key, message) == signature


def test_reddsa_signature_verifies_as_plain_ed25519():
    private_key, public_key = signing.generate(11, seeded_rng(2))
    signature = signing.sign(11, private_key, b"encrypted leaseset", rng=seeded_rng(3))
    Ed25519PublicKey.from_public_bytes(public_key).verify(signature, b"encrypted leaseset")
    assert signing.verify(11, public_key, b"encrypted leaseset", signature)
    assert signing.sign(11, private_key, b"x", rng=seeded_rng(4)) != signing.sign(11, private_key, b"x", rng=seeded_rng(5))


@pytest.mark.parametrize("code", SIGNABLE)
def test_generate_sign_verify_round_trip(code):
    spec = SIG_TYPES[code]
    private_key, public_key = signing.generate(code, seeded_rng(code))
    assert (len(private_key), len(public_key)) == (spec.private_key_len, spec.public_key_len)
    assert signing.public_from_private(code, private_key) == public_key
    signature = signing.sign(code, private_key, b"payload")
    assert len(signature) == spec.signature_len
    assert signing.verify(code, public_key, b"payload", signature)
    assert not signing.verify(code, public_key, b"payloae", signature)
    assert not signing.verify(code, public_key, b"payload", signature[:-1])
    assert not signing.verify(code, public_key[:-1], b"payload", signature)


def test_generate_is_driven_by_the_injected_rng():
    for code in (0, 1, 7, 11):
        assert signing.generate(code, seeded_rng(9)) == signing.generate(code, seeded_rng(9))


def test_a_constant_rng_cannot_hang_key_generation():
    with pytest.raises(CryptoError):
        signing.generate(1, lambda n: b"\xff" * n)


@pytest.mark.parametrize("code", [9, 10, 12, 255, -1])
def test_unsupported_types_raise_signature_error(code):
    with pytest.raises(SignatureError):
        signing.verify(code, bytes(64), b"", bytes(64))
    with pytest.raises(SignatureError):
        signing.sign(code, bytes(32), b"")
    with pytest.raises(SignatureError):
        signing.generate(code)


def test_wrong_private_key_length_is_crypto_error():
    with pytest.raises(CryptoError):
        signing.sign(7, bytes(31), b"")


_KEYS = {code: signing.generate(code, seeded_rng(100 + code)) for code in SIGNABLE}
_SIGNATURES = {code: signing.sign(code, _KEYS[code][0], b"fixed message") for code in SIGNABLE}


@settings(max_examples=60, deadline=None)
@given(code=st.sampled_from(SIGNABLE), data=st.binary(max_size=200), flip=st.integers(min_value=0))
def test_wrong_data_or_flipped_signature_is_false(code, data, flip):
    public_key = _KEYS[code][1]
    signature = _SIGNATURES[code]
    if data != b"fixed message":
        assert signing.verify(code, public_key, data, signature) is False
    position = flip % (len(signature) * 8)
    flipped = bytearray(signature)
    flipped[position // 8] ^= 1 << (position % 8)
    assert signing.verify(code, public_key, b"fixed message", bytes(flipped)) is False


@settings(max_examples=150, deadline=None)
@given(code=st.sampled_from(VERIFIABLE), seed=st.binary(min_size=8, max_size=8), data=st.binary(max_size=64))
def test_random_keys_and_signatures_never_raise(code, seed, data):
    spec = SIG_TYPES[code]
    rng = seeded_rng(int.from_bytes(seed, "big"))
    public_key = rng(spec.public_key_len)
    signature = rng(spec.signature_len)
    assert signing.verify(code, public_key, data, signature) is False


@settings(max_examples=100, deadline=None)
@given(code=st.sampled_from(VERIFIABLE), public_key=st.binary(max_size=140), signature=st.binary(max_size=140))
def test_any_lengths_never_raise(code, public_key, signature):
    assert signing.verify(code, public_key, b"m", signature) in (True, False)


def test_verify_accepts_memoryview_and_bytearray():
    public_key = _KEYS[7][1]
    signature = _SIGNATURES[7]
    assert signing.verify(7, memoryview(public_key), bytearray(b"fixed message"), memoryview(signature))
    assert signing.verify(1, bytearray(_KEYS[1][1]), memoryview(b"fixed message"), bytearray(_SIGNATURES[1]))

