"""Tunnel build messages: containers of encrypted build records (i2np.rst "TunnelBuild" .. "OutboundTunnelBuildReply").

Records stay opaque bytes here; their encryption lives in core.tunnel. Only sizes and counts are enforced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from ..data.errors import ParseError
from ..data.reader import Reader
from .header import MessageType

RECORD_SIZE = 528  # tunnel-creation-ecies.rst: ElGamal and ECIES long records
SHORT_RECORD_SIZE = 218  # tunnel-creation-ecies.rst "Short Record Specification"
MAX_RECORDS = 8  # i2np.rst "VariableTunnelBuild": num valid 1-8
TUNNEL_BUILD_RECORDS = 8  # i2np.rst "TunnelBuild": always 8 records


class _BuildRecords:
    """Shared codec: an optional count byte, then records of one fixed size."""

    __slots__ = ()
    TYPE: ClassVar[int]
    RECORD_SIZE: ClassVar[int]
    HAS_COUNT: ClassVar[bool]  # False: the 8-record TunnelBuild/TunnelBuildReply form without a count byte
    records: tuple[bytes, ...]

    def __post_init__(self) -> None:
        count = len(self.records)
        if self.HAS_COUNT:
            if not 1 <= count <= MAX_RECORDS:
                raise ValueError(f"{type(self).__name__} needs 1-{MAX_RECORDS} records, got {count}")
        elif count != TUNNEL_BUILD_RECORDS:
            raise ValueError(f"{type(self).__name__} needs exactly {TUNNEL_BUILD_RECORDS} records, got {count}")
        for record in self.records:
            if len(record) != self.RECORD_SIZE:
                raise ValueError(f"build records of {type(self).__name__} are {self.RECORD_SIZE} bytes, "
                                 f"got {len(record)}")

    @classmethod
    def read(cls, r: Reader) -> Self:
        if cls.HAS_COUNT:
            count_offset = r.pos
            count = r.u8()
            if not 1 <= count <= MAX_RECORDS:
                raise r.error(f"record count {count}, valid 1-{MAX_RECORDS}", count_offset)
        else:
            count = TUNNEL_BUILD_RECORDS
        size = cls.RECORD_SIZE
        blob = r.take(count * size)
        return cls(tuple(blob[i:i + size] for i in range(0, len(blob), size)))  # type: ignore[call-arg]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        expected_tail = len(data) - (1 if cls.HAS_COUNT else 0)
        if expected_tail < 0 or expected_tail % cls.RECORD_SIZE:
            raise ParseError(f"{len(data)} bytes is not a whole number of {cls.RECORD_SIZE}-byte records",
                             structure=cls.__name__, offset=0)
        r = Reader(data, cls.__name__)
        msg = cls.read(r)
        r.expect_end()
        return msg

    def to_bytes(self) -> bytes:
        records = b"".join(self.records)
        return bytes((len(self.records),)) + records if self.HAS_COUNT else records


@dataclass(frozen=True, slots=True)
class TunnelBuild(_BuildRecords):
    """Type 21: exactly 8 BuildRequestRecords of 528 bytes."""

    TYPE: ClassVar[int] = MessageType.TUNNEL_BUILD
    RECORD_SIZE: ClassVar[int] = RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = False

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TunnelBuildReply(_BuildRecords):
    """Type 22: exactly 8 BuildResponseRecords of 528 bytes."""

    TYPE: ClassVar[int] = MessageType.TUNNEL_BUILD_REPLY
    RECORD_SIZE: ClassVar[int] = RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = False

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class VariableTunnelBuild(_BuildRecords):
    """Type 23: count, then 1-8 BuildRequestRecords of 528 bytes."""

    TYPE: ClassVar[int] = MessageType.VARIABLE_TUNNEL_BUILD
    RECORD_SIZE: ClassVar[int] = RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = True

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class VariableTunnelBuildReply(_BuildRecords):
    """Type 24: count, then 1-8 BuildResponseRecords of 528 bytes."""

    TYPE: ClassVar[int] = MessageType.VARIABLE_TUNNEL_BUILD_REPLY
    RECORD_SIZE: ClassVar[int] = RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = True

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ShortTunnelBuild(_BuildRecords):
    """Type 25 (0.9.51): count, then 1-8 ShortBuildRequestRecords of 218 bytes."""

    TYPE: ClassVar[int] = MessageType.SHORT_TUNNEL_BUILD
    RECORD_SIZE: ClassVar[int] = SHORT_RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = True

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class OutboundTunnelBuildReply(_BuildRecords):
    """Type 26 (0.9.51): count, then 1-8 ShortBuildResponseRecords of 218 bytes."""

    TYPE: ClassVar[int] = MessageType.OUTBOUND_TUNNEL_BUILD_REPLY
    RECORD_SIZE: ClassVar[int] = SHORT_RECORD_SIZE
    HAS_COUNT: ClassVar[bool] = True

    records: tuple[bytes, ...]
