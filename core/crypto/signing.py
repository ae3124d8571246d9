"""Signatures by I2P signing type code (common-structures.rst "SigningPublicKey", "Signature").

verify() returns False for a bad signature or a malformed key and raises
SignatureError only for a type it cannot verify; keys and signatures are the
raw encodings common-structures.rst gives (big-endian X || Y and r || s for
ECDSA, big-endian integers for DSA and RSA, little-endian for the 25519 types).
"""
from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.crypto import dsa, red25519
from core.crypto.edwards25519 import verify_ed25519
from core.data.errors import CryptoError, SignatureError
from core.data.keytypes import SIG_TYPES

_RSA_EXPONENT = 65537  # cryptography.rst "RSA": F4


def _sig_type(code: int):
    try:
        return SIG_TYPES[code]
    except KeyError:
        raise SignatureError(f"unknown signing type {code}") from None


# --- Ed25519 (7), Ed25519ph (8) ---

def _ed25519_sign(private_key: bytes, data: bytes, rng) -> bytes:
    try:
        return Ed25519PrivateKey.from_private_bytes(private_key).sign(data)
    except ValueError as exc:
        raise CryptoError(f"Ed25519 private key: {exc}") from None


def _ed25519_generate(rng) -> tuple[bytes, bytes]:
    private_key = rng(32)
    return private_key, Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


# I2P's Ed25519ph is Ed25519 over SHA-512(data) ("NonewithEdDSA" over the hash), not RFC 8032 HashEdDSA.
def _ed25519ph_sign(private_key: bytes, data: bytes, rng) -> bytes:
    return _ed25519_sign(private_key, hashlib.sha512(data).digest(), rng)


def _ed25519ph_verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    return verify_ed25519(public_key, hashlib.sha512(data).digest(), signature)


# --- RedDSA (11): network form, Ed25519-compatible verification ---

def _reddsa_sign(private_key: bytes, data: bytes, rng) -> bytes:
    return red25519.sign(private_key, data, rng)


def _reddsa_generate(rng) -> tuple[bytes, bytes]:
    private_key = red25519.generate_private(rng)
    return private_key, red25519.public_from_private(private_key)


# --- ECDSA (1-3): raw X || Y public keys, raw r || s signatures ---

class _Ecdsa:
    __slots__ = ("curve", "algorithm", "signing_algorithm", "field_len", "order")

    def __init__(self, curve: ec.EllipticCurve, hash_algorithm: hashes.HashAlgorithm, field_len: int, order: int):
        self.curve = curve
        self.algorithm = ec.ECDSA(hash_algorithm)
        # RFC 6979 nonces: signing never depends on RNG quality
        self.signing_algorithm = ec.ECDSA(hash_algorithm, deterministic_signing=True)
        self.field_len = field_len
        self.order = order

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        n = self.field_len
        r = int.from_bytes(signature[:n], "big")
        s = int.from_bytes(signature[n:], "big")
        if not (0 < r < self.order and 0 < s < self.order):
            return False
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(self.curve, b"\x04" + bytes(public_key))
            key.verify(utils.encode_dss_signature(r, s), data, self.algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    def _private_key(self, private_key: bytes) -> ec.EllipticCurvePrivateKey:
        d = int.from_bytes(private_key, "big")
        if len(private_key) != self.field_len or not 0 < d < self.order:
            raise CryptoError(f"ECDSA {self.curve.name} private key out of range")
        return ec.derive_private_key(d, self.curve)

    def _public_bytes(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        numbers = key.public_key().public_numbers()
        return numbers.x.to_bytes(self.field_len, "big") + numbers.y.to_bytes(self.field_len, "big")

    def sign(self, private_key: bytes, data: bytes, rng) -> bytes:
        r, s = utils.decode_dss_signature(self._private_key(private_key).sign(data, self.signing_algorithm))
        return r.to_bytes(self.field_len, "big") + s.to_bytes(self.field_len, "big")

    def generate(self, rng) -> tuple[bytes, bytes]:
        top_bits = self.order.bit_length() % 8 or 8
        for _ in range(256):
            candidate = bytearray(rng(self.field_len))
            candidate[0] &= (1 << top_bits) - 1
            d = int.from_bytes(candidate, "big")
            if 0 < d < self.order:
                private_key = bytes(candidate)
                return private_key, self._public_bytes(self._private_key(private_key))
        raise CryptoError("RNG gave no usable ECDSA private key in 256 tries")


_P256 = _Ecdsa(ec.SECP256R1(), hashes.SHA256(), 32,
               0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_P384 = _Ecdsa(ec.SECP384R1(), hashes.SHA384(), 48, int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
    "581A0DB248B0A77AECEC196ACCC52973", 16))
_P521 = _Ecdsa(ec.SECP521R1(), hashes.SHA512(), 66, int(
    "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16))


# --- RSA (4-6): raw big-endian modulus, e = 65537, PKCS#1 v1.5; verify only ---

class _Rsa:
    __slots__ = ("algorithm", "modulus_len")

    def __init__(self, hash_algorithm: hashes.HashAlgorithm, modulus_len: int):
        self.algorithm = hash_algorithm
        self.modulus_len = modulus_len

    def verify(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        n = int.from_bytes(public_key, "big")
        if n.bit_length() != self.modulus_len * 8 or not n & 1:
            return False
        try:
            key = rsa.RSAPublicNumbers(_RSA_EXPONENT, n).public_key()
            key.verify(bytes(signature), data, padding.PKCS1v15(), self.algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True


_RSA2048 = _Rsa(hashes.SHA256(), 256)
_RSA3072 = _Rsa(hashes.SHA384(), 384)
_RSA4096 = _Rsa(hashes.SHA512(), 512)


def _dsa_sign(private_key: bytes, data: bytes, rng) -> bytes:
    return dsa.sign(private_key, data)


_SIGNERS = {
    0: _dsa_sign,
    1: _P256.sign, 2: _P384.sign, 3: _P521.sign,
    7: _ed25519_sign, 8: _ed25519ph_sign, 11: _reddsa_sign,
}
_VERIFIERS = {
    0: dsa.verify,
    1: _P256.verify, 2: _P384.verify, 3: _P521.verify,
    4: _RSA2048.verify, 5: _RSA3072.verify, 6: _RSA4096.verify,
    7: verify_ed25519, 8: _ed25519ph_verify, 11: red25519.verify,
}
_GENERATORS = {
    0: dsa.generate,
    1: _P256.generate, 2: _P384.generate, 3: _P521.generate,
    7: _ed25519_generate, 8: _ed25519_generate, 11: _reddsa_generate,
}


def sign(sig_type: int, private_key: bytes, data: bytes, rng=os.urandom) -> bytes:
    """A signature in I2P's raw encoding; `rng` feeds RedDSA's random nonce input (others are deterministic
    or use the library's own). Raises SignatureError for an unsupported type, CryptoError for a bad key."""
    spec = _sig_type(sig_type)
    signer = _SIGNERS.get(sig_type)
    if signer is None:
        raise SignatureError(f"signing with {spec.name} is not supported")
    if len(private_key) != spec.private_key_len:
        raise CryptoError(f"{spec.name} private key must be {spec.private_key_len} bytes")
    return signer(bytes(private_key), data, rng)


def verify(sig_type: int, public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True when `signature` over `data` verifies; raises SignatureError only for an unsupported type."""
    spec = _sig_type(sig_type)
    verifier = _VERIFIERS.get(sig_type)
    if verifier is None:
        raise SignatureError(f"verifying {spec.name} is not supported")
    if len(public_key) != spec.public_key_len or len(signature) != spec.signature_len:
        return False
    return verifier(public_key, data, signature)


def generate(sig_type: int, rng=os.urandom) -> tuple[bytes, bytes]:
    """A new (private_key, public_key) pair in I2P's raw encodings."""
    spec = _sig_type(sig_type)
    generator = _GENERATORS.get(sig_type)
    if generator is None:
        raise SignatureError(f"generating {spec.name} keys is not supported")
    return generator(rng)


def public_from_private(sig_type: int, private_key: bytes) -> bytes:
    """The public key of a private key (for loading stored keys)."""
    spec = _sig_type(sig_type)
    if len(private_key) != spec.private_key_len:
        raise CryptoError(f"{spec.name} private key must be {spec.private_key_len} bytes")
    private_key = bytes(private_key)
    if sig_type == 0:
        return dsa.public_from_private(private_key)
    if sig_type in (1, 2, 3):
        ecdsa = {1: _P256, 2: _P384, 3: _P521}[sig_type]
        return ecdsa._public_bytes(ecdsa._private_key(private_key))
    if sig_type in (7, 8):
        return Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    if sig_type == 11:
        return red25519.public_from_private(private_key)
    raise SignatureError(f"deriving {spec.name} public keys is not supported")
