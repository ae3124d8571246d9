"""SHA-256, HMAC-SHA256 and HKDF as I2P uses them (ntcp2.rst "Key Derivation Function")."""
from __future__ import annotations

import hashlib


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# RFC 2104 on hashlib's SHA-256: hmac.digest() asks OpenSSL for its HMAC each call, which costs twice the two
# hashes; the key pads come from translation tables, and HKDF's expand reuses its key's pads
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_sha256 = hashlib.sha256


def _pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer key pads of `key`."""
    if len(key) > 64:
        key = _sha256(key).digest()
    key = bytes(key).ljust(64, b"\0")
    return key.translate(_IPAD), key.translate(_OPAD)


def _hmac(pads: tuple[bytes, bytes], data: bytes) -> bytes:
    return _sha256(pads[1] + _sha256(pads[0] + data).digest()).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return _hmac(_pads(key), data)


def hkdf(salt: bytes, ikm: bytes, info: bytes = b"", length: int = 64) -> bytes:
    """RFC 5869 HKDF-SHA256; I2P passes the chaining key as salt. Returns `length` bytes (<= 8160)."""
    pads = _pads(hmac_sha256(salt, ikm))
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = _hmac(pads, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]
