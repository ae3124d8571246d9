"""AES-256 in CBC (no padding) and ECB, as I2P uses it (NTCP2 key obfuscation, tunnel layers)."""
from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.data.errors import CryptoError


def _check(data: bytes) -> None:
    if len(data) % 16:
        raise CryptoError(f"AES: length {len(data)} is not a multiple of 16")


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check(data)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    _check(data)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


class AesEcb:
    """A key's ECB encryptor/decryptor, reused per tunnel (IV key) on the hot path."""

    __slots__ = ("_enc", "_dec")

    def __init__(self, key: bytes):
        cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()

    def encrypt(self, data: bytes) -> bytes:
        _check(data)
        return self._enc.update(data)

    def decrypt(self, data: bytes) -> bytes:
        _check(data)
        return self._dec.update(data)
