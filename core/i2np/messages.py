"""Typed I2NP message bodies other than tunnel builds (i2np.rst "Messages")."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from ..data.errors import ParseError
from ..data.leaseset import AnyLeaseSet, parse_leaseset, store_type
from ..data.reader import Reader
from ..data.routerinfo import RouterInfo
from .header import STANDARD_HEADER_SIZE, I2NPMessage, MessageType, encode_standard, read_standard

HASH_SIZE = 32
TUNNEL_DATA_SIZE = 1024
MAX_EXCLUDED_PEERS = 512
MAX_SEARCH_REPLY_PEERS = 255
MAX_ELGAMAL_REPLY_TAGS = 32
ELGAMAL_REPLY_TAG_SIZE = 32
ECIES_REPLY_TAG_SIZE = 8
MAX_GARLIC_SIZE = 65536  # i2np.rst "Garlic": length 0 - 64 KB
MAX_ROUTER_INFO_SIZE = 65536  # bound on a decompressed RouterInfo: a gzip bomb stops here

_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
# i2np.rst "DatabaseStore" notes: gzip header as Java writes it (mtime 0, XFL 2, OS 0xFF)
_GZIP_HEADER = bytes.fromhex("1f8b08000000000002ff")
_TUNNEL_DATA = struct.Struct(">I1024s")


def _check_hash(value: bytes, name: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_u32(value: int, name: str) -> None:
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} {value} out of range")


def _check_tunnel_id(value: int, name: str) -> None:
    if not 0 < value <= _U32_MAX:
        raise ValueError(f"{name} {value} must be a nonzero 4-byte TunnelId")


def compress_router_info(router_info: bytes) -> bytes:
    """Gzip a RouterInfo the way the DatabaseStore notes ask (fixed header, maximum compression)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(router_info) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(router_info), len(router_info) & _U32_MAX)
    return _GZIP_HEADER + body + trailer


def decompress_router_info(data: bytes, max_size: int = MAX_ROUTER_INFO_SIZE) -> bytes:
    """Gunzip one gzip member, refusing output beyond max_size, bad CRCs and trailing bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper only
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise ParseError(f"bad gzip data: {exc}", structure="DatabaseStore.RouterInfo", offset=0) from None
    if len(out) > max_size:
        raise ParseError(f"decompressed RouterInfo exceeds {max_size} bytes", structure="DatabaseStore.RouterInfo")
    if not inflater.eof:
        raise ParseError("truncated gzip data", structure="DatabaseStore.RouterInfo", offset=len(data))
    if inflater.unused_data:
        raise ParseError(f"{len(inflater.unused_data)} bytes after the gzip data",
                         structure="DatabaseStore.RouterInfo", offset=len(data) - len(inflater.unused_data))
    return out


class StoreType(IntEnum):
    """DatabaseStore type byte, bits 3-0 (i2np.rst "DatabaseStore")."""

    ROUTER_INFO = 0
    LEASE_SET = 1
    LEASE_SET2 = 3
    ENCRYPTED_LEASE_SET = 5
    META_LEASE_SET = 7


_STORE_TYPES = frozenset(int(t) for t in StoreType)


@dataclass(frozen=True, slots=True)
class DatabaseStore:
    """i2np.rst "DatabaseStore" (type 1).

    `data` is the stored entry as it travels: for a RouterInfo the gzip-compressed bytes (without
    their 2-byte length), for the LeaseSet types the uncompressed structure.
    """

    TYPE: ClassVar[int] = MessageType.DATABASE_STORE

    key: bytes
    store_type: StoreType
    data: bytes
    reply_token: int = 0
    reply_tunnel_id: int = 0
    reply_gateway: bytes | None = None
    ignored_type_bits: int = 0  # type byte bits 7-4: ignored since 0.9.18, kept for an exact round trip

    def __post_init__(self) -> None:
        _check_hash(self.key, "key")
        if self.store_type not in _STORE_TYPES:
            raise ValueError(f"store type {self.store_type} is not one of {sorted(_STORE_TYPES)}")
        _check_u32(self.reply_token, "reply_token")
        _check_u32(self.reply_tunnel_id, "reply_tunnel_id")
        if self.reply_token:
            if self.reply_gateway is None:
                raise ValueError("a reply token needs a reply gateway")
            _check_hash(self.reply_gateway, "reply_gateway")
        elif self.reply_gateway is not None or self.reply_tunnel_id:
            raise ValueError("reply tunnel and gateway exist only with a nonzero reply token")
        if not self.data:
            raise ValueError("empty data")
        if self.store_type == StoreType.ROUTER_INFO and len(self.data) > 0xFFFF:
            raise ValueError("compressed RouterInfo longer than 65535 bytes")
        if self.ignored_type_bits & ~0xF0:
            raise ValueError("ignored_type_bits holds only bits 7-4")

    @classmethod
    def for_router_info(cls, key: bytes, router_info: bytes, *, reply_token: int = 0, reply_tunnel_id: int = 0,
                        reply_gateway: bytes | None = None) -> Self:
        """A store of an uncompressed RouterInfo, gzipped here."""
        return cls(key, StoreType.ROUTER_INFO, compress_router_info(router_info), reply_token, reply_tunnel_id,
                   reply_gateway)

    @property
    def is_router_info(self) -> bool:
        return self.store_type == StoreType.ROUTER_INFO

    def router_info_bytes(self, max_size: int = MAX_ROUTER_INFO_SIZE) -> bytes:
        """The decompressed RouterInfo; ParseError for a LeaseSet store, bad gzip or more than max_size bytes."""
        if not self.is_router_info:
            raise ParseError(f"store type {self.store_type} is not a RouterInfo", structure="DatabaseStore")
        return decompress_router_info(self.data, max_size)

    def router_info(self, max_size: int = MAX_ROUTER_INFO_SIZE) -> RouterInfo:
        """The decompressed and parsed RouterInfo (its signature is not checked here)."""
        return RouterInfo.parse(self.router_info_bytes(max_size))

    @classmethod
    def for_lease_set(cls, lease_set: AnyLeaseSet, *, reply_token: int = 0, reply_tunnel_id: int = 0,
                      reply_gateway: bytes | None = None) -> Self:
        """A store of any LeaseSet variant under its destination hash, with the matching store type."""
        return cls(lease_set.hash, StoreType(store_type(lease_set)), lease_set.to_bytes(), reply_token,
                   reply_tunnel_id, reply_gateway)

    def lease_set(self) -> AnyLeaseSet:
        """The parsed LeaseSet, LeaseSet2, EncryptedLeaseSet or MetaLeaseSet; ParseError for a RouterInfo store."""
        return parse_leaseset(self.store_type, self.data)

    @classmethod
    def read(cls, r: Reader) -> Self:
        """Reads to the end of the reader: a LeaseSet payload has no length of its own."""
        key = r.take(HASH_SIZE)
        type_offset = r.pos
        type_byte = r.u8()
        store_type = type_byte & 0x0F
        if store_type not in _STORE_TYPES:
            raise r.error(f"invalid store type {store_type}", type_offset)
        reply_token = r.u32()
        reply_tunnel_id = 0
        reply_gateway = None
        if reply_token:
            reply_tunnel_id = r.u32()
            reply_gateway = r.take(HASH_SIZE)
        if store_type == StoreType.ROUTER_INFO:
            size = r.u16()
            if size == 0:
                raise r.error("empty RouterInfo data")
            data = r.take(size)
        else:
            if r.remaining == 0:
                raise r.error("empty LeaseSet data")
            data = r.rest()
        return cls(key, StoreType(store_type), data, reply_token, reply_tunnel_id, reply_gateway, type_byte & 0xF0)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "DatabaseStore")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        parts = [self.key, bytes((self.store_type | self.ignored_type_bits,)), self.reply_token.to_bytes(4, "big")]
        if self.reply_token:
            parts.append(self.reply_tunnel_id.to_bytes(4, "big"))
            parts.append(self.reply_gateway)  # type: ignore[arg-type]  # checked in __post_init__
        if self.store_type == StoreType.ROUTER_INFO:
            parts.append(len(self.data).to_bytes(2, "big"))
        parts.append(self.data)
        return b"".join(parts)


class LookupType(IntEnum):
    """DatabaseLookup flag bits 3-2."""

    ANY = 0
    LEASE_SET = 1
    ROUTER_INFO = 2
    EXPLORATION = 3


class ReplyEncryption(IntEnum):
    """DatabaseLookup flag bits 4 (ECIESFlag) and 1 (encryptionFlag), i2np.rst "Reply Encryption"."""

    NONE = 0x00
    ELGAMAL = 0x02  # AES reply with 32-byte session tags (0.9.7; deprecated 0.9.58)
    ECIES = 0x10  # ChaCha/Poly reply with one 8-byte tag (0.9.46)


_DELIVERY_FLAG = 0x01
_ENCRYPTION_BITS = 0x12
_IGNORED_LOOKUP_BITS = 0xE0


@dataclass(frozen=True, slots=True)
class DatabaseLookup:
    """i2np.rst "DatabaseLookup" (type 2).

    `reply_tunnel_id` None means deliveryFlag 0: reply directly to the router `from_hash`;
    otherwise reply to that tunnel at gateway `from_hash`.
    """

    TYPE: ClassVar[int] = MessageType.DATABASE_LOOKUP

    key: bytes
    from_hash: bytes
    lookup_type: LookupType = LookupType.ANY
    reply_tunnel_id: int | None = None
    excluded_peers: tuple[bytes, ...] = ()
    reply_encryption: ReplyEncryption = ReplyEncryption.NONE
    reply_key: bytes | None = None
    reply_tags: tuple[bytes, ...] = ()
    ignored_flag_bits: int = 0  # flag bits 7-5: ignored since 0.9.6, kept for an exact round trip

    def __post_init__(self) -> None:
        _check_hash(self.key, "key")
        _check_hash(self.from_hash, "from_hash")
        if self.lookup_type not in (0, 1, 2, 3):
            raise ValueError(f"lookup type {self.lookup_type} out of range")
        if self.reply_tunnel_id is not None:
            _check_tunnel_id(self.reply_tunnel_id, "reply_tunnel_id")
        if len(self.excluded_peers) > MAX_EXCLUDED_PEERS:
            raise ValueError(f"{len(self.excluded_peers)} excluded peers, at most {MAX_EXCLUDED_PEERS}")
        for peer in self.excluded_peers:
            _check_hash(peer, "excluded peer")
        if self.ignored_flag_bits & ~_IGNORED_LOOKUP_BITS:
            raise ValueError("ignored_flag_bits holds only bits 7-5")
        if self.reply_encryption == ReplyEncryption.NONE:
            if self.reply_key is not None or self.reply_tags:
                raise ValueError("reply key and tags need reply encryption")
            return
        if self.reply_key is None or len(self.reply_key) != 32:
            raise ValueError("reply encryption needs a 32-byte reply key")
        if self.reply_encryption == ReplyEncryption.ECIES:
            if len(self.reply_tags) != 1 or len(self.reply_tags[0]) != ECIES_REPLY_TAG_SIZE:
                raise ValueError("ECIES reply encryption needs exactly one 8-byte tag")
        elif self.reply_encryption == ReplyEncryption.ELGAMAL:
            if not 1 <= len(self.reply_tags) <= MAX_ELGAMAL_REPLY_TAGS:
                raise ValueError(f"ElGamal reply encryption needs 1-{MAX_ELGAMAL_REPLY_TAGS} tags")
            if any(len(tag) != ELGAMAL_REPLY_TAG_SIZE for tag in self.reply_tags):
                raise ValueError("ElGamal reply tags are 32 bytes")
        else:
            raise ValueError(f"unknown reply encryption {self.reply_encryption}")

    @property
    def is_exploratory(self) -> bool:
        """Lookup type 3, or the older form: an all-zero hash among the excluded peers."""
        return self.lookup_type == LookupType.EXPLORATION or bytes(HASH_SIZE) in self.excluded_peers

    @classmethod
    def read(cls, r: Reader) -> Self:
        key = r.take(HASH_SIZE)
        from_hash = r.take(HASH_SIZE)
        flag_offset = r.pos
        flag = r.u8()
        reply_tunnel_id = None
        if flag & _DELIVERY_FLAG:
            tunnel_offset = r.pos
            reply_tunnel_id = r.u32()
            if reply_tunnel_id == 0:
                raise r.error("reply tunnel id must be nonzero", tunnel_offset)
        count_offset = r.pos
        count = r.u16()
        if count > MAX_EXCLUDED_PEERS:
            raise r.error(f"{count} excluded peers, at most {MAX_EXCLUDED_PEERS}", count_offset)
        excluded_blob = r.take(count * HASH_SIZE)
        excluded = tuple(excluded_blob[i:i + HASH_SIZE] for i in range(0, len(excluded_blob), HASH_SIZE))
        encryption_bits = flag & _ENCRYPTION_BITS
        reply_key = None
        tags: tuple[bytes, ...] = ()
        if encryption_bits == _ENCRYPTION_BITS:
            raise r.error("flag bits 4 and 1 together (DH-derived reply keys) are not defined", flag_offset)
        if encryption_bits:
            reply_key = r.take(32)
            tags_offset = r.pos
            tag_count = r.u8()
            if encryption_bits == ReplyEncryption.ECIES:
                if tag_count != 1:
                    raise r.error(f"ECIES reply needs exactly 1 tag, got {tag_count}", tags_offset)
                tag_size = ECIES_REPLY_TAG_SIZE
            else:
                if not 1 <= tag_count <= MAX_ELGAMAL_REPLY_TAGS:
                    raise r.error(f"{tag_count} reply tags, valid 1-{MAX_ELGAMAL_REPLY_TAGS}", tags_offset)
                tag_size = ELGAMAL_REPLY_TAG_SIZE
            tags = tuple(r.take(tag_size) for _ in range(tag_count))
        return cls(key, from_hash, LookupType((flag >> 2) & 0x03), reply_tunnel_id, excluded,
                   ReplyEncryption(encryption_bits), reply_key, tags, flag & _IGNORED_LOOKUP_BITS)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "DatabaseLookup")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        flag = (self.ignored_flag_bits | self.reply_encryption | (self.lookup_type << 2)
                | (_DELIVERY_FLAG if self.reply_tunnel_id is not None else 0))
        parts = [self.key, self.from_hash, bytes((flag,))]
        if self.reply_tunnel_id is not None:
            parts.append(self.reply_tunnel_id.to_bytes(4, "big"))
        parts.append(len(self.excluded_peers).to_bytes(2, "big"))
        parts.extend(self.excluded_peers)
        if self.reply_encryption != ReplyEncryption.NONE:
            parts.append(self.reply_key)  # type: ignore[arg-type]  # checked in __post_init__
            parts.append(bytes((len(self.reply_tags),)))
            parts.extend(self.reply_tags)
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class DatabaseSearchReply:
    """i2np.rst "DatabaseSearchReply" (type 3): peers closer to `key`, from an unauthenticated `from_hash`."""

    TYPE: ClassVar[int] = MessageType.DATABASE_SEARCH_REPLY

    key: bytes
    peer_hashes: tuple[bytes, ...]
    from_hash: bytes

    def __post_init__(self) -> None:
        _check_hash(self.key, "key")
        _check_hash(self.from_hash, "from_hash")
        if len(self.peer_hashes) > MAX_SEARCH_REPLY_PEERS:
            raise ValueError(f"{len(self.peer_hashes)} peer hashes, at most {MAX_SEARCH_REPLY_PEERS}")
        for peer in self.peer_hashes:
            _check_hash(peer, "peer hash")

    @classmethod
    def read(cls, r: Reader) -> Self:
        key = r.take(HASH_SIZE)
        count = r.u8()
        blob = r.take(count * HASH_SIZE)
        peers = tuple(blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))
        return cls(key, peers, r.take(HASH_SIZE))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "DatabaseSearchReply")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        return b"".join((self.key, bytes((len(self.peer_hashes),)), *self.peer_hashes, self.from_hash))


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """i2np.rst "DeliveryStatus" (type 10): acknowledges message `msg_id`."""

    TYPE: ClassVar[int] = MessageType.DELIVERY_STATUS

    msg_id: int
    timestamp_ms: int

    def __post_init__(self) -> None:
        _check_u32(self.msg_id, "msg_id")
        if not 0 <= self.timestamp_ms <= _U64_MAX:
            raise ValueError(f"timestamp {self.timestamp_ms} out of range")

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32(), r.u64())

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "DeliveryStatus")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        return self.msg_id.to_bytes(4, "big") + self.timestamp_ms.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Garlic:
    """i2np.rst "Garlic" (type 11): the encrypted blob (ElGamal/AES or ECIES-ratchet), opaque here."""

    TYPE: ClassVar[int] = MessageType.GARLIC

    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) > MAX_GARLIC_SIZE:
            raise ValueError(f"garlic data of {len(self.data)} bytes, at most {MAX_GARLIC_SIZE}")

    @classmethod
    def read(cls, r: Reader) -> Self:
        length_offset = r.pos
        length = r.u32()
        if length > MAX_GARLIC_SIZE:
            raise r.error(f"garlic length {length} exceeds {MAX_GARLIC_SIZE}", length_offset)
        return cls(r.take(length))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "Garlic")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        return len(self.data).to_bytes(4, "big") + self.data


@dataclass(frozen=True, slots=True)
class TunnelData:
    """i2np.rst "TunnelData" (type 18): a 1024-byte encrypted tunnel message for `tunnel_id`."""

    TYPE: ClassVar[int] = MessageType.TUNNEL_DATA
    SIZE: ClassVar[int] = 4 + TUNNEL_DATA_SIZE

    tunnel_id: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 < self.tunnel_id <= _U32_MAX:
            raise ValueError(f"tunnel id {self.tunnel_id} must be nonzero and fit 4 bytes")
        if len(self.data) != TUNNEL_DATA_SIZE:
            raise ValueError(f"tunnel data must be {TUNNEL_DATA_SIZE} bytes, got {len(self.data)}")

    @classmethod
    def read(cls, r: Reader) -> Self:
        tunnel_id = r.u32()
        if tunnel_id == 0:
            raise r.error("tunnel id must be nonzero", r.pos - 4)
        return cls(tunnel_id, r.take(TUNNEL_DATA_SIZE))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        # hot path (every tunnel hop): one length check and one unpack instead of a Reader
        if len(data) != cls.SIZE:
            raise ParseError(f"body is {len(data)} bytes, must be {cls.SIZE}", structure="TunnelData", offset=0)
        tunnel_id, payload = _TUNNEL_DATA.unpack(data)
        if tunnel_id == 0:
            raise ParseError("tunnel id must be nonzero", structure="TunnelData", offset=0)
        return cls(tunnel_id, payload)

    def to_bytes(self) -> bytes:
        return _TUNNEL_DATA.pack(self.tunnel_id, self.data)


@dataclass(frozen=True, slots=True)
class TunnelGateway:
    """i2np.rst "TunnelGateway" (type 19): `message` (standard header form) for inbound tunnel `tunnel_id`."""

    TYPE: ClassVar[int] = MessageType.TUNNEL_GATEWAY

    tunnel_id: int
    message: I2NPMessage

    def __post_init__(self) -> None:
        _check_tunnel_id(self.tunnel_id, "tunnel_id")
        if STANDARD_HEADER_SIZE + len(self.message.body) > 0xFFFF:
            raise ValueError("wrapped message does not fit the 2-byte length")

    @classmethod
    def read(cls, r: Reader) -> Self:
        tunnel_id = r.u32()
        if tunnel_id == 0:
            raise r.error("tunnel id must be nonzero", r.pos - 4)
        length = r.u16()
        inner = r.sub(length, "TunnelGateway.message")
        message = read_standard(inner)
        inner.expect_end()
        return cls(tunnel_id, message)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "TunnelGateway")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        inner = encode_standard(self.message)
        return self.tunnel_id.to_bytes(4, "big") + len(inner).to_bytes(2, "big") + inner


@dataclass(frozen=True, slots=True)
class Data:
    """i2np.rst "Data" (type 20): opaque client payload, only ever inside garlic."""

    TYPE: ClassVar[int] = MessageType.DATA

    payload: bytes

    def __post_init__(self) -> None:
        if len(self.payload) > _U32_MAX:
            raise ValueError("payload does not fit the 4-byte length")

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.take(r.u32()))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "Data")
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        return len(self.payload).to_bytes(4, "big") + self.payload
