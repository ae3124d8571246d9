"""Tunnel layer encryption of the 1024-byte TunnelData payload (tunnel-implementation.md "Participant Processing").

A hop turns (IV, data) into (E(E(IV)), CBC-E(data) under E(IV)), with E = AES-256-ECB under the IV key and
CBC under the layer key. The creator undoes every hop's layer, last hop first: for an outbound tunnel before
sending (so the endpoint sees plaintext), for an inbound one after receiving.
"""
from __future__ import annotations

from typing import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.data.errors import CryptoError

try:   # the context factory Cipher.encryptor() calls, without its per-call type checks (two thirds of the cost)
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
    _cbc_context = _rust_openssl.ciphers.create_encryption_ctx
except (ImportError, AttributeError):  # pragma: no cover - other cryptography releases
    def _cbc_context(algorithm, mode):
        return Cipher(algorithm, mode).encryptor()

IV_SIZE = 16
PAYLOAD_SIZE = 1024  # IV + 1008 encrypted bytes (tunnel-message.rst "Tunnel Message (Encrypted)")
ENCRYPTED_SIZE = PAYLOAD_SIZE - IV_SIZE


class LayerCipher:
    """One hop's layer: AES objects built once per tunnel, a CBC context per message (the IV changes)."""

    __slots__ = ("_layer", "_iv_enc", "_iv_dec", "_layer_ecb_dec")

    def __init__(self, layer_key: bytes, iv_key: bytes):
        if len(layer_key) != 32 or len(iv_key) != 32:
            raise CryptoError("tunnel layer and IV keys are 32 bytes")
        self._layer = algorithms.AES(layer_key)
        iv_cipher = Cipher(algorithms.AES(iv_key), modes.ECB())
        self._iv_enc = iv_cipher.encryptor()
        self._iv_dec = iv_cipher.decryptor()
        self._layer_ecb_dec = Cipher(self._layer, modes.ECB()).decryptor()

    def encrypt(self, payload: bytes) -> bytes:
        """The participant's operation on IV || data (1024 bytes)."""
        if len(payload) != PAYLOAD_SIZE:
            raise CryptoError(f"tunnel payload must be {PAYLOAD_SIZE} bytes, got {len(payload)}")
        iv = self._iv_enc.update(payload[:IV_SIZE])
        data = _cbc_context(self._layer, modes.CBC(iv)).update(payload[IV_SIZE:])
        return self._iv_enc.update(iv) + data

    def decrypt(self, payload: bytes) -> bytes:
        """The inverse of encrypt(); CBC decryption as one ECB pass XORed with the shifted ciphertext."""
        if len(payload) != PAYLOAD_SIZE:
            raise CryptoError(f"tunnel payload must be {PAYLOAD_SIZE} bytes, got {len(payload)}")
        iv = self._iv_dec.update(payload[:IV_SIZE])
        data = payload[IV_SIZE:]
        blocks = self._layer_ecb_dec.update(data)
        chained = iv + data[:-IV_SIZE]
        plain = (int.from_bytes(blocks, "big") ^ int.from_bytes(chained, "big")).to_bytes(ENCRYPTED_SIZE, "big")
        return self._iv_dec.update(iv) + plain


class CreatorLayers:
    """All hops' layers of a tunnel we built (hop order: gateway side first).

    `remove()` undoes them last hop first. It serves both directions: an outbound gateway pre-decrypts
    (the hops' encryptions then reveal the plaintext at the endpoint); an inbound endpoint decrypts what
    the gateway and participants encrypted.
    """

    __slots__ = ("_reversed",)

    def __init__(self, keys: Sequence[tuple[bytes, bytes]]):
        self._reversed = tuple(LayerCipher(layer, iv) for layer, iv in reversed(keys))

    def __len__(self) -> int:
        return len(self._reversed)

    def remove(self, payload: bytes) -> bytes:
        for layer in self._reversed:
            payload = layer.decrypt(payload)
        return payload
