"""Tunnel layer encryption of the 1024-byte TunnelData payload (tunnel-implementation.md "Participant Processing").

A hop turns (IV, data) into (E(E(IV)), CBC-E(data) under E(IV)), with E = AES-256-ECB under the IV key and
CBC under the layer key. The creator undoes every hop's layer, last hop first: for an outbound tunnel before
sending (so the endpoint sees plaintext), for an inbound one after receiving.
"""
from __future__ import annotations

from typing import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.data.errors import CryptoError

IV_SIZE = 16
PAYLOAD_SIZE = 1024  # IV + 1008 encrypted bytes (tunnel-message.rst "Tunnel Message (Encrypted)")
ENCRYPTED_SIZE = PAYLOAD_SIZE - IV_SIZE


class LayerCipher:
    """One hop's layer: every AES context built once per tunnel, none per message.

    A CBC context cannot take a new IV, so encrypt() steers a long-lived CBC encryptor instead: one whose last
    output block is `s` turns the input block D(x) XOR s into x, so prefixing that block makes the next output
    chain from any IV we choose. The steering block itself comes from a CBC decryptor of the layer key fed
    s || E(IV), whose second output block is exactly D(E(IV)) XOR s: four AES calls a message, no arithmetic.
    """

    __slots__ = ("_iv_ecb", "_layer_cbc", "_layer_steer", "_layer_last", "_iv_dec")

    def __init__(self, layer_key: bytes, iv_key: bytes):
        if len(layer_key) != 32 or len(iv_key) != 32:
            raise CryptoError("tunnel layer and IV keys are 32 bytes")
        zero = bytes(IV_SIZE)
        self._iv_ecb = Cipher(algorithms.AES(iv_key), modes.ECB()).encryptor()
        self._layer_cbc = Cipher(algorithms.AES(layer_key), modes.CBC(zero)).encryptor()
        self._layer_steer = Cipher(algorithms.AES(layer_key), modes.CBC(zero)).decryptor()
        self._layer_last = zero  # the layer encryptor's chaining block
        self._iv_dec = Cipher(algorithms.AES(iv_key), modes.ECB()).decryptor()

    def encrypt(self, payload: bytes, prefix: bytes = b"") -> bytes:
        """The participant's operation on IV || data (1024 bytes): E(E(IV)) || CBC-E(data) under E(IV), after
        `prefix` (the relay path puts the next tunnel id there, saving a copy)."""
        if len(payload) != PAYLOAD_SIZE:
            raise CryptoError(f"tunnel payload must be {PAYLOAD_SIZE} bytes, got {len(payload)}")
        iv = self._iv_ecb.update(payload[:IV_SIZE])
        steer = self._layer_steer.update(self._layer_last + iv)
        out = self._layer_cbc.update(steer[IV_SIZE:] + payload[IV_SIZE:])
        self._layer_last = out[-IV_SIZE:]
        return prefix + self._iv_ecb.update(iv) + out[IV_SIZE:]

    def decrypt(self, payload: bytes) -> bytes:
        """The inverse of encrypt(): the data CBC-decrypted under D(IV), then the IV decrypted once more. The CBC
        decryptor chains from the last block it was given, so it is fed D(IV) first and that block's output dropped."""
        if len(payload) != PAYLOAD_SIZE:
            raise CryptoError(f"tunnel payload must be {PAYLOAD_SIZE} bytes, got {len(payload)}")
        iv = self._iv_dec.update(payload[:IV_SIZE])
        plain = self._layer_steer.update(iv + payload[IV_SIZE:])
        return self._iv_dec.update(iv) + plain[IV_SIZE:]


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
