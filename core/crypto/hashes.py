"""SHA-256, HMAC-SHA256 and HKDF as I2P uses them (ntcp2.rst "Key Derivation Function")."""
from __future__ import annotations

import hashlib
import hmac


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def hkdf(salt: bytes, ikm: bytes, info: bytes = b"", length: int = 64) -> bytes:
    """RFC 5869 HKDF-SHA256; I2P passes the chaining key as salt. Returns `length` bytes (<= 8160)."""
    prk = hmac.digest(salt, ikm, "sha256")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]
