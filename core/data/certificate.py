"""Certificate and Key Certificate (common-structures.rst "Certificate", "Key Certificates")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Self

from .errors import ParseError
from .keytypes import CRYPTO_TYPES, SIG_TYPES, CryptoType, SigType
from .reader import Reader

KEYS_AND_CERT_BLOCK = 384
"""Bytes before the certificate in a KeysAndCert: public key, padding, signing key."""


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_type: int
    payload: bytes = b""

    NULL: ClassVar[int] = 0
    HASHCASH: ClassVar[int] = 1
    HIDDEN: ClassVar[int] = 2
    SIGNED: ClassVar[int] = 3
    MULTIPLE: ClassVar[int] = 4
    KEY: ClassVar[int] = 5

    def __post_init__(self) -> None:
        problem = _payload_problem(self.cert_type, len(self.payload))
        if problem:
            raise ParseError(problem, structure="Certificate")

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        cert_type = r.u8()
        length = r.u16()
        problem = _payload_problem(cert_type, length)
        if problem:
            raise r.error(problem, start)
        return cls(cert_type, r.take(length))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "Certificate")
        cert = cls.read(r)
        r.expect_end()
        return cert

    def to_bytes(self) -> bytes:
        return bytes((self.cert_type,)) + len(self.payload).to_bytes(2, "big") + self.payload

    def __len__(self) -> int:
        return 3 + len(self.payload)


def _payload_problem(cert_type: int, length: int) -> str | None:
    """Why a payload length is wrong for the type, or None; the spec asks to prohibit excess data."""
    if not 0 <= cert_type <= 255:
        return f"type {cert_type} out of range"
    if length > 65535:
        return f"payload of {length} bytes exceeds 65535"
    if cert_type in (Certificate.NULL, Certificate.HIDDEN) and length:
        return f"type {cert_type} must have an empty payload, got {length} bytes"
    if cert_type == Certificate.SIGNED and length not in (40, 72):
        return f"SIGNED payload must be 40 or 72 bytes, got {length}"
    if cert_type == Certificate.KEY and length < 4:
        return f"KEY payload must be at least 4 bytes, got {length}"
    return None


NULL_CERTIFICATE = Certificate(Certificate.NULL)


def sig_type_info(code: int) -> SigType:
    try:
        return SIG_TYPES[code]
    except KeyError:
        raise ParseError(f"unknown signing type {code}", structure="KeyCertificate") from None


def crypto_type_info(code: int) -> CryptoType:
    try:
        return CRYPTO_TYPES[code]
    except KeyError:
        raise ParseError(f"unknown crypto type {code}", structure="KeyCertificate") from None


class KeyLayout(NamedTuple):
    """Where each key's bytes go in a KeysAndCert for one (sig_type, crypto_type) pair."""

    crypto_in_block: int
    padding: int
    signing_in_block: int
    excess_signing: int
    excess_crypto: int


def _compute_layout(sig_type: int, crypto_type: int) -> KeyLayout:
    # "Key Certificates": crypto key aligned at the start, signing key at the end of the 384
    # bytes, padding between; keys keep to the legacy 256/128-byte fields (as Java and i2pd
    # do) and whatever does not fit goes into the certificate
    crypto_len = CRYPTO_TYPES[crypto_type].public_key_len
    signing_len = SIG_TYPES[sig_type].public_key_len
    crypto_in_block = min(crypto_len, 256)
    signing_in_block = min(signing_len, 128)
    return KeyLayout(crypto_in_block, KEYS_AND_CERT_BLOCK - crypto_in_block - signing_in_block,
                     signing_in_block, signing_len - signing_in_block, crypto_len - crypto_in_block)


_LAYOUTS = {(s, c): _compute_layout(s, c) for s in SIG_TYPES for c in CRYPTO_TYPES}


def key_layout(sig_type: int, crypto_type: int) -> KeyLayout:
    layout = _LAYOUTS.get((sig_type, crypto_type))
    if layout is None:
        sig_type_info(sig_type)
        crypto_type_info(crypto_type)
    return layout


DEFAULT_LAYOUT = KeyLayout(256, 0, 128, 0, 0)
"""ElGamal + DSA_SHA1, the meaning of the 384 bytes under any certificate other than KEY."""


@dataclass(frozen=True, slots=True)
class KeyCertificate:
    """The payload of a KEY certificate: key types, then excess signing and crypto key bytes."""

    sig_type: int
    crypto_type: int
    excess_signing_key: bytes = b""
    excess_crypto_key: bytes = b""

    def __post_init__(self) -> None:
        layout = key_layout(self.sig_type, self.crypto_type)
        if len(self.excess_signing_key) != layout.excess_signing:
            raise ParseError(f"{SIG_TYPES[self.sig_type].name} needs {layout.excess_signing} excess "
                             f"signing key bytes, got {len(self.excess_signing_key)}", structure="KeyCertificate")
        if len(self.excess_crypto_key) != layout.excess_crypto:
            raise ParseError(f"{CRYPTO_TYPES[self.crypto_type].name} needs {layout.excess_crypto} excess "
                             f"crypto key bytes, got {len(self.excess_crypto_key)}", structure="KeyCertificate")

    @classmethod
    def from_certificate(cls, cert: Certificate) -> Self:
        if cert.cert_type != Certificate.KEY:
            raise ParseError(f"certificate type {cert.cert_type} is not KEY", structure="KeyCertificate")
        payload = cert.payload
        sig_type = int.from_bytes(payload[0:2], "big")
        crypto_type = int.from_bytes(payload[2:4], "big")
        layout = key_layout(sig_type, crypto_type)
        expected = 4 + layout.excess_signing + layout.excess_crypto
        if len(payload) != expected:
            raise ParseError(f"payload for types ({sig_type}, {crypto_type}) must be {expected} bytes, "
                             f"got {len(payload)}", structure="KeyCertificate")
        split = 4 + layout.excess_signing
        return cls(sig_type, crypto_type, payload[4:split], payload[split:])

    def to_certificate(self) -> Certificate:
        payload = (self.sig_type.to_bytes(2, "big") + self.crypto_type.to_bytes(2, "big")
                   + self.excess_signing_key + self.excess_crypto_key)
        return Certificate(Certificate.KEY, payload)

    @property
    def layout(self) -> KeyLayout:
        return key_layout(self.sig_type, self.crypto_type)

    @property
    def sig_type_info(self) -> SigType:
        return SIG_TYPES[self.sig_type]

    @property
    def crypto_type_info(self) -> CryptoType:
        return CRYPTO_TYPES[self.crypto_type]
