"""ML-KEM (FIPS 203) over raw bytes, for the hybrid ratchet (ecies-hybrid.rst "Defined ML-KEM Operations").

The decapsulation key is kept as its 64-byte seed (d || z), the form FIPS 203
keygen starts from; encapsulation keys and ciphertexts are the raw FIPS 203 encodings.
ML-KEM-512 (crypto type 5) is not offered by the underlying library.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import mlkem

from core.data.errors import CryptoError

SEED_LEN = 64
SHARED_KEY_LEN = 32


@dataclass(frozen=True, slots=True)
class MLKEMParams:
    name: str
    crypto_type: int  # common-structures.rst crypto type of the MLKEM*_X25519 hybrid
    encap_key_len: int
    ciphertext_len: int
    _private_class: type
    _public_class: type


MLKEM768 = MLKEMParams("ML-KEM-768", 6, 1184, 1088, mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey)
MLKEM1024 = MLKEMParams("ML-KEM-1024", 7, 1568, 1568, mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey)
BY_CRYPTO_TYPE = {p.crypto_type: p for p in (MLKEM768, MLKEM1024)}


def keygen_from_seed(params: MLKEMParams, seed: bytes) -> tuple[bytes, bytes]:
    """FIPS 203 ML-KEM.KeyGen_internal from a 64-byte seed: (encap_key, decap_key_seed)."""
    if len(seed) != SEED_LEN:
        raise CryptoError(f"{params.name} seed must be {SEED_LEN} bytes")
    private = params._private_class.from_seed_bytes(bytes(seed))
    return private.public_key().public_bytes_raw(), bytes(seed)


def keygen(params: MLKEMParams, rng=os.urandom) -> tuple[bytes, bytes]:
    """ecies-hybrid.rst PQ_KEYGEN: (encap_key, decap_key_seed) from the injected RNG."""
    return keygen_from_seed(params, rng(SEED_LEN))


def encapsulate(params: MLKEMParams, encap_key: bytes) -> tuple[bytes, bytes]:
    """ecies-hybrid.rst ENCAPS: (ciphertext, shared_key); CryptoError for a malformed encapsulation key.

    The encapsulation randomness comes from the library's CSPRNG (it takes no injected RNG).
    """
    if len(encap_key) != params.encap_key_len:
        raise CryptoError(f"{params.name} encapsulation key must be {params.encap_key_len} bytes")
    try:
        public = params._public_class.from_public_bytes(bytes(encap_key))
    except ValueError as exc:
        raise CryptoError(f"{params.name} encapsulation key: {exc}") from None
    shared_key, ciphertext = public.encapsulate()
    return ciphertext, shared_key


class Decapsulator:
    """A decapsulation key held as a library object, built once per key."""

    __slots__ = ("params", "_key")

    def __init__(self, params: MLKEMParams, decap_key_seed: bytes):
        if len(decap_key_seed) != SEED_LEN:
            raise CryptoError(f"{params.name} seed must be {SEED_LEN} bytes")
        self.params = params
        self._key = params._private_class.from_seed_bytes(bytes(decap_key_seed))

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """ecies-hybrid.rst DECAPS. A wrong ciphertext of the right size yields an unrelated key (implicit rejection)."""
        if len(ciphertext) != self.params.ciphertext_len:
            raise CryptoError(f"{self.params.name} ciphertext must be {self.params.ciphertext_len} bytes")
        try:
            return self._key.decapsulate(bytes(ciphertext))
        except ValueError as exc:
            raise CryptoError(f"{self.params.name} ciphertext: {exc}") from None


def decapsulate(params: MLKEMParams, decap_key_seed: bytes, ciphertext: bytes) -> bytes:
    return Decapsulator(params, decap_key_seed).decapsulate(ciphertext)
