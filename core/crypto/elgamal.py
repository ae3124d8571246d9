"""ElGamal-2048 as I2P uses it (cryptography.rst "ElGamal"): RFC 3526 group 14, generator 2, and the 514-byte
block holding a nonzero byte, SHA-256(data) and up to 222 bytes of data."""
from __future__ import annotations

import os

from core.data.errors import CryptoError

from .hashes import sha256

# cryptography.rst "ElGamal": the Oakley prime for 2048-bit keys (RFC 3526 section 3)
P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)
G = 2
KEY_LEN = 256                 # PublicKey and PrivateKey
BLOCK_LEN = 514               # two parts, each zero-padded to 257 bytes
MAX_DATA = 222
SHORT_EXPONENT_BITS = 226     # cryptography.rst "Short Exponent": for the per-message k, as i2pd does
_PART = 257
_HASH_LEN = 32


def generate_private(rng=os.urandom) -> bytes:
    """A full 2048-bit private exponent in [1, p-2]."""
    return (int.from_bytes(rng(KEY_LEN), "big") % (P - 2) + 1).to_bytes(KEY_LEN, "big")


def public_from_private(private_key: bytes) -> bytes:
    if len(private_key) != KEY_LEN:
        raise ValueError("ElGamal private key must be 256 bytes")
    return pow(G, int.from_bytes(private_key, "big"), P).to_bytes(KEY_LEN, "big")


def encrypt(public_key: bytes, data: bytes, rng=os.urandom) -> bytes:
    """The 514-byte block for `data` (at most 222 bytes; callers pad to 222 with random bytes)."""
    if len(data) > MAX_DATA:
        raise ValueError(f"ElGamal data is at most {MAX_DATA} bytes, got {len(data)}")
    y = int.from_bytes(public_key, "big") if len(public_key) == KEY_LEN else 0
    if not 1 < y < P - 1:
        raise CryptoError("ElGamal: unusable public key")
    nonzero = rng(1)[0] or 0xFF   # "a random nonzero byte"
    m = int.from_bytes(bytes((nonzero,)) + sha256(data) + data, "big")
    k = 0
    while k == 0:
        k = int.from_bytes(rng(29), "big") >> (29 * 8 - SHORT_EXPONENT_BITS)
    a, b = pow(G, k, P), pow(y, k, P) * m % P
    return a.to_bytes(_PART, "big") + b.to_bytes(_PART, "big")


def decrypt(private_key: bytes, block: bytes) -> bytes:
    """The data of a 514-byte block; CryptoError when it is not one for this key (the SHA-256 check fails)."""
    if len(block) != BLOCK_LEN:
        raise CryptoError(f"ElGamal: block of {len(block)} bytes, expected {BLOCK_LEN}")
    a, b = int.from_bytes(block[:_PART], "big"), int.from_bytes(block[_PART:], "big")
    if not (1 < a < P and 0 < b < P):
        raise CryptoError("ElGamal: block values out of range")
    x = int.from_bytes(private_key, "big")
    m = (b * pow(a, P - 1 - x, P) % P).to_bytes(KEY_LEN, "big").lstrip(b"\x00")
    # the plaintext is a nonzero byte, the hash, the data: leading zeros of the number are not part of it
    if len(m) < 1 + _HASH_LEN or sha256(m[1 + _HASH_LEN:]) != m[1:1 + _HASH_LEN]:
        raise CryptoError("ElGamal: SHA-256 check failed (not for this key, or corrupt)")
    return m[1 + _HASH_LEN:]
