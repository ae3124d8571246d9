"""KeysAndCert, RouterIdentity and Destination (common-structures.rst "KeysAndCert")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from core.clock import Rng
from core.crypto import signing
from core.crypto.hashes import sha256

from .certificate import (DEFAULT_LAYOUT, KEYS_AND_CERT_BLOCK, NULL_CERTIFICATE, Certificate,
                          KeyCertificate, KeyLayout, key_layout)
from .encoding import b32encode, b64decode, b64encode
from .errors import ParseError
from .keytypes import CRYPTO_ELGAMAL, CRYPTO_TYPES, SIG_TYPES, SigType
from .reader import Reader

PADDING_BLOCK = 32
"""Proposal 161: one 32-byte random block, repeated, fills padding and unused key fields."""


def compressible_filler(length: int, rng: Rng) -> bytes:
    """`length` bytes of one random 32-byte block repeated ("Padding Generation Guidelines")."""
    if length <= 0:
        return b""
    block = rng(PADDING_BLOCK)
    return (block * (length // PADDING_BLOCK + 1))[:length]


def _layout_and_types(cert: Certificate) -> tuple[KeyLayout, int, int]:
    if cert.cert_type == Certificate.KEY:
        key_cert = KeyCertificate.from_certificate(cert)
        return key_cert.layout, key_cert.sig_type, key_cert.crypto_type
    # any other certificate leaves the 384 bytes as ElGamal + DSA_SHA1 ("Key Certificates")
    return DEFAULT_LAYOUT, 0, 0


@dataclass(frozen=True, slots=True)
class KeysAndCert:
    """A crypto public key, padding, a signing public key and a certificate.

    Keys are held whole: bytes that do not fit into the 384-byte block live in the certificate
    on the wire, and are checked to agree with it.
    """

    public_key: bytes
    padding: bytes
    signing_public_key: bytes
    certificate: Certificate
    _bytes: bytes = field(init=False, repr=False, compare=False, hash=False)
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        name = type(self).__name__
        layout, sig_type, crypto_type = _layout_and_types(self.certificate)
        crypto_len = layout.crypto_in_block + layout.excess_crypto
        signing_len = layout.signing_in_block + layout.excess_signing
        if len(self.public_key) != crypto_len:
            raise ParseError(f"public key must be {crypto_len} bytes, got {len(self.public_key)}", structure=name)
        if len(self.padding) != layout.padding:
            raise ParseError(f"padding must be {layout.padding} bytes, got {len(self.padding)}", structure=name)
        if len(self.signing_public_key) != signing_len:
            raise ParseError(f"signing public key must be {signing_len} bytes, got {len(self.signing_public_key)}",
                             structure=name)
        if layout.excess_signing or layout.excess_crypto:
            key_cert = KeyCertificate.from_certificate(self.certificate)
            if (key_cert.excess_signing_key != self.signing_public_key[layout.signing_in_block:]
                    or key_cert.excess_crypto_key != self.public_key[layout.crypto_in_block:]):
                raise ParseError("excess key data in the certificate does not match the keys", structure=name)
        data = (self.public_key[:layout.crypto_in_block] + self.padding
                + self.signing_public_key[:layout.signing_in_block] + self.certificate.to_bytes())
        object.__setattr__(self, "_bytes", data)

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        block = r.take(KEYS_AND_CERT_BLOCK)
        cert_start = r.pos
        cert = Certificate.read(r)
        try:
            layout, _, _ = _layout_and_types(cert)
        except ParseError as exc:
            raise r.error(exc.reason, cert_start) from None
        crypto_end = layout.crypto_in_block
        signing_start = KEYS_AND_CERT_BLOCK - layout.signing_in_block
        excess = cert.payload[4:] if cert.cert_type == Certificate.KEY else b""
        public_key = block[:crypto_end] + excess[layout.excess_signing:]
        signing_public_key = block[signing_start:] + excess[:layout.excess_signing]
        try:
            return cls(public_key, block[crypto_end:signing_start], signing_public_key, cert)
        except ParseError as exc:
            raise r.error(exc.reason, start) from None

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        value = cls.read(r)
        r.expect_end()
        return value

    @classmethod
    def from_b64(cls, text: str) -> Self:
        return cls.parse(b64decode(text))

    @classmethod
    def create(cls, *, signing_public_key: bytes, sig_type: int, crypto_type: int, rng: Rng,
               public_key: bytes | None = None) -> Self:
        """Build from keys; padding (and the public key, when None) is compressible per proposal 161."""
        layout = key_layout(sig_type, crypto_type)
        if public_key is None:
            filler = compressible_filler(layout.crypto_in_block + layout.excess_crypto + layout.padding, rng)
            crypto_len = layout.crypto_in_block + layout.excess_crypto
            public_key, padding = filler[:crypto_len], filler[crypto_len:]
        else:
            padding = compressible_filler(layout.padding, rng)
        if sig_type == 0 and crypto_type == CRYPTO_ELGAMAL:
            cert = NULL_CERTIFICATE  # the canonical form for ElGamal + DSA_SHA1, 4 bytes shorter
        else:
            cert = KeyCertificate(sig_type, crypto_type, signing_public_key[layout.signing_in_block:],
                                  public_key[layout.crypto_in_block:]).to_certificate()
        return cls(public_key, padding, signing_public_key, cert)

    def to_bytes(self) -> bytes:
        return self._bytes

    def __len__(self) -> int:
        return len(self._bytes)

    @property
    def hash(self) -> bytes:
        """SHA-256 of the whole structure: the router hash or destination hash."""
        digest = self._hash
        if digest is None:
            digest = sha256(self._bytes)
            object.__setattr__(self, "_hash", digest)
        return digest

    @property
    def b64(self) -> str:
        return b64encode(self._bytes)

    @property
    def key_certificate(self) -> KeyCertificate | None:
        if self.certificate.cert_type != Certificate.KEY:
            return None
        return KeyCertificate.from_certificate(self.certificate)

    @property
    def sig_type(self) -> int:
        if self.certificate.cert_type != Certificate.KEY:
            return 0
        return int.from_bytes(self.certificate.payload[0:2], "big")

    @property
    def crypto_type(self) -> int:
        if self.certificate.cert_type != Certificate.KEY:
            return CRYPTO_ELGAMAL
        return int.from_bytes(self.certificate.payload[2:4], "big")

    @property
    def sig_type_info(self) -> SigType:
        return SIG_TYPES[self.sig_type]

    @property
    def crypto_type_name(self) -> str:
        return CRYPTO_TYPES[self.crypto_type].name

    @property
    def signature_len(self) -> int:
        return SIG_TYPES[self.sig_type].signature_len

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True if `signature` is this identity's signature over `data`.

        Raises SignatureError only when the signing type is not supported.
        """
        return signing.verify(self.sig_type, self.signing_public_key, data, signature)


@dataclass(frozen=True, slots=True)
class RouterIdentity(KeysAndCert):
    """Identifies a router; its hash is the router's netDb key ("RouterIdentity")."""


@dataclass(frozen=True, slots=True)
class Destination(KeysAndCert):
    """An endpoint; the public key field is unused and may be random ("Destination")."""

    @property
    def b32_address(self) -> str:
        return b32encode(self.hash) + ".b32.i2p"
