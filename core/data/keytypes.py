"""Signing and crypto key types by code (common-structures.rst "Key Certificates")."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SigType:
    code: int
    name: str
    public_key_len: int
    private_key_len: int
    signature_len: int


@dataclass(frozen=True, slots=True)
class CryptoType:
    code: int
    name: str
    public_key_len: int


SIG_TYPES: dict[int, SigType] = {t.code: t for t in (
    SigType(0, "DSA_SHA1", 128, 20, 40),
    SigType(1, "ECDSA_SHA256_P256", 64, 32, 64),
    SigType(2, "ECDSA_SHA384_P384", 96, 48, 96),
    SigType(3, "ECDSA_SHA512_P521", 132, 66, 132),
    SigType(4, "RSA_SHA256_2048", 256, 512, 256),
    SigType(5, "RSA_SHA384_3072", 384, 768, 384),
    SigType(6, "RSA_SHA512_4096", 512, 1024, 512),
    SigType(7, "EdDSA_SHA512_Ed25519", 32, 32, 64),
    SigType(8, "EdDSA_SHA512_Ed25519ph", 32, 32, 64),
    SigType(9, "GOST_R3410_2012_256", 64, 32, 64),          # reserved, proposal 134
    SigType(10, "GOST_R3410_2012_512", 128, 64, 128),        # reserved, proposal 134
    SigType(11, "RedDSA_SHA512_Ed25519", 32, 32, 64),
)}

CRYPTO_TYPES: dict[int, CryptoType] = {t.code: t for t in (
    CryptoType(0, "ElGamal", 256),
    CryptoType(1, "P256", 64),
    CryptoType(2, "P384", 96),
    CryptoType(3, "P521", 132),
    CryptoType(4, "X25519", 32),
    CryptoType(5, "MLKEM512_X25519", 32),
    CryptoType(6, "MLKEM768_X25519", 32),
    CryptoType(7, "MLKEM1024_X25519", 32),
)}

SIG_ED25519 = 7
SIG_REDDSA = 11
CRYPTO_ELGAMAL = 0
CRYPTO_X25519 = 4
