"""The private key file of Java I2P and i2pd (router.keys, destination .dat/.keys files).

Layout: Destination, PrivateKey (sized by the crypto type), SigningPrivateKey (sized by the
signing type). A SigningPrivateKey of all zeros means offline signing: then follow expires
(4 bytes, seconds), transient signing type (2), transient public key, the destination's
signature over those three, and the transient private key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from core.clock import Rng
from core.crypto import signing, x25519
from core.fsutil import atomic_write

from .certificate import crypto_type_info, key_layout
from .errors import ParseError, ProtocolError, SignatureError
from .identity import Destination, RouterIdentity
from .keytypes import CRYPTO_ELGAMAL, CRYPTO_X25519, SIG_ED25519, SIG_TYPES
from .reader import Reader

# common-structures.rst "PrivateKey" lengths by crypto type code
PRIVATE_KEY_LENGTHS = {0: 256, 1: 32, 2: 48, 3: 66, 4: 32, 5: 32, 6: 32, 7: 32}
KEY_FILE_MODE = 0o600


def private_key_len(crypto_type: int) -> int:
    crypto_type_info(crypto_type)
    return PRIVATE_KEY_LENGTHS[crypto_type]


@dataclass(frozen=True, slots=True)
class TransientSigningKey:
    """The offline-signing block of a key file: a transient key the destination's key authorised."""

    expires: int
    sig_type: int
    public_key: bytes
    signature: bytes
    private_key: bytes = field(repr=False)

    @staticmethod
    def signed_data(expires: int, sig_type: int, public_key: bytes) -> bytes:
        return expires.to_bytes(4, "big") + sig_type.to_bytes(2, "big") + public_key

    @property
    def offline_signature_bytes(self) -> bytes:
        """The same bytes as an OfflineSignature (common-structures.rst "OfflineSignature")."""
        return self.signed_data(self.expires, self.sig_type, self.public_key) + self.signature

    def to_bytes(self) -> bytes:
        return self.offline_signature_bytes + self.private_key


@dataclass(frozen=True, slots=True)
class PrivateKeys:
    destination: Destination
    private_key: bytes = field(repr=False)
    signing_private_key: bytes = field(repr=False)
    transient: TransientSigningKey | None = None

    def __post_init__(self) -> None:
        expected = private_key_len(self.destination.crypto_type)
        if len(self.private_key) != expected:
            raise ParseError(f"private key must be {expected} bytes, got {len(self.private_key)}",
                             structure="PrivateKeys")
        expected = self.destination.sig_type_info.private_key_len
        if len(self.signing_private_key) != expected:
            raise ParseError(f"signing private key must be {expected} bytes, got {len(self.signing_private_key)}",
                             structure="PrivateKeys")
        if (self.transient is not None) != (not any(self.signing_private_key)):
            raise ParseError("an all-zero signing private key goes with a transient key, and only then",
                             structure="PrivateKeys")

    @classmethod
    def read(cls, r: Reader) -> Self:
        destination = Destination.read(r)
        private_key = r.take(private_key_len(destination.crypto_type))
        signing_private_key = r.take(destination.sig_type_info.private_key_len)
        transient = None
        if not any(signing_private_key):
            start = r.pos
            expires = r.u32()
            sig_type = r.u16()
            sig_spec = SIG_TYPES.get(sig_type)
            if sig_spec is None:
                raise r.error(f"unknown transient signing type {sig_type}", r.pos - 2)
            public_key = r.take(sig_spec.public_key_len)
            signature = r.take(destination.signature_len)
            transient_private_key = r.take(sig_spec.private_key_len)
            transient = TransientSigningKey(expires, sig_type, public_key, signature, transient_private_key)
            if not destination.verify(TransientSigningKey.signed_data(expires, sig_type, public_key), signature):
                raise SignatureError("offline signature does not verify", structure="PrivateKeys", offset=start)
        return cls(destination, private_key, signing_private_key, transient)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "PrivateKeys")
        keys = cls.read(r)
        r.expect_end()
        return keys

    def to_bytes(self) -> bytes:
        data = self.destination.to_bytes() + self.private_key + self.signing_private_key
        if self.transient is not None:
            data += self.transient.to_bytes()
        return data

    @classmethod
    def generate(cls, sig_type: int = SIG_ED25519, crypto_type: int = CRYPTO_X25519, rng: Rng = os.urandom) -> Self:
        """New keys. For ElGamal (type 0) the public key field is random filler and the private
        key zeros: a Destination never uses that field ("Destination")."""
        signing_private_key, signing_public_key = signing.generate(sig_type, rng)
        key_layout(sig_type, crypto_type)
        if crypto_type == CRYPTO_X25519:
            private_key = x25519.generate_private(rng)
            public_key = x25519.public_from_private(private_key)
        elif crypto_type == CRYPTO_ELGAMAL:
            private_key, public_key = bytes(PRIVATE_KEY_LENGTHS[CRYPTO_ELGAMAL]), None
        else:
            raise ParseError(f"generating crypto type {crypto_type} keys is not supported", structure="PrivateKeys")
        destination = Destination.create(signing_public_key=signing_public_key, sig_type=sig_type,
                                         crypto_type=crypto_type, rng=rng, public_key=public_key)
        return cls(destination, private_key, signing_private_key)

    def with_offline_key(self, *, expires: int, rng: Rng, transient_sig_type: int = SIG_ED25519) -> Self:
        """The offline form: a new transient key signed by the long-term key, which is left out."""
        if self.transient is not None:
            raise SignatureError("already offline: the long-term signing key is not here", structure="PrivateKeys")
        private_key, public_key = signing.generate(transient_sig_type, rng)
        signature = self.sign(TransientSigningKey.signed_data(expires, transient_sig_type, public_key))
        transient = TransientSigningKey(expires, transient_sig_type, public_key, signature, private_key)
        return type(self)(self.destination, self.private_key, bytes(len(self.signing_private_key)), transient)

    @property
    def is_offline(self) -> bool:
        return self.transient is not None

    @property
    def router_identity(self) -> RouterIdentity:
        """The public part as a RouterIdentity (router.keys holds a router's identity)."""
        return RouterIdentity.parse(self.destination.to_bytes())

    @property
    def signing_sig_type(self) -> int:
        """The type of the key that signs: the transient one when offline."""
        return self.transient.sig_type if self.transient is not None else self.destination.sig_type

    @property
    def signature_len(self) -> int:
        return SIG_TYPES[self.signing_sig_type].signature_len

    def sign(self, data: bytes) -> bytes:
        if self.transient is not None:
            return signing.sign(self.transient.sig_type, self.transient.private_key, data)
        return signing.sign(self.destination.sig_type, self.signing_private_key, data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        try:
            return cls.parse(Path(path).read_bytes())
        except ProtocolError as exc:
            raise ParseError(f"{path}: {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        atomic_write(path, self.to_bytes(), KEY_FILE_MODE)
