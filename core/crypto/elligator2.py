"""Elligator2 for X25519 ephemeral keys (ecies.rst "2a) Elligator2").

A representative r (0 <= r <= (p-1)/2, 254 bits) maps to the Montgomery u
coordinate u = -A / (1 + 2 r^2), or -A - u when that is not on the curve
(the paper's map with non-square 2). The two top bits of the 32-byte
little-endian encoding are random padding, masked out before decoding.
"""
from __future__ import annotations

import os

from core.crypto import x25519
from core.data.errors import CryptoError

P = 2**255 - 19
A = 486662
_HALF_P = (P - 1) // 2
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_PADDING_MASK = 0xC0  # ecies.rst ENCODE_ELG2: 2 random bits OR-ed into the top byte
_MAX_KEYGEN_TRIES = 256  # each key is encodable with probability 1/2


def _sqrt_ratio(n: int, d: int) -> int | None:
    """The non-negative square root of n/d mod p (RFC 8032 5.1.3 method), None when n/d is not a square."""
    d3 = d * d % P * d % P
    root = n * d3 % P * pow(n * d3 % P * d3 % P * d % P, (P - 5) // 8, P) % P
    check = d * root % P * root % P
    if check == n % P:
        pass
    elif check == (-n) % P:
        root = root * _SQRT_M1 % P
    else:
        return None
    return P - root if root > _HALF_P else root


def encode(public_key: bytes, tweak: int) -> bytes | None:
    """The representative of an X25519 public key, or None when the key has none (about half of all keys).

    `tweak` is one random byte: bit 0 picks which of the key's two representatives to use,
    bits 6-7 become the random padding bits.
    """
    if len(public_key) != 32:
        raise CryptoError("X25519 public key must be 32 bytes")
    u = int.from_bytes(public_key, "little")
    if u >= P or pow((u * u % P + A * u + 1) * u % P, _HALF_P, P) != 1:
        return None  # a twist point's representatives would decode to -A - u
    return _encode_curve_point(u, tweak)


def _encode_curve_point(u: int, tweak: int) -> bytes | None:
    """encode() for a u known to be on the curve (as every X25519 public key made by keygen is)."""
    if u == 0 or u == P - A:
        return None
    if tweak & 1:
        r = _sqrt_ratio(-(u + A), 2 * u)
    else:
        r = _sqrt_ratio(-u, 2 * (u + A))
    if r is None:
        return None
    encoded = bytearray(r.to_bytes(32, "little"))
    encoded[31] |= tweak & _PADDING_MASK
    return bytes(encoded)


def decode(representative: bytes) -> bytes:
    """The X25519 public key a 32-byte representative stands for; CryptoError for r > (p-1)/2."""
    if len(representative) != 32:
        raise CryptoError("Elligator2 representative must be 32 bytes")
    r = int.from_bytes(representative, "little") & ((1 << 254) - 1)
    if r > _HALF_P:
        raise CryptoError("Elligator2 representative out of range")
    w = (-A) * pow(1 + 2 * r * r, -1, P) % P
    curve_value = (w * w % P + A * w + 1) * w % P
    if pow(curve_value, _HALF_P, P) == P - 1:
        w = (-w - A) % P
    return w.to_bytes(32, "little")


def generate_keypair(rng=os.urandom) -> tuple[bytes, bytes, bytes]:
    """A new (private_key, public_key, representative) whose public key is encodable (ecies.rst GENERATE_PRIVATE_ELG2)."""
    for _ in range(_MAX_KEYGEN_TRIES):
        private_key = rng(32)
        public_key = x25519.public_from_private(private_key)
        representative = _encode_curve_point(int.from_bytes(public_key, "little"), rng(1)[0])
        if representative is not None:
            return private_key, public_key, representative
    raise CryptoError(f"RNG gave no Elligator2-encodable key in {_MAX_KEYGEN_TRIES} tries")
