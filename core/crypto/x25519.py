"""X25519 (RFC 7748) over raw 32-byte keys."""
from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from core.data.errors import CryptoError

_ZERO = bytes(32)


def generate_private(rng=os.urandom) -> bytes:
    """A clamped-by-X25519 32-byte private key from the injected RNG."""
    return rng(32)


def public_from_private(private_key: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def dh(private_key: bytes, public_key: bytes) -> bytes:
    """Shared secret; raises CryptoError on a low-order peer key (all-zero result)."""
    try:
        shared = X25519PrivateKey.from_private_bytes(private_key).exchange(
            X25519PublicKey.from_public_bytes(public_key))
    except ValueError as exc:
        raise CryptoError(f"X25519: {exc}") from None
    if shared == _ZERO:
        raise CryptoError("X25519: low-order public key")
    return shared


class X25519Keypair:
    """A private key kept as a library object, for static keys used on every handshake."""

    __slots__ = ("private_bytes", "public_bytes", "_key")

    def __init__(self, private_key: bytes):
        self._key = X25519PrivateKey.from_private_bytes(private_key)
        self.private_bytes = private_key
        self.public_bytes = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, rng=os.urandom) -> "X25519Keypair":
        return cls(rng(32))

    def dh(self, public_key: bytes) -> bytes:
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(public_key))
        except ValueError as exc:
            raise CryptoError(f"X25519: {exc}") from None
        if shared == _ZERO:
            raise CryptoError("X25519: low-order public key")
        return shared
