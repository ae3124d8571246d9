"""Datagram formats (datagrams.rst): Raw (18), Datagram1 repliable (17), Datagram2 (19), Datagram3 (20)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from ..crypto import signing
from ..crypto.hashes import sha256
from ..data.errors import ParseError, SignatureError
from ..data.identity import Destination
from ..data.keytypes import SIG_TYPES
from ..data.leaseset import OfflineSignature
from ..data.primitives import Mapping
from ..data.privatekeys import PrivateKeys
from ..data.reader import Reader

PROTO_STREAMING = 6
PROTO_DATAGRAM = 17
PROTO_RAW = 18
PROTO_DATAGRAM2 = 19
PROTO_DATAGRAM3 = 20

HASH_LEN = 32
_VERSION_MASK = 0x000F
_FLAG_OPTIONS = 0x0010
_FLAG_OFFLINE = 0x0020
_DATAGRAM2_VERSION = 2
_DATAGRAM3_VERSION = 3
_DATAGRAM2_UNUSED = 0xFFC0   # bits 15-6
_DATAGRAM3_UNUSED = 0xFFE0   # bits 15-5
_DSA_SHA1 = 0


def _whole(cls, data: bytes):
    r = Reader(data, cls.__name__)
    value = cls.read(r)
    r.expect_end()
    return value


def _verify(sig_type: int, public_key: bytes, data: bytes, signature: bytes) -> bool:
    try:
        return signing.verify(sig_type, public_key, data, signature)
    except SignatureError:
        return False


@dataclass(frozen=True, slots=True)
class RawDatagram:
    """datagrams.rst "Raw": the payload alone; no sender, no signature."""

    PROTOCOL: ClassVar[int] = PROTO_RAW
    payload: bytes

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.rest())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _whole(cls, data)

    def to_bytes(self) -> bytes:
        return self.payload


@dataclass(frozen=True, slots=True)
class Datagram1:
    """datagrams.rst "Datagram1": from, signature of the payload (of its SHA-256 for DSA_SHA1), payload."""

    PROTOCOL: ClassVar[int] = PROTO_DATAGRAM
    from_destination: Destination
    signature: bytes
    payload: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != self.from_destination.signature_len:
            raise ParseError("signature length does not match the sender's signing type", structure="Datagram1")

    @staticmethod
    def signed_data(sig_type: int, payload: bytes) -> bytes:
        return sha256(payload) if sig_type == _DSA_SHA1 else payload

    @classmethod
    def create(cls, keys: PrivateKeys, payload: bytes) -> Self:
        if keys.is_offline:
            raise ValueError("Datagram1 cannot carry an offline signature; use Datagram2")
        return cls(keys.destination, keys.sign(cls.signed_data(keys.destination.sig_type, payload)), payload)

    @classmethod
    def read(cls, r: Reader) -> Self:
        destination = Destination.read(r)
        signature = r.take(destination.signature_len)
        return cls(destination, signature, r.rest())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _whole(cls, data)

    def to_bytes(self) -> bytes:
        return self.from_destination.to_bytes() + self.signature + self.payload

    def verify(self) -> bool:
        d = self.from_destination
        return _verify(d.sig_type, d.signing_public_key, self.signed_data(d.sig_type, self.payload), self.signature)


@dataclass(frozen=True, slots=True)
class Datagram2:
    """datagrams.rst "Datagram2": from, flags, options, offline signature, payload, signature.

    The signature covers the target's destination hash (not sent), flags, options, offline block and payload,
    which binds the datagram to its recipient (replay prevention across destinations).
    """

    PROTOCOL: ClassVar[int] = PROTO_DATAGRAM2
    from_destination: Destination
    payload: bytes
    signature: bytes
    options: Mapping | None = None
    offline_signature: OfflineSignature | None = None
    unused_flags: int = 0    # bits 15-6, zero today; kept for an exact round trip

    def __post_init__(self) -> None:
        if self.unused_flags & ~_DATAGRAM2_UNUSED:
            raise ParseError("unused_flags holds only bits 15-6", structure="Datagram2")
        if len(self.signature) != SIG_TYPES[self.signer_sig_type].signature_len:
            raise ParseError("signature length does not match the signing type", structure="Datagram2")

    @property
    def signer_sig_type(self) -> int:
        if self.offline_signature is not None:
            return self.offline_signature.transient_sig_type
        return self.from_destination.sig_type

    @property
    def flags(self) -> int:
        return (_DATAGRAM2_VERSION | self.unused_flags | (_FLAG_OPTIONS if self.options is not None else 0)
                | (_FLAG_OFFLINE if self.offline_signature is not None else 0))

    def _signed_fields(self) -> bytes:
        return (self.flags.to_bytes(2, "big") + (self.options.to_bytes() if self.options is not None else b"")
                + (self.offline_signature.to_bytes() if self.offline_signature is not None else b"") + self.payload)

    def signed_data(self, target_hash: bytes) -> bytes:
        if len(target_hash) != HASH_LEN:
            raise ValueError("target hash must be 32 bytes")
        return target_hash + self._signed_fields()

    @classmethod
    def create(cls, keys: PrivateKeys, payload: bytes, target_hash: bytes, *, options: Mapping | None = None) -> Self:
        """Signed for the destination whose hash is `target_hash`; offline-signed when `keys` are."""
        offline = None
        if keys.transient is not None:
            t = keys.transient
            offline = OfflineSignature(t.expires, t.sig_type, t.public_key, t.signature)
        unsigned = cls(keys.destination, payload, bytes(SIG_TYPES[keys.signing_sig_type].signature_len),
                       options, offline)
        return cls(keys.destination, payload, keys.sign(unsigned.signed_data(target_hash)), options, offline)

    @classmethod
    def read(cls, r: Reader) -> Self:
        destination = Destination.read(r)
        flags_offset = r.pos
        flags = r.u16()
        if flags & _VERSION_MASK != _DATAGRAM2_VERSION:
            raise r.error(f"Datagram2 version must be 2, got {flags & _VERSION_MASK}", flags_offset)
        options = Mapping.read(r) if flags & _FLAG_OPTIONS else None
        offline = None
        if flags & _FLAG_OFFLINE:
            offline = OfflineSignature.read(r, destination.sig_type)
        sig_type = offline.transient_sig_type if offline is not None else destination.sig_type
        signature_len = SIG_TYPES[sig_type].signature_len
        if r.remaining < signature_len:
            raise r.error(f"{r.remaining} bytes left, the signature needs {signature_len}")
        payload = r.take(r.remaining - signature_len)
        return cls(destination, payload, r.take(signature_len), options, offline, flags & _DATAGRAM2_UNUSED)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _whole(cls, data)

    def to_bytes(self) -> bytes:
        return self.from_destination.to_bytes() + self._signed_fields() + self.signature

    def verify(self, target_hash: bytes, now: float | None = None) -> bool:
        """Signed by the sender (or its unexpired transient key) for the destination `target_hash`.

        `now` is wall-clock seconds for the offline signature's expiry; None skips the expiry check.
        """
        data = self.signed_data(target_hash)
        offline = self.offline_signature
        if offline is None:
            d = self.from_destination
            return _verify(d.sig_type, d.signing_public_key, data, self.signature)
        try:
            authorised = offline.verify(self.from_destination, now)
        except SignatureError:
            return False
        return authorised and _verify(offline.transient_sig_type, offline.transient_public_key, data,
                                      self.signature)


@dataclass(frozen=True, slots=True)
class Datagram3:
    """datagrams.rst "Datagram3": the sender's hash, flags, options, payload; repliable but not authenticated."""

    PROTOCOL: ClassVar[int] = PROTO_DATAGRAM3
    from_hash: bytes
    payload: bytes
    options: Mapping | None = None
    unused_flags: int = 0    # bits 15-5

    def __post_init__(self) -> None:
        if len(self.from_hash) != HASH_LEN:
            raise ParseError("from hash must be 32 bytes", structure="Datagram3")
        if self.unused_flags & ~_DATAGRAM3_UNUSED:
            raise ParseError("unused_flags holds only bits 15-5", structure="Datagram3")

    @property
    def flags(self) -> int:
        return _DATAGRAM3_VERSION | self.unused_flags | (_FLAG_OPTIONS if self.options is not None else 0)

    @classmethod
    def read(cls, r: Reader) -> Self:
        from_hash = r.take(HASH_LEN)
        flags_offset = r.pos
        flags = r.u16()
        if flags & _VERSION_MASK != _DATAGRAM3_VERSION:
            raise r.error(f"Datagram3 version must be 3, got {flags & _VERSION_MASK}", flags_offset)
        options = Mapping.read(r) if flags & _FLAG_OPTIONS else None
        return cls(from_hash, r.rest(), options, flags & _DATAGRAM3_UNUSED)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _whole(cls, data)

    def to_bytes(self) -> bytes:
        return (self.from_hash + self.flags.to_bytes(2, "big")
                + (self.options.to_bytes() if self.options is not None else b"") + self.payload)


DATAGRAM_CLASSES = {c.PROTOCOL: c for c in (RawDatagram, Datagram1, Datagram2, Datagram3)}


def parse_datagram(protocol: int, data: bytes) -> RawDatagram | Datagram1 | Datagram2 | Datagram3:
    """The datagram for an I2CP protocol number (17-20); ParseError for any other."""
    cls = DATAGRAM_CLASSES.get(protocol)
    if cls is None:
        raise ParseError(f"protocol {protocol} is not a datagram protocol", structure="Datagram")
    return cls.parse(data)
