"""Red25519 (signing type 11): keys, key blinding and signatures.

Two signature forms exist:
- `sign`/`verify`: signing type 11 as routers use it on the network
  (encryptedleaseset.rst "Sign/Verify Calculations"): r = SHA-512(T || A || M) mod L,
  challenge and verification exactly as Ed25519, so any Ed25519 verifier accepts it.
- `sign_personalized`/`verify_personalized`: red25519.rst "RedDSA functions", with the
  personalized, length-prefixed HStar; the form of that spec's test vectors.
Keys are little-endian scalars mod L (not Ed25519 seeds) and Ed25519 point encodings.
"""
from __future__ import annotations

import hashlib
import os

import nacl.bindings

from core.crypto import edwards25519
from core.data.errors import CryptoError, SignatureError

L = edwards25519.L
_PERSONALIZATION = b"I2P_Red25519H(x)"
MAX_PERSONALIZED_MESSAGE = 65534  # red25519.rst: a length of 65535 is reserved


def reduce_scalar(data: bytes) -> bytes:
    """Any byte string (64 bytes in practice) read little-endian and reduced mod L, as 32 bytes."""
    return (int.from_bytes(data, "little") % L).to_bytes(32, "little")


def generate_private(rng=os.urandom) -> bytes:
    # red25519.rst GENERATE_PRIVATE: 64 random bytes mod L
    return reduce_scalar(rng(64))


def generate_alpha(rng=os.urandom) -> bytes:
    # red25519.rst GENERATE_RANDOM
    return reduce_scalar(rng(64))


def private_from_ed25519(seed: bytes) -> bytes:
    """red25519.rst CONVERT_ED25519_PRIVATE: the clamped Ed25519 secret scalar of a 32-byte seed."""
    if len(seed) != 32:
        raise CryptoError("Ed25519 private key must be 32 bytes")
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 63) | 64
    return bytes(scalar)


def _scalar(private_key: bytes) -> int:
    if len(private_key) != 32:
        raise CryptoError("Red25519 private key must be 32 bytes")
    return int.from_bytes(private_key, "little")


def _multiply_base(scalar: int) -> bytes:
    """ENCODE_POINT([scalar] B); libsodium does the work, it refuses only a zero scalar."""
    scalar %= L
    if scalar == 0:
        return edwards25519.encode_point(edwards25519.IDENTITY)
    return nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(scalar.to_bytes(32, "little"))


def public_from_private(private_key: bytes) -> bytes:
    # red25519.rst DERIVE_PUBLIC(sk) := [sk] B
    return _multiply_base(_scalar(private_key))


def blind_private(private_key: bytes, alpha: bytes) -> bytes:
    # red25519.rst RANDOMIZE_PRIVATE; encryptedleaseset.rst BLIND_PRIVKEY
    return ((_scalar(private_key) + _scalar(alpha)) % L).to_bytes(32, "little")


def blind_public(public_key: bytes, alpha: bytes) -> bytes:
    """red25519.rst RANDOMIZE_PUBLIC: vk + [alpha] B; CryptoError for a key that is not a curve point."""
    point = edwards25519.decode_point(public_key)
    if point is None:
        raise CryptoError("Red25519 public key is not a valid point")
    offset = edwards25519.decode_point(_multiply_base(_scalar(alpha)))
    return edwards25519.encode_point(edwards25519.add(point, offset))


def sign(private_key: bytes, message: bytes, rng=os.urandom) -> bytes:
    """Signing type 11 as on the network (encryptedleaseset.rst); verifiable as Ed25519."""
    secret = _scalar(private_key) % L
    public_key = _multiply_base(secret)
    r = int.from_bytes(hashlib.sha512(rng(80) + public_key + message).digest(), "little") % L
    r_bytes = _multiply_base(r)
    c = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % L
    return r_bytes + ((r + c * secret) % L).to_bytes(32, "little")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Signing type 11 verification: the Ed25519 equation (encryptedleaseset.rst "Same as for Ed25519")."""
    return edwards25519.verify_ed25519(public_key, message, signature)


def _hstar(prefix1: bytes, prefix2: bytes, message: bytes) -> int:
    # red25519.rst HStar: personalized, length-prefixed SHA-512 mod L
    digest = hashlib.sha512(_PERSONALIZATION + prefix1 + prefix2
                            + len(message).to_bytes(2, "little") + message).digest()
    return int.from_bytes(digest, "little") % L


def _has_small_order(point: edwards25519.Point) -> bool:
    return edwards25519.is_identity(edwards25519.multiply_by_cofactor(point))


def sign_personalized(private_key: bytes, message: bytes, rng=os.urandom) -> bytes:
    """red25519.rst SIGN."""
    if len(message) > MAX_PERSONALIZED_MESSAGE:
        raise SignatureError(f"Red25519 message of {len(message)} bytes exceeds {MAX_PERSONALIZED_MESSAGE}")
    secret = _scalar(private_key) % L
    public_key = _multiply_base(secret)
    r = _hstar(rng(80), public_key, message)
    r_bytes = _multiply_base(r)
    c = _hstar(r_bytes, public_key, message)
    return r_bytes + ((r + c * secret) % L).to_bytes(32, "little")


def verify_personalized(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """red25519.rst VERIFY (cofactored)."""
    if len(public_key) != 32 or len(signature) != 64 or len(message) > MAX_PERSONALIZED_MESSAGE:
        return False
    r_point = edwards25519.decode_point(signature[:32])
    public_point = edwards25519.decode_point(public_key)
    s = int.from_bytes(signature[32:], "little")
    if r_point is None or public_point is None or s >= L:
        return False
    # a small-order key or R lets anyone satisfy the cofactored equation; refuse them as libsodium does for Ed25519
    if _has_small_order(public_point) or _has_small_order(r_point):
        return False
    c = _hstar(signature[:32], public_key, message)
    minus_sb = edwards25519.negate(edwards25519.decode_point(_multiply_base(s)))
    total = edwards25519.add(edwards25519.add(minus_sb, r_point), edwards25519.multiply(c, public_point))
    return edwards25519.is_identity(edwards25519.multiply_by_cofactor(total))
