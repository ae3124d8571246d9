"""The LeaseSet family a Destination publishes in the netDb (common-structures.rst "Lease" to "EncryptedLeaseSet").

Store types are the DatabaseStore type byte (i2np.rst "DatabaseStore"): 1 LeaseSet, 3 LeaseSet2,
5 EncryptedLeaseSet, 7 MetaLeaseSet. Wire fields keep their wire units; every leaseset also offers
`published_ms` and `expires` (both milliseconds) and `hash` (its netDb key).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Union

from core.crypto import signing
from core.crypto.hashes import sha256

from .errors import ParseError, SignatureError
from .identity import Destination
from .keytypes import CRYPTO_ELGAMAL, CRYPTO_TYPES, CRYPTO_X25519, SIG_TYPES
from .primitives import Mapping
from .reader import Reader

if TYPE_CHECKING:
    from core.clock import Rng

    from .privatekeys import PrivateKeys

STORE_LEASESET = 1
STORE_LEASESET2 = 3
STORE_ENCRYPTED_LEASESET = 5
STORE_META_LEASESET = 7

MAX_LEASES = 16
MAX_ENCRYPTION_KEYS = 8            # spec says "max TBD"; Java I2P rejects more than 8
ELGAMAL_PUBLIC_KEY_LEN = 256
HASH_LEN = 32

FLAG_OFFLINE_KEYS = 0x0001
FLAG_UNPUBLISHED = 0x0002
FLAG_BLINDED = 0x0004              # LeaseSet2Header only, as of 0.9.42

META_ENTRY_UNKNOWN = 0
META_ENTRY_LEASESET = 1
META_ENTRY_LEASESET2 = 3
META_ENTRY_META_LEASESET = 5


def _require(value: object, condition: bool, message: str) -> None:
    """Constructor checks; ParseError like the parsers, so values built from peer input fail the same way."""
    if not condition:
        raise ParseError(message, structure=type(value).__name__)


def _sig_type(r: Reader, code: int, what: str):
    spec = SIG_TYPES.get(code)
    if spec is None:
        raise r.error(f"unknown {what} signing type {code}", r.pos - 2)
    return spec


def _parse_whole(cls, data: bytes, *args):
    r = Reader(data, cls.__name__)
    value = cls.read(r, *args)
    r.expect_end()
    return value


# ---------------------------------------------------------------- leases

@dataclass(frozen=True, slots=True)
class Lease:
    """common-structures.rst "Lease": gateway hash, tunnel id, end date in milliseconds (44 bytes)."""

    gateway: bytes
    tunnel_id: int
    end_date: int

    SIZE: ClassVar[int] = 44

    def __post_init__(self) -> None:
        _require(self, len(self.gateway) == HASH_LEN, "gateway must be a 32-byte hash")
        _require(self, 0 <= self.tunnel_id < 1 << 32, "tunnel id must fit 4 bytes")
        _require(self, 0 <= self.end_date < 1 << 64, "end date must fit 8 bytes")

    @property
    def end_date_ms(self) -> int:
        return self.end_date

    @classmethod
    def read(cls, r: Reader) -> Lease:
        s = r.sub(cls.SIZE, "Lease")
        return cls(s.take(HASH_LEN), s.u32(), s.u64())

    @classmethod
    def parse(cls, data: bytes) -> Lease:
        return _parse_whole(cls, data)

    def to_bytes(self) -> bytes:
        return self.gateway + self.tunnel_id.to_bytes(4, "big") + self.end_date.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Lease2:
    """common-structures.rst "Lease2": gateway hash, tunnel id, end date in seconds (40 bytes)."""

    gateway: bytes
    tunnel_id: int
    end_date: int

    SIZE: ClassVar[int] = 40

    def __post_init__(self) -> None:
        _require(self, len(self.gateway) == HASH_LEN, "gateway must be a 32-byte hash")
        _require(self, 0 <= self.tunnel_id < 1 << 32, "tunnel id must fit 4 bytes")
        _require(self, 0 <= self.end_date < 1 << 32, "end date must fit 4 bytes")

    @property
    def end_date_ms(self) -> int:
        return self.end_date * 1000

    @classmethod
    def read(cls, r: Reader) -> Lease2:
        s = r.sub(cls.SIZE, "Lease2")
        return cls(s.take(HASH_LEN), s.u32(), s.u32())

    @classmethod
    def parse(cls, data: bytes) -> Lease2:
        return _parse_whole(cls, data)

    def to_bytes(self) -> bytes:
        return self.gateway + self.tunnel_id.to_bytes(4, "big") + self.end_date.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class MetaLease:
    """common-structures.rst "MetaLease": gateway (or a MetaLeaseSet's hash), 3-byte flags, cost, end in seconds."""

    gateway: bytes
    flags: int
    cost: int
    end_date: int

    SIZE: ClassVar[int] = 40

    def __post_init__(self) -> None:
        _require(self, len(self.gateway) == HASH_LEN, "gateway must be a 32-byte hash")
        _require(self, 0 <= self.flags < 1 << 24, "flags must fit 3 bytes")
        _require(self, 0 <= self.cost < 256, "cost must fit 1 byte")
        _require(self, 0 <= self.end_date < 1 << 32, "end date must fit 4 bytes")

    @property
    def entry_type(self) -> int:
        """Bits 3-0: what the entry points at (META_ENTRY_*)."""
        return self.flags & 0x0F

    @property
    def end_date_ms(self) -> int:
        return self.end_date * 1000

    @classmethod
    def read(cls, r: Reader) -> MetaLease:
        s = r.sub(cls.SIZE, "MetaLease")
        return cls(s.take(HASH_LEN), s.uint(3), s.u8(), s.u32())

    @classmethod
    def parse(cls, data: bytes) -> MetaLease:
        return _parse_whole(cls, data)

    def to_bytes(self) -> bytes:
        return (self.gateway + self.flags.to_bytes(3, "big") + bytes([self.cost])
                + self.end_date.to_bytes(4, "big"))


# ---------------------------------------------------------------- offline keys

@dataclass(frozen=True, slots=True)
class OfflineSignature:
    """common-structures.rst "OfflineSignature": a transient key, authorised until `expires` (seconds).

    The signature is by the key that precedes the block (the destination's, or the blinded key
    in an EncryptedLeaseSet), so its length is given to `read` by the caller.
    """

    expires: int
    transient_sig_type: int
    transient_public_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _require(self, 0 <= self.expires < 1 << 32, "expires must fit 4 bytes")
        spec = SIG_TYPES.get(self.transient_sig_type)
        _require(self, spec is not None, f"unknown transient signing type {self.transient_sig_type}")
        _require(self, len(self.transient_public_key) == spec.public_key_len,
                 "transient key length does not match its type")

    @classmethod
    def read(cls, r: Reader, signer_sig_type: int) -> OfflineSignature:
        expires = r.u32()
        sig_type = r.u16()
        spec = _sig_type(r, sig_type, "transient")
        public_key = r.take(spec.public_key_len)
        signature = r.take(SIG_TYPES[signer_sig_type].signature_len)
        return cls(expires, sig_type, public_key, signature)

    @classmethod
    def parse(cls, data: bytes, signer_sig_type: int) -> OfflineSignature:
        return _parse_whole(cls, data, signer_sig_type)

    @staticmethod
    def signed_data(expires: int, transient_sig_type: int, transient_public_key: bytes) -> bytes:
        return expires.to_bytes(4, "big") + transient_sig_type.to_bytes(2, "big") + transient_public_key

    @classmethod
    def create(cls, sign: Callable[[bytes], bytes], *, expires: int, transient_sig_type: int,
               transient_public_key: bytes) -> OfflineSignature:
        """`sign` is the long-term key's signer (PrivateKeys.sign, or the blinded key's)."""
        data = cls.signed_data(expires, transient_sig_type, transient_public_key)
        return cls(expires, transient_sig_type, transient_public_key, sign(data))

    def to_bytes(self) -> bytes:
        return self.signed_data(self.expires, self.transient_sig_type, self.transient_public_key) + self.signature

    def is_expired(self, now: float) -> bool:
        """`now` in wall-clock seconds."""
        return self.expires < now

    def verify(self, destination: Destination, now: float | None) -> bool:
        """Signed by `destination` and (when `now` is given) not expired."""
        if now is not None and self.is_expired(now):
            return False
        data = self.signed_data(self.expires, self.transient_sig_type, self.transient_public_key)
        return destination.verify(data, self.signature)

    def verify_with_key(self, sig_type: int, public_key: bytes, now: float | None) -> bool:
        """As verify, with a bare key (the blinded key of an EncryptedLeaseSet)."""
        if now is not None and self.is_expired(now):
            return False
        data = self.signed_data(self.expires, self.transient_sig_type, self.transient_public_key)
        return signing.verify(sig_type, public_key, data, self.signature)

    def verify_transient(self, data: bytes, signature: bytes) -> bool:
        """Whether the transient key signed `data`."""
        return signing.verify(self.transient_sig_type, self.transient_public_key, data, signature)


# ---------------------------------------------------------------- LeaseSet (type 1)

@dataclass(frozen=True, slots=True)
class LeaseSet:
    """common-structures.rst "LeaseSet" (store type 1): ElGamal key, unused revocation key, 0-16 Leases."""

    destination: Destination
    encryption_key: bytes
    signing_key: bytes
    leases: tuple[Lease, ...]
    signature: bytes

    STORE_TYPE: ClassVar[int] = STORE_LEASESET

    def __post_init__(self) -> None:
        object.__setattr__(self, "leases", tuple(self.leases))
        _require(self, len(self.encryption_key) == ELGAMAL_PUBLIC_KEY_LEN, "encryption key must be 256 bytes")
        _require(self, len(self.signing_key) == self.signing_key_len(self.destination), "signing key length")
        _require(self, len(self.leases) <= MAX_LEASES, "at most 16 leases")

    @staticmethod
    def signing_key_len(destination: Destination) -> int:
        # the revocation key has the destination's signing type, so P521/RSA keys exceed 128 bytes
        return SIG_TYPES[destination.sig_type].public_key_len

    @classmethod
    def read(cls, r: Reader) -> LeaseSet:
        destination = Destination.read(r)
        encryption_key = r.take(ELGAMAL_PUBLIC_KEY_LEN)
        signing_key = r.take(cls.signing_key_len(destination))
        count = r.u8()
        if count > MAX_LEASES:
            raise r.error(f"{count} leases, at most {MAX_LEASES}", r.pos - 1)
        leases = tuple(Lease.read(r) for _ in range(count))
        signature = r.take(destination.signature_len)
        return cls(destination, encryption_key, signing_key, leases, signature)

    @classmethod
    def parse(cls, data: bytes) -> LeaseSet:
        return _parse_whole(cls, data)

    @classmethod
    def create(cls, keys: PrivateKeys, encryption_key: bytes, leases: Iterable[Lease], *, rng: Rng,
               signing_key: bytes | None = None) -> LeaseSet:
        """Signed by the destination's key; the unused revocation key is random unless given."""
        if keys.transient is not None:
            raise SignatureError("a type 1 LeaseSet has no offline signature; use LeaseSet2", structure="LeaseSet")
        destination = keys.destination
        if signing_key is None:
            signing_key = rng(cls.signing_key_len(destination))
        unsigned = cls(destination, encryption_key, signing_key, tuple(leases), b"")
        return cls(destination, encryption_key, signing_key, unsigned.leases, keys.sign(unsigned.signed_data()))

    def signed_data(self) -> bytes:
        return (self.destination.to_bytes() + self.encryption_key + self.signing_key + bytes([len(self.leases)])
                + b"".join(lease.to_bytes() for lease in self.leases))

    def to_bytes(self) -> bytes:
        return self.signed_data() + self.signature

    def verify(self, now: float | None = None) -> bool:
        """Signed by the destination. `now` is accepted for a uniform API; type 1 has no offline keys."""
        return self.destination.verify(self.signed_data(), self.signature)

    @property
    def hash(self) -> bytes:
        return self.destination.hash

    @property
    def published_ms(self) -> int:
        """The earliest lease end is this leaseset's version (common-structures.rst "LeaseSet", notes)."""
        return min((lease.end_date for lease in self.leases), default=0)

    @property
    def expires(self) -> int:
        return max((lease.end_date for lease in self.leases), default=0)

    @property
    def encryption_keys(self) -> tuple[tuple[int, bytes], ...]:
        """The one key, as LeaseSet2 lists its keys: always ElGamal."""
        return ((CRYPTO_ELGAMAL, self.encryption_key),)

    def select_encryption_key(self, supported: Iterable[int]) -> tuple[int, bytes] | None:
        return (CRYPTO_ELGAMAL, self.encryption_key) if CRYPTO_ELGAMAL in set(supported) else None


# ---------------------------------------------------------------- LeaseSet2Header

@dataclass(frozen=True, slots=True)
class LeaseSet2Header:
    """common-structures.rst "LeaseSet2Header": destination, published (s), expires offset (s), flags, offline keys."""

    destination: Destination
    published: int
    expires_offset: int
    flags: int
    offline_signature: OfflineSignature | None = None

    def __post_init__(self) -> None:
        _require(self, 0 <= self.published < 1 << 32, "published must fit 4 bytes")
        _require(self, 0 <= self.expires_offset < 1 << 16, "expires offset must fit 2 bytes")
        _require(self, 0 <= self.flags < 1 << 16, "flags must fit 2 bytes")
        _require(self, bool(self.flags & FLAG_OFFLINE_KEYS) == (self.offline_signature is not None),
                 "offline keys flag and offline signature disagree")

    @classmethod
    def read(cls, r: Reader) -> LeaseSet2Header:
        destination = Destination.read(r)
        published = r.u32()
        expires_offset = r.u16()
        flags = r.u16()
        offline = OfflineSignature.read(r, destination.sig_type) if flags & FLAG_OFFLINE_KEYS else None
        return cls(destination, published, expires_offset, flags, offline)

    @classmethod
    def parse(cls, data: bytes) -> LeaseSet2Header:
        return _parse_whole(cls, data)

    @classmethod
    def create(cls, keys: PrivateKeys, *, published: int, expires_offset: int, unpublished: bool = False,
               blinded: bool = False) -> LeaseSet2Header:
        transient = keys.transient
        offline = None if transient is None else OfflineSignature(
            transient.expires, transient.sig_type, transient.public_key, transient.signature)
        flags = ((FLAG_OFFLINE_KEYS if offline else 0) | (FLAG_UNPUBLISHED if unpublished or blinded else 0)
                 | (FLAG_BLINDED if blinded else 0))
        return cls(keys.destination, published, expires_offset, flags, offline)

    def to_bytes(self) -> bytes:
        out = (self.destination.to_bytes() + self.published.to_bytes(4, "big")
               + self.expires_offset.to_bytes(2, "big") + self.flags.to_bytes(2, "big"))
        if self.offline_signature is not None:
            out += self.offline_signature.to_bytes()
        return out

    @property
    def offline_keys(self) -> bool:
        return bool(self.flags & FLAG_OFFLINE_KEYS)

    @property
    def unpublished(self) -> bool:
        return bool(self.flags & FLAG_UNPUBLISHED)

    @property
    def blinded(self) -> bool:
        return bool(self.flags & FLAG_BLINDED)

    @property
    def expires(self) -> int:
        """Absolute expiry in seconds."""
        return self.published + self.expires_offset

    @property
    def signature_len(self) -> int:
        """Length of the enclosing leaseset's signature: the transient key's type when offline."""
        if self.offline_signature is not None:
            return SIG_TYPES[self.offline_signature.transient_sig_type].signature_len
        return self.destination.signature_len

    def verify_signature(self, store_type: int, body: bytes, signature: bytes, now: float | None) -> bool:
        """The leaseset signature covers the store type byte, then the body (header included)."""
        data = bytes([store_type]) + body
        if self.offline_signature is None:
            return self.destination.verify(data, signature)
        return (self.offline_signature.verify(self.destination, now)
                and self.offline_signature.verify_transient(data, signature))


class _HeaderedLeaseSet:
    """What LeaseSet2 and MetaLeaseSet share through their LeaseSet2Header."""

    __slots__ = ()

    @property
    def destination(self) -> Destination:
        return self.header.destination

    @property
    def hash(self) -> bytes:
        return self.header.destination.hash

    @property
    def published_ms(self) -> int:
        return self.header.published * 1000

    @property
    def expires(self) -> int:
        """Absolute expiry in milliseconds."""
        return self.header.expires * 1000

    @property
    def unpublished(self) -> bool:
        return self.header.unpublished

    def to_bytes(self) -> bytes:
        return self._body() + self.signature

    def signed_data(self) -> bytes:
        return bytes([self.STORE_TYPE]) + self._body()

    def verify(self, now: float | None) -> bool:
        """Signature by the destination (or its transient key, authorised and unexpired at `now` seconds).

        Pass now=None only to skip the transient key's expiry check.
        """
        return self.header.verify_signature(self.STORE_TYPE, self._body(), self.signature, now)

    @classmethod
    def parse(cls, data: bytes):
        return _parse_whole(cls, data)


# ---------------------------------------------------------------- LeaseSet2 (type 3)

@dataclass(frozen=True, slots=True)
class LeaseSet2(_HeaderedLeaseSet):
    """common-structures.rst "LeaseSet2" (store type 3): options, 1-8 (crypto type, key), 0-16 Lease2s."""

    header: LeaseSet2Header
    options: Mapping
    encryption_keys: tuple[tuple[int, bytes], ...]
    leases: tuple[Lease2, ...]
    signature: bytes

    STORE_TYPE: ClassVar[int] = STORE_LEASESET2

    def __post_init__(self) -> None:
        object.__setattr__(self, "encryption_keys", tuple((t, k) for t, k in self.encryption_keys))
        object.__setattr__(self, "leases", tuple(self.leases))
        _require(self, 1 <= len(self.encryption_keys) <= MAX_ENCRYPTION_KEYS, "1 to 8 encryption keys")
        for crypto_type, key in self.encryption_keys:
            spec = CRYPTO_TYPES.get(crypto_type)
            _require(self, 0 <= crypto_type < 1 << 16 and len(key) < 1 << 16, "encryption key type/length out of range")
            _require(self, spec is None or len(key) == spec.public_key_len, f"key length for crypto type {crypto_type}")
        _require(self, len(self.leases) <= MAX_LEASES, "at most 16 leases")

    @classmethod
    def read(cls, r: Reader) -> LeaseSet2:
        header = LeaseSet2Header.read(r)
        options = Mapping.read(r)
        count = r.u8()
        if not 1 <= count <= MAX_ENCRYPTION_KEYS:
            raise r.error(f"{count} encryption keys, need 1 to {MAX_ENCRYPTION_KEYS}", r.pos - 1)
        keys = []
        for _ in range(count):
            crypto_type = r.u16()
            length = r.u16()
            spec = CRYPTO_TYPES.get(crypto_type)
            # unknown types carry their own length so they can be skipped (LeaseSet2 notes)
            if spec is not None and length != spec.public_key_len:
                raise r.error(f"crypto type {crypto_type} key is {spec.public_key_len} bytes, not {length}", r.pos - 2)
            keys.append((crypto_type, r.take(length)))
        count = r.u8()
        if count > MAX_LEASES:
            raise r.error(f"{count} leases, at most {MAX_LEASES}", r.pos - 1)
        leases = tuple(Lease2.read(r) for _ in range(count))
        signature = r.take(header.signature_len)
        return cls(header, options, tuple(keys), leases, signature)

    @classmethod
    def create(cls, keys: PrivateKeys, *, published: int, expires_offset: int,
               encryption_keys: Iterable[tuple[int, bytes]], leases: Iterable[Lease2],
               options: Mapping | None = None, unpublished: bool = False, blinded: bool = False) -> LeaseSet2:
        """Signed by `keys`: the destination key, or its transient key (with the offline block) when offline."""
        header = LeaseSet2Header.create(keys, published=published, expires_offset=expires_offset,
                                        unpublished=unpublished, blinded=blinded)
        unsigned = cls(header, options if options is not None else Mapping(),
                       tuple(encryption_keys), tuple(leases), b"")
        return cls(unsigned.header, unsigned.options, unsigned.encryption_keys, unsigned.leases,
                   keys.sign(unsigned.signed_data()))

    def _body(self) -> bytes:
        parts = [self.header.to_bytes(), self.options.to_bytes(), bytes([len(self.encryption_keys)])]
        for crypto_type, key in self.encryption_keys:
            parts.append(crypto_type.to_bytes(2, "big") + len(key).to_bytes(2, "big") + key)
        parts.append(bytes([len(self.leases)]))
        parts.extend(lease.to_bytes() for lease in self.leases)
        return b"".join(parts)

    def encryption_key(self, crypto_type: int) -> bytes | None:
        for key_type, key in self.encryption_keys:
            if key_type == crypto_type:
                return key
        return None

    @property
    def keys_by_type(self) -> dict[int, bytes]:
        """Crypto type -> key, X25519 first, then in the leaseset's order (first key of a type wins)."""
        ordered = sorted(self.encryption_keys, key=lambda item: item[0] != CRYPTO_X25519)
        keys: dict[int, bytes] = {}
        for crypto_type, key in ordered:
            keys.setdefault(crypto_type, key)
        return keys

    def select_encryption_key(self, supported: Iterable[int]) -> tuple[int, bytes] | None:
        """The server's most preferred key among `supported` types (LeaseSet2 "Encryption Key Preference")."""
        wanted = set(supported)
        return next(((t, k) for t, k in self.encryption_keys if t in wanted), None)


# ---------------------------------------------------------------- MetaLeaseSet (type 7)

@dataclass(frozen=True, slots=True)
class MetaLeaseSet(_HeaderedLeaseSet):
    """common-structures.rst "MetaLeaseSet" (store type 7): options, 1-255 MetaLeases, revoked hashes."""

    header: LeaseSet2Header
    options: Mapping
    leases: tuple[MetaLease, ...]
    revocations: tuple[bytes, ...]
    signature: bytes

    STORE_TYPE: ClassVar[int] = STORE_META_LEASESET

    def __post_init__(self) -> None:
        object.__setattr__(self, "leases", tuple(self.leases))
        object.__setattr__(self, "revocations", tuple(self.revocations))
        _require(self, 1 <= len(self.leases) <= 255, "1 to 255 meta leases")
        _require(self, len(self.revocations) <= 255, "at most 255 revocations")
        _require(self, all(len(h) == HASH_LEN for h in self.revocations), "revocations are 32-byte hashes")

    @classmethod
    def read(cls, r: Reader) -> MetaLeaseSet:
        header = LeaseSet2Header.read(r)
        options = Mapping.read(r)
        count = r.u8()
        if count == 0:
            raise r.error("a MetaLeaseSet needs at least one MetaLease", r.pos - 1)
        leases = tuple(MetaLease.read(r) for _ in range(count))
        revocations = tuple(r.take(HASH_LEN) for _ in range(r.u8()))
        signature = r.take(header.signature_len)
        return cls(header, options, leases, revocations, signature)

    @classmethod
    def create(cls, keys: PrivateKeys, *, published: int, expires_offset: int, leases: Iterable[MetaLease],
               revocations: Iterable[bytes] = (), options: Mapping | None = None,
               unpublished: bool = False) -> MetaLeaseSet:
        header = LeaseSet2Header.create(keys, published=published, expires_offset=expires_offset,
                                        unpublished=unpublished)
        unsigned = cls(header, options if options is not None else Mapping(),
                       tuple(leases), tuple(revocations), b"")
        return cls(unsigned.header, unsigned.options, unsigned.leases, unsigned.revocations,
                   keys.sign(unsigned.signed_data()))

    def _body(self) -> bytes:
        return b"".join([self.header.to_bytes(), self.options.to_bytes(), bytes([len(self.leases)]),
                         *(lease.to_bytes() for lease in self.leases), bytes([len(self.revocations)]),
                         *self.revocations])


# ---------------------------------------------------------------- EncryptedLeaseSet (type 5)

@dataclass(frozen=True, slots=True)
class EncryptedLeaseSet:
    """common-structures.rst "EncryptedLeaseSet" (store type 5), the outer layer of encryptedleaseset.rst.

    Only the blinded key (type 11, Red25519, in practice) and the times are clear; the inner
    leaseset is in `encrypted_data`. Its netDb key is SHA-256(sig type || blinded key).
    """

    blinded_sig_type: int
    blinded_public_key: bytes
    published: int
    expires_offset: int
    flags: int
    offline_signature: OfflineSignature | None
    encrypted_data: bytes
    signature: bytes

    STORE_TYPE: ClassVar[int] = STORE_ENCRYPTED_LEASESET

    def __post_init__(self) -> None:
        spec = SIG_TYPES.get(self.blinded_sig_type)
        _require(self, spec is not None, f"unknown blinded signing type {self.blinded_sig_type}")
        _require(self, len(self.blinded_public_key) == spec.public_key_len,
                 "blinded key length does not match its type")
        _require(self, 0 <= self.published < 1 << 32, "published must fit 4 bytes")
        _require(self, 0 <= self.expires_offset < 1 << 16, "expires offset must fit 2 bytes")
        _require(self, 0 <= self.flags < 1 << 16, "flags must fit 2 bytes")
        _require(self, bool(self.flags & FLAG_OFFLINE_KEYS) == (self.offline_signature is not None),
                 "offline keys flag and offline signature disagree")
        _require(self, 1 <= len(self.encrypted_data) < 1 << 16, "encrypted data must be 1 to 65535 bytes")

    @classmethod
    def read(cls, r: Reader) -> EncryptedLeaseSet:
        sig_type = r.u16()
        spec = _sig_type(r, sig_type, "blinded")
        blinded_key = r.take(spec.public_key_len)
        published = r.u32()
        expires_offset = r.u16()
        flags = r.u16()
        offline = OfflineSignature.read(r, sig_type) if flags & FLAG_OFFLINE_KEYS else None
        length = r.u16()
        if length == 0:
            raise r.error("empty encrypted data", r.pos - 2)
        encrypted = r.take(length)
        signer_type = offline.transient_sig_type if offline is not None else sig_type
        signature = r.take(SIG_TYPES[signer_type].signature_len)
        return cls(sig_type, blinded_key, published, expires_offset, flags, offline, encrypted, signature)

    @classmethod
    def parse(cls, data: bytes) -> EncryptedLeaseSet:
        return _parse_whole(cls, data)

    @classmethod
    def create(cls, sign: Callable[[bytes], bytes], *, blinded_sig_type: int, blinded_public_key: bytes,
               published: int, expires_offset: int, encrypted_data: bytes,
               offline_signature: OfflineSignature | None = None, unpublished: bool = False) -> EncryptedLeaseSet:
        """`sign` is the blinded private key's signer, or the transient key's when offline_signature is given."""
        flags = (FLAG_OFFLINE_KEYS if offline_signature else 0) | (FLAG_UNPUBLISHED if unpublished else 0)
        unsigned = cls(blinded_sig_type, blinded_public_key, published, expires_offset, flags,
                       offline_signature, encrypted_data, b"")
        return cls(blinded_sig_type, blinded_public_key, published, expires_offset, flags,
                   offline_signature, encrypted_data, sign(unsigned.signed_data()))

    def _body(self) -> bytes:
        out = (self.blinded_sig_type.to_bytes(2, "big") + self.blinded_public_key + self.published.to_bytes(4, "big")
               + self.expires_offset.to_bytes(2, "big") + self.flags.to_bytes(2, "big"))
        if self.offline_signature is not None:
            out += self.offline_signature.to_bytes()
        return out + len(self.encrypted_data).to_bytes(2, "big") + self.encrypted_data

    def signed_data(self) -> bytes:
        # encryptedleaseset.rst "Layer 0": the store type byte is covered but not sent
        return bytes([self.STORE_TYPE]) + self._body()

    def to_bytes(self) -> bytes:
        return self._body() + self.signature

    def verify(self, now: float | None) -> bool:
        """Outer signature by the blinded key, or by a transient key it authorised (unexpired at `now`)."""
        data = self.signed_data()
        if self.offline_signature is None:
            return signing.verify(self.blinded_sig_type, self.blinded_public_key, data, self.signature)
        return (self.offline_signature.verify_with_key(self.blinded_sig_type, self.blinded_public_key, now)
                and self.offline_signature.verify_transient(data, self.signature))

    @property
    def hash(self) -> bytes:
        """encryptedleaseset.rst "Format": SHA-256(sig type || blinded public key)."""
        return sha256(self.blinded_sig_type.to_bytes(2, "big") + self.blinded_public_key)

    @property
    def offline_keys(self) -> bool:
        return bool(self.flags & FLAG_OFFLINE_KEYS)

    @property
    def unpublished(self) -> bool:
        return bool(self.flags & FLAG_UNPUBLISHED)

    @property
    def published_ms(self) -> int:
        return self.published * 1000

    @property
    def expires(self) -> int:
        """Absolute expiry in milliseconds."""
        return (self.published + self.expires_offset) * 1000


# ---------------------------------------------------------------- by store type

AnyLeaseSet = Union[LeaseSet, LeaseSet2, EncryptedLeaseSet, MetaLeaseSet]

LEASESET_TYPES: dict[int, type] = {
    STORE_LEASESET: LeaseSet,
    STORE_LEASESET2: LeaseSet2,
    STORE_ENCRYPTED_LEASESET: EncryptedLeaseSet,
    STORE_META_LEASESET: MetaLeaseSet,
}


def parse_leaseset(store_type: int, data: bytes) -> AnyLeaseSet:
    """The leaseset in a DatabaseStore of `store_type` (i2np.rst "DatabaseStore", type field)."""
    cls = LEASESET_TYPES.get(store_type)
    if cls is None:
        raise ParseError(f"store type {store_type} is not a leaseset", structure="DatabaseStore")
    return cls.parse(data)


def store_type(leaseset: AnyLeaseSet) -> int:
    """The DatabaseStore type byte that carries `leaseset`."""
    try:
        return leaseset.STORE_TYPE
    except AttributeError:
        raise TypeError(f"{type(leaseset).__name__} is not a leaseset") from None


__all__ = [
    "AnyLeaseSet", "EncryptedLeaseSet", "FLAG_BLINDED", "FLAG_OFFLINE_KEYS", "FLAG_UNPUBLISHED", "LEASESET_TYPES",
    "Lease", "Lease2", "LeaseSet", "LeaseSet2", "LeaseSet2Header", "MAX_ENCRYPTION_KEYS", "MAX_LEASES",
    "MetaLease", "MetaLeaseSet", "OfflineSignature", "STORE_ENCRYPTED_LEASESET", "STORE_LEASESET",
    "STORE_LEASESET2", "STORE_META_LEASESET", "parse_leaseset", "store_type",
]
