"""RFC vectors for the primitives the transports stand on."""
import hmac
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.crypto import aes, chacha, hashes, siphash, x25519
from core.data.errors import CryptoError


def test_x25519_rfc7748_section_6_1():
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert x25519.public_from_private(alice).hex() == \
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519.dh(alice, x25519.public_from_private(bob)).hex() == shared
    assert x25519.X25519Keypair(bob).dh(x25519.public_from_private(alice)).hex() == shared


def test_x25519_low_order_point_rejected():
    with pytest.raises(CryptoError):
        x25519.dh(bytes(range(32)), bytes(32))


def test_chacha20poly1305_rfc8439_2_8_2():
    key = bytes(range(0x80, 0xA0))
    nonce = bytes.fromhex("070000004041424344454647")
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
          b"for the future, sunscreen would be it.")
    ct = chacha.ChaChaPoly(key).encrypt(nonce, pt, ad)
    assert ct[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"
    assert ct[:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"
    assert chacha.ChaChaPoly(key).decrypt(nonce, ct, ad) == pt
    with pytest.raises(CryptoError):
        chacha.ChaChaPoly(key).decrypt(nonce, ct[:-1] + bytes([ct[-1] ^ 1]), ad)


def test_noise_nonce_layout():
    assert chacha.noise_nonce(1) == bytes(4) + b"\x01" + bytes(7)


def test_chacha20_rfc8439_2_4_2():
    key = bytes(range(32))
    nonce = bytes.fromhex("000000000000004a00000000")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
          b"for the future, sunscreen would be it.")
    assert chacha.chacha20(key, nonce, pt, counter=1)[:16].hex() == "6e2e359a2568f98041ba0728dd0d6981"


def test_hkdf_rfc5869_case_1():
    ikm = bytes([0x0B] * 22)
    salt = bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    okm = hashes.hkdf(salt, ikm, info, 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")


def test_hkdf_rfc5869_case_3_no_salt_no_info():
    okm = hashes.hkdf(b"", bytes([0x0B] * 22), b"", 42)
    assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                         "9d201395faa4b61a96c8")


@pytest.mark.parametrize("key, data, mac", [
    # RFC 4231 test cases 1, 2 and 6 (a key longer than the block is hashed first)
    (bytes([0x0B] * 20), b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (bytes([0xAA] * 131), b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
])
def test_hmac_sha256_rfc4231(key, data, mac):
    assert hashes.hmac_sha256(key, data).hex() == mac


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_sha256_matches_the_standard_library(key, data):
    assert hashes.hmac_sha256(key, data) == hmac.digest(key, data, "sha256")


@pytest.mark.parametrize("function", [siphash.siphash24, siphash.siphash24_python])
def test_siphash24_reference_vectors(function):
    key = bytes(range(16))
    assert function(key, b"") == 0x726FDB47DD0E0E31
    assert function(key, bytes(range(15))) == 0xA129CA6149BE45E5
    assert function(key, bytes(range(8))) == 0x93F5F5799A932462


def test_siphash24_python_matches_the_default_on_random_input():
    rng = random.Random(7)
    for size in range(40):
        key, data = rng.randbytes(16), rng.randbytes(size)
        assert siphash.siphash24_python(key, data) == siphash.siphash24(key, data)


def test_aes256_cbc_sp800_38a_f2_5():
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    pt = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    ct = aes.cbc_encrypt(key, iv, pt)
    assert ct.hex() == "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
    assert aes.cbc_decrypt(key, iv, ct) == pt
    assert aes.AesEcb(key).encrypt(pt).hex() == "f3eed1bdb5d2a03c064b5a7e3db181f8"
    with pytest.raises(CryptoError):
        aes.cbc_encrypt(key, iv, b"short")
