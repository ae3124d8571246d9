"""SSU2 payload blocks (ssu2.rst "Payload Format" and "Block Specifications").

DateTime, Options, I2NP and Padding have the NTCP2 layout and type numbers, so those classes are shared.
"""
from __future__ import annotations

import gzip
import ipaddress
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Iterable, Self, Union

from core.data.errors import ParseError
from core.data.reader import Reader
from core.transport.ntcp2.blocks import DateTimeBlock, I2NPBlock, OptionsBlock, PaddingBlock, encode_blocks  # noqa: F401
from core.transport.ntcp2.blocks import parse_blocks as _parse_blocks
from core.transport.ntcp2.blocks import read_block as _read_block
from core.transport.ntcp2.blocks import TerminationBlock as _NTCP2Termination

BLOCK_HEADER_SIZE = 3
_U32 = 0xFFFFFFFF

DATETIME = 0
OPTIONS = 1
ROUTER_INFO = 2
I2NP = 3
FIRST_FRAGMENT = 4
FOLLOW_ON_FRAGMENT = 5
TERMINATION = 6
RELAY_REQUEST = 7
RELAY_RESPONSE = 8
RELAY_INTRO = 9
PEER_TEST = 10
NEXT_NONCE = 11
ACK = 12
ADDRESS = 13
RELAY_TAG_REQUEST = 15
RELAY_TAG = 16
NEW_TOKEN = 17
PATH_CHALLENGE = 18
PATH_RESPONSE = 19
FIRST_PACKET_NUMBER = 20
CONGESTION = 21
PADDING = 254

MAX_BLOCK_DATA = 0xFFFF
MAX_ROUTER_INFO = 65536            # uncompressed; a gzip bomb stops here
MAX_FRAGMENT_NUMBER = 127


class TerminationReason(IntEnum):
    """ssu2.rst "Termination" reason codes."""

    NORMAL_CLOSE = 0
    TERMINATION_RECEIVED = 1
    IDLE_TIMEOUT = 2
    ROUTER_SHUTDOWN = 3
    DATA_PHASE_AEAD_FAILURE = 4
    INCOMPATIBLE_OPTIONS = 5
    INCOMPATIBLE_SIGNATURE_TYPE = 6
    CLOCK_SKEW = 7
    PADDING_VIOLATION = 8
    AEAD_FRAMING_ERROR = 9
    PAYLOAD_FORMAT_ERROR = 10
    SESSION_REQUEST_ERROR = 11
    SESSION_CREATED_ERROR = 12
    SESSION_CONFIRMED_ERROR = 13
    TIMEOUT = 14
    ROUTER_INFO_SIGNATURE_FAILURE = 15
    STATIC_KEY_MISMATCH = 16
    BANNED = 17
    BAD_TOKEN = 18
    CONNECTION_LIMITS = 19
    INCOMPATIBLE_VERSION = 20
    WRONG_NET_ID = 21
    REPLACED_BY_NEW_SESSION = 22


def _header(block_type: int, data_len: int) -> bytes:
    if data_len > MAX_BLOCK_DATA:
        raise ValueError(f"SSU2 block data of {data_len} bytes is too long")
    return bytes((block_type, data_len >> 8, data_len & 0xFF))


class _Simple:
    """to_bytes() from TYPE and data() for the SSU2-only blocks."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        data = self.data()  # type: ignore[attr-defined]
        return _header(self.TYPE, len(data)) + data  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TerminationBlock(_NTCP2Termination):
    """ssu2.rst "Termination": the NTCP2 layout under block type 6."""

    TYPE: ClassVar[int] = TERMINATION

    def to_bytes(self) -> bytes:
        return _header(TERMINATION, 9 + len(self.additional_data)) + self.data()


@dataclass(frozen=True, slots=True)
class RouterInfoBlock(_Simple):
    """ssu2.rst "RouterInfo": flags (bit 0 flood, bit 1 gzip), frag (always 0/1), the RouterInfo."""

    TYPE: ClassVar[int] = ROUTER_INFO
    payload: bytes              # as carried: gzip data when `compressed`
    flags: int = 0
    frag: int = 0x01

    FLAG_FLOOD: ClassVar[int] = 0x01
    FLAG_GZIP: ClassVar[int] = 0x02

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFF or not 0 <= self.frag <= 0xFF:
            raise ValueError("RouterInfo block flags out of range")

    @classmethod
    def of(cls, router_info: bytes, *, flood: bool = False, compress: bool = False) -> Self:
        flags = cls.FLAG_FLOOD if flood else 0
        if compress:
            return cls(gzip.compress(router_info, mtime=0), flags | cls.FLAG_GZIP)
        return cls(router_info, flags)

    @property
    def flood_request(self) -> bool:
        return bool(self.flags & self.FLAG_FLOOD)

    @property
    def compressed(self) -> bool:
        return bool(self.flags & self.FLAG_GZIP)

    @property
    def router_info(self) -> bytes:
        """The RouterInfo bytes, gunzipped (bounded) when compressed; ParseError when that fails."""
        if not self.compressed:
            return self.payload
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(self.payload, MAX_ROUTER_INFO + 1)
        except zlib.error as exc:
            raise ParseError(f"bad gzip: {exc}", structure="SSU2 RouterInfo block") from None
        if len(out) > MAX_ROUTER_INFO or not d.eof:
            raise ParseError("gzip data too long or truncated", structure="SSU2 RouterInfo block")
        return out

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 3:
            raise r.error("RouterInfo block holds no RouterInfo")
        flags, frag = r.u8(), r.u8()
        if frag != 0x01:
            raise r.error(f"RouterInfo fragment field {frag:#x}, must be 0/1")
        return cls(r.rest(), flags, frag)

    def data(self) -> bytes:
        return bytes((self.flags, self.frag)) + self.payload


@dataclass(frozen=True, slots=True)
class FirstFragmentBlock(_Simple):
    """ssu2.rst "First Fragment": the 9-byte short I2NP header and the start of the body."""

    TYPE: ClassVar[int] = FIRST_FRAGMENT
    msg_type: int
    msg_id: int
    expiration: int
    fragment: bytes

    def __post_init__(self) -> None:
        if not (0 <= self.msg_type <= 0xFF and 0 <= self.msg_id <= _U32 and 0 <= self.expiration <= _U32):
            raise ValueError("First Fragment header field out of range")
        if not self.fragment:
            raise ValueError("First Fragment must carry data")

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 10:
            raise r.error(f"First Fragment size {r.remaining}, must be at least 10")
        return cls(r.u8(), r.u32(), r.u32(), r.rest())

    def data(self) -> bytes:
        return (bytes((self.msg_type,)) + self.msg_id.to_bytes(4, "big")
                + self.expiration.to_bytes(4, "big") + self.fragment)


@dataclass(frozen=True, slots=True)
class FollowOnFragmentBlock(_Simple):
    """ssu2.rst "Follow-on Fragment": fragment number 1-127, isLast bit, message id, data."""

    TYPE: ClassVar[int] = FOLLOW_ON_FRAGMENT
    fragment_number: int
    is_last: bool
    msg_id: int
    fragment: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.fragment_number <= MAX_FRAGMENT_NUMBER or not 0 <= self.msg_id <= _U32:
            raise ValueError("Follow-on Fragment number or id out of range")
        if not self.fragment:
            raise ValueError("Follow-on Fragment must carry data")

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 6:
            raise r.error(f"Follow-on Fragment size {r.remaining}, must be at least 6")
        frag = r.u8()
        if frag >> 1 == 0:
            raise r.error("Follow-on Fragment number 0")
        return cls(frag >> 1, bool(frag & 1), r.u32(), r.rest())

    def data(self) -> bytes:
        return bytes(((self.fragment_number << 1) | int(self.is_last),)) + self.msg_id.to_bytes(4, "big") + self.fragment


def _read_endpoint(r: Reader, size: int) -> tuple[int, str]:
    if size not in (6, 18):
        raise r.error(f"endpoint size {size}, must be 6 or 18")
    port = r.u16()
    return port, str(ipaddress.ip_address(r.take(size - 2)))


def _endpoint(port: int, host: str) -> bytes:
    return port.to_bytes(2, "big") + ipaddress.ip_address(host).packed


@dataclass(frozen=True, slots=True)
class AddressBlock(_Simple):
    """ssu2.rst "Address": port and IPv4/IPv6 address as the sender sees the receiver."""

    TYPE: ClassVar[int] = ADDRESS
    port: int
    host: str

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError("port out of range")
        ipaddress.ip_address(self.host)

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        return cls(*_read_endpoint(r, r.remaining))

    def data(self) -> bytes:
        return _endpoint(self.port, self.host)


@dataclass(frozen=True, slots=True)
class AckBlock(_Simple):
    """ssu2.rst "Ack": ack through, acnt, then (nack, ack) count pairs going down."""

    TYPE: ClassVar[int] = ACK
    ack_through: int
    acnt: int = 0
    ranges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.ack_through <= _U32 or not 0 <= self.acnt <= 0xFF:
            raise ValueError("ACK through or count out of range")
        for nack, ack in self.ranges:
            if not (0 <= nack <= 0xFF and 0 <= ack <= 0xFF) or nack == ack == 0:
                raise ValueError("bad ACK range")

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 5 or (r.remaining - 5) % 2:
            raise r.error(f"ACK block size {r.remaining}, must be 5 plus pairs")
        through, acnt = r.u32(), r.u8()
        pairs = r.rest()
        ranges = tuple(zip(pairs[0::2], pairs[1::2]))
        if (0, 0) in ranges:
            raise r.error("ACK range with zero nacks and zero acks")
        return cls(through, acnt, ranges)

    def data(self) -> bytes:
        return (self.ack_through.to_bytes(4, "big") + bytes((self.acnt,))
                + b"".join(bytes(pair) for pair in self.ranges))

    def intervals(self) -> list[tuple[int, int]]:
        """The acknowledged packet numbers as (high, low) runs, highest first (never below 0)."""
        out = []
        n = self.ack_through
        out.append((n, max(0, n - self.acnt)))
        n -= self.acnt + 1
        for nack, ack in self.ranges:
            n -= nack
            if ack and n >= 0:
                out.append((n, max(0, n - ack + 1)))
            n -= ack
        return [run for run in out if run[0] >= 0]

    def acked(self) -> list[int]:
        """Every packet number this block acknowledges, highest first (never below 0)."""
        return [n for high, low in self.intervals() for n in range(high, low - 1, -1)]

    @classmethod
    def from_packets(cls, received: Iterable[int], max_ranges: int = 32) -> Self:
        """The ACK for a set of received packet numbers: the highest, then up to max_ranges ranges."""
        nums = sorted(set(received), reverse=True)
        if not nums:
            raise ValueError("nothing to acknowledge")
        runs: list[list[int]] = []                 # [high, low] of consecutive runs, going down
        for n in nums:
            if runs and runs[-1][1] - 1 == n:
                runs[-1][1] = n
            else:
                runs.append([n, n])
        return cls.from_runs(runs, max_ranges)

    @classmethod
    def from_runs(cls, runs, max_ranges: int = 32) -> Self:
        """The ACK for received packets given as (high, low) runs, highest first, not touching."""
        if not runs:
            raise ValueError("nothing to acknowledge")
        cap = 0xFF * (max_ranges + 1)              # more than the ranges can carry is never sent
        top, first_low = runs[0]
        acnt = min(top - first_low, 0xFF)
        ranges: list[tuple[int, int]] = []
        low = top - acnt                            # lowest packet covered so far
        pending_ack = min(top - first_low - acnt, cap)
        for high, run_low in runs[1:]:
            gap = low - pending_ack - 1 - high
            _emit(ranges, 0, pending_ack)
            low -= pending_ack
            _emit(ranges, min(gap, cap), min(high - run_low + 1, cap))
            low = run_low
            pending_ack = 0
            if len(ranges) >= max_ranges:
                break
        if pending_ack:
            _emit(ranges, 0, pending_ack)
        return cls(top, acnt, tuple(ranges[:max_ranges]))


def _emit(ranges: list[tuple[int, int]], nack: int, ack: int) -> None:
    """Append (nack, ack) pairs, splitting counts above 255 (ssu2.rst: either may be zero, not both)."""
    while nack > 0xFF:
        ranges.append((0xFF, 0))
        nack -= 0xFF
    while ack > 0xFF:
        ranges.append((nack, 0xFF))
        nack = 0
        ack -= 0xFF
    if nack or ack:
        ranges.append((nack, ack))


def _read_relay(r: Reader) -> tuple:
    """nonce, relay tag, timestamp, version, Alice's endpoint and the signature: RelayRequest's signed part."""
    nonce, tag, ts, ver, asz = r.u32(), r.u32(), r.u32(), r.u8(), r.u8()
    port, host = _read_endpoint(r, asz)
    return nonce, tag, ts, ver, port, host, r.rest()


def _relay_signed(block) -> bytes:
    endpoint = _endpoint(block.port, block.host)
    return (block.nonce.to_bytes(4, "big") + block.relay_tag.to_bytes(4, "big") + block.timestamp.to_bytes(4, "big")
            + bytes((block.version, len(endpoint))) + endpoint)


@dataclass(frozen=True, slots=True)
class RelayRequestBlock(_Simple):
    """ssu2.rst "RelayRequest" (Alice to Bob)."""

    TYPE: ClassVar[int] = RELAY_REQUEST
    nonce: int
    relay_tag: int
    timestamp: int
    version: int
    port: int
    host: str
    signature: bytes
    flag: int = 0

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        flag = r.u8()
        return cls(*_read_relay(r), flag)

    def signed_data(self) -> bytes:
        return _relay_signed(self)

    def data(self) -> bytes:
        return bytes((self.flag,)) + self.signed_data() + self.signature


@dataclass(frozen=True, slots=True)
class RelayResponseBlock(_Simple):
    """ssu2.rst "RelayResponse": code, nonce, timestamp, Charlie's endpoint (csz may be 0), signature, token."""

    TYPE: ClassVar[int] = RELAY_RESPONSE
    code: int
    nonce: int
    timestamp: int
    version: int
    port: int | None
    host: str | None
    signature: bytes
    token: int | None = None
    flag: int = 0
    SIGNATURE_SIZE: ClassVar[int] = 64     # Ed25519; the only router signature type SSU2 peers use

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        flag, code, nonce, ts, ver, csz = r.u8(), r.u8(), r.u32(), r.u32(), r.u8(), r.u8()
        port = host = None
        if csz:
            port, host = _read_endpoint(r, csz)
        rest = r.rest()
        token = None
        if code == 0:
            if len(rest) < 8:
                raise r.error("accepted RelayResponse without a token")
            rest, token = rest[:-8], int.from_bytes(rest[-8:], "big")
        return cls(code, nonce, ts, ver, port, host, rest, token, flag)

    def signed_data(self) -> bytes:
        endpoint = _endpoint(self.port, self.host) if self.host is not None and self.port is not None else b""
        return (self.nonce.to_bytes(4, "big") + self.timestamp.to_bytes(4, "big")
                + bytes((self.version, len(endpoint))) + endpoint)

    def data(self) -> bytes:
        token = self.token.to_bytes(8, "big") if self.token is not None else b""
        return bytes((self.flag, self.code)) + self.signed_data() + self.signature + token


@dataclass(frozen=True, slots=True)
class RelayIntroBlock(_Simple):
    """ssu2.rst "RelayIntro" (Bob to Charlie): Alice's hash, then the RelayRequest fields as signed by Alice."""

    TYPE: ClassVar[int] = RELAY_INTRO
    alice_hash: bytes
    nonce: int
    relay_tag: int
    timestamp: int
    version: int
    port: int
    host: str
    signature: bytes
    flag: int = 0

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        flag, alice = r.u8(), r.take(32)
        return cls(alice, *_read_relay(r), flag)

    def data(self) -> bytes:
        return bytes((self.flag,)) + self.alice_hash + _relay_signed(self) + self.signature


@dataclass(frozen=True, slots=True)
class PeerTestBlock(_Simple):
    """ssu2.rst "PeerTest": message 1-7, code, a router hash in messages 2 and 4, the signed part."""

    TYPE: ClassVar[int] = PEER_TEST
    msg: int
    code: int
    router_hash: bytes | None
    version: int
    nonce: int
    timestamp: int
    port: int
    host: str
    signature: bytes = b""
    flag: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.msg <= 7:
            raise ValueError("peer test message number must be 1-7")
        if (self.router_hash is not None) != (self.msg in (2, 4)) or (self.router_hash and len(self.router_hash) != 32):
            raise ValueError("router hash is present in messages 2 and 4 only")

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        msg, code, flag = r.u8(), r.u8(), r.u8()
        if not 1 <= msg <= 7:
            raise r.error(f"peer test message number {msg}")
        router_hash = r.take(32) if msg in (2, 4) else None
        ver, nonce, ts, asz = r.u8(), r.u32(), r.u32(), r.u8()
        port, host = _read_endpoint(r, asz)
        return cls(msg, code, router_hash, ver, nonce, ts, port, host, r.rest(), flag)

    def signed_data(self) -> bytes:
        endpoint = _endpoint(self.port, self.host)
        return (bytes((self.version,)) + self.nonce.to_bytes(4, "big") + self.timestamp.to_bytes(4, "big")
                + bytes((len(endpoint),)) + endpoint)

    def data(self) -> bytes:
        return bytes((self.msg, self.code, self.flag)) + (self.router_hash or b"") + self.signed_data() + self.signature


@dataclass(frozen=True, slots=True)
class RelayTagBlock(_Simple):
    """ssu2.rst "Relay Tag": a nonzero 4-byte tag."""

    TYPE: ClassVar[int] = RELAY_TAG
    relay_tag: int

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining != 4:
            raise r.error("Relay Tag block size must be 4")
        tag = r.u32()
        if not tag:
            raise r.error("Relay Tag is zero")
        return cls(tag)

    def data(self) -> bytes:
        return self.relay_tag.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class NewTokenBlock(_Simple):
    """ssu2.rst "New Token": expiry (seconds) and an 8-byte token for the next connection."""

    TYPE: ClassVar[int] = NEW_TOKEN
    expires: int
    token: int

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining != 12:
            raise r.error("New Token block size must be 12")
        return cls(r.u32(), r.u64())

    def data(self) -> bytes:
        return self.expires.to_bytes(4, "big") + self.token.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class FirstPacketNumberBlock(_Simple):
    """ssu2.rst "First Packet Number"."""

    TYPE: ClassVar[int] = FIRST_PACKET_NUMBER
    packet_number: int

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining != 4:
            raise r.error("First Packet Number block size must be 4")
        return cls(r.u32())

    def data(self) -> bytes:
        return self.packet_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class CongestionBlock(_Simple):
    """ssu2.rst "Congestion": flags (bit 0 immediate ack, bit 1 ECN) and any extension bytes."""

    TYPE: ClassVar[int] = CONGESTION
    flag: int
    extra: bytes = b""

    @classmethod
    def read_data(cls, r: Reader) -> Self:
        if r.remaining < 1:
            raise r.error("Congestion block is empty")
        return cls(r.u8(), r.rest())

    def data(self) -> bytes:
        return bytes((self.flag,)) + self.extra


@dataclass(frozen=True, slots=True)
class OpaqueBlock(_Simple):
    """A block whose data is kept as bytes: Relay Tag Request, Path Challenge/Response, Next Nonce, unknown types."""

    block_type: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.block_type <= 0xFF or self.block_type in _KNOWN:
            raise ValueError(f"block type {self.block_type} has its own class")

    @property
    def TYPE(self) -> int:  # noqa: N802 - same attribute as the other blocks
        return self.block_type

    def data(self) -> bytes:
        return self.payload


Block = Union[DateTimeBlock, OptionsBlock, RouterInfoBlock, I2NPBlock, FirstFragmentBlock, FollowOnFragmentBlock,
              TerminationBlock, RelayRequestBlock, RelayResponseBlock, RelayIntroBlock, PeerTestBlock, AckBlock,
              AddressBlock, RelayTagBlock, NewTokenBlock, FirstPacketNumberBlock, CongestionBlock, PaddingBlock,
              OpaqueBlock]

_KNOWN = {cls.TYPE: cls for cls in (
    DateTimeBlock, OptionsBlock, RouterInfoBlock, I2NPBlock, FirstFragmentBlock, FollowOnFragmentBlock,
    TerminationBlock, RelayRequestBlock, RelayResponseBlock, RelayIntroBlock, PeerTestBlock, AckBlock, AddressBlock,
    RelayTagBlock, NewTokenBlock, FirstPacketNumberBlock, CongestionBlock, PaddingBlock)}

# blocks that do not make the receiver send an ACK (ssu2.rst "Generating ACKs")
NOT_ACK_ELICITING = (AckBlock, AddressBlock, DateTimeBlock, PaddingBlock, TerminationBlock)


def read_block(r: Reader) -> Block:
    return _read_block(r, _KNOWN, OpaqueBlock, "SSU2")


def parse_blocks(payload: bytes, structure: str = "SSU2 payload") -> list[Block]:
    """All blocks of a payload, enforcing ssu2.rst "Block Ordering Rules" (the NTCP2 rules)."""
    return _parse_blocks(payload, structure, read_block, TERMINATION)


__all__ = [name for name in dir() if name.endswith("Block") or name in (
    "TerminationReason", "parse_blocks", "encode_blocks", "read_block", "NOT_ACK_ELICITING")]
