"""Signatures by I2P signing type code (common-structures.rst "SigningPublicKey")."""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.data.errors import SignatureError
from core.data.keytypes import SIG_TYPES


def _sig_type(code: int):
    try:
        return SIG_TYPES[code]
    except KeyError:
        raise SignatureError(f"unknown signing type {code}") from None


def _ed25519_sign(private_key: bytes, data: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(data)


def _ed25519_verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _ed25519_generate(rng) -> tuple[bytes, bytes]:
    private_key = rng(32)
    return private_key, Ed25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


_SIGNERS = {7: _ed25519_sign}
_VERIFIERS = {7: _ed25519_verify}
_GENERATORS = {7: _ed25519_generate}


def sign(sig_type: int, private_key: bytes, data: bytes) -> bytes:
    spec = _sig_type(sig_type)
    signer = _SIGNERS.get(sig_type)
    if signer is None:
        raise SignatureError(f"signing with {spec.name} is not supported")
    return signer(private_key, data)


def verify(sig_type: int, public_key: bytes, data: bytes, signature: bytes) -> bool:
    """True when `signature` over `data` verifies; raises SignatureError only for an unsupported type."""
    spec = _sig_type(sig_type)
    verifier = _VERIFIERS.get(sig_type)
    if verifier is None:
        raise SignatureError(f"verifying {spec.name} is not supported")
    if len(public_key) != spec.public_key_len or len(signature) != spec.signature_len:
        return False
    return verifier(public_key, data, signature)


def generate(sig_type: int, rng=os.urandom) -> tuple[bytes, bytes]:
    """A new (private_key, public_key) pair in I2P's raw encodings."""
    spec = _sig_type(sig_type)
    generator = _GENERATORS.get(sig_type)
    if generator is None:
        raise SignatureError(f"generating {spec.name} keys is not supported")
    return generator(rng)
