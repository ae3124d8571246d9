"""Noise symmetric state (Noise spec rev 33/34, section 5.2) as NTCP2, SSU2, ECIES and tunnel builds use it."""
from __future__ import annotations

from .chacha import ChaChaPoly
from .hashes import hmac_sha256, sha256


class SymmetricState:
    """Chaining key `ck`, handshake hash `h`, and the current cipher key `k` with its nonce."""

    __slots__ = ("ck", "h", "k", "n")

    def __init__(self, protocol_name: bytes):
        h = protocol_name.ljust(32, b"\x00") if len(protocol_name) <= 32 else sha256(protocol_name)
        self.ck = h
        self.h = h
        self.k: bytes | None = None
        self.n = 0

    def copy(self) -> "SymmetricState":
        other = SymmetricState.__new__(SymmetricState)
        other.ck, other.h, other.k, other.n = self.ck, self.h, self.k, self.n
        return other

    def mix_hash(self, data: bytes) -> None:
        self.h = sha256(self.h + data)

    def mix_key(self, input_key_material: bytes) -> bytes:
        """ck, k = HKDF(ck, ikm); returns and installs the new cipher key with nonce 0."""
        temp_key = hmac_sha256(self.ck, input_key_material)
        self.ck = hmac_sha256(temp_key, b"\x01")
        self.k = hmac_sha256(temp_key, self.ck + b"\x02")
        self.n = 0
        return self.k

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        if self.k is None:
            ciphertext = plaintext
        else:
            ciphertext = ChaChaPoly(self.k).encrypt(self.n, plaintext, self.h)
            self.n += 1
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Raises CryptoError when the tag does not verify."""
        if self.k is None:
            plaintext = ciphertext
        else:
            plaintext = ChaChaPoly(self.k).decrypt(self.n, ciphertext, self.h)
            self.n += 1
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        """The two data-phase keys: HKDF(ck, zero-length)."""
        temp_key = hmac_sha256(self.ck, b"")
        k1 = hmac_sha256(temp_key, b"\x01")
        k2 = hmac_sha256(temp_key, k1 + b"\x02")
        return k1, k2
