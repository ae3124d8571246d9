"""Garlic cloves: their delivery instructions, the legacy ElGamal clove and clove set, and the ECIES clove block.

i2np.rst "GarlicClove" / "Garlic Clove Delivery Instructions" / "Garlic" (decrypted clove set),
ecies.rst "Garlic Clove" block. Tunnel message delivery instructions are a different format (core.tunnel).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from ..data.certificate import NULL_CERTIFICATE, Certificate
from ..data.reader import Reader
from .header import I2NPMessage, encode_short, encode_standard, read_short, read_standard

HASH_SIZE = 32
SESSION_KEY_SIZE = 32
GARLIC_CLOVE_BLOCK = 11  # ecies.rst payload block type
MAX_BLOCK_DATA = 65516  # ecies.rst "Payload": maximum single block data size

_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_ENCRYPTED_FLAG = 0x80
_DELAY_FLAG = 0x10
_RESERVED_BITS = 0x0F


class DeliveryType(IntEnum):
    """Flag bits 6-5 of Garlic Clove Delivery Instructions."""

    LOCAL = 0
    DESTINATION = 1
    ROUTER = 2
    TUNNEL = 3


@dataclass(frozen=True, slots=True)
class GarlicCloveDeliveryInstructions:
    """i2np.rst "Garlic Clove Delivery Instructions", shared by ElGamal and ECIES cloves.

    `to_hash` is the destination, router or tunnel gateway hash (absent for LOCAL); `tunnel_id` only for TUNNEL.
    `session_key` (flag bit 7) and `delay` (flag bit 4) are unimplemented in the network but have defined sizes.
    """

    delivery_type: DeliveryType = DeliveryType.LOCAL
    to_hash: bytes | None = None
    tunnel_id: int | None = None
    session_key: bytes | None = None
    delay: int | None = None

    def __post_init__(self) -> None:
        if self.delivery_type not in (0, 1, 2, 3):
            raise ValueError(f"delivery type {self.delivery_type} out of range")
        if self.delivery_type == DeliveryType.LOCAL:
            if self.to_hash is not None:
                raise ValueError("LOCAL delivery has no hash")
        elif self.to_hash is None or len(self.to_hash) != HASH_SIZE:
            raise ValueError(f"{DeliveryType(self.delivery_type).name} delivery needs a 32-byte hash")
        if self.delivery_type == DeliveryType.TUNNEL:
            if self.tunnel_id is None or not 0 < self.tunnel_id <= _U32_MAX:
                raise ValueError("TUNNEL delivery needs a nonzero 4-byte tunnel id")
        elif self.tunnel_id is not None:
            raise ValueError("only TUNNEL delivery has a tunnel id")
        if self.session_key is not None and len(self.session_key) != SESSION_KEY_SIZE:
            raise ValueError("session key must be 32 bytes")
        if self.delay is not None and not 0 <= self.delay <= _U32_MAX:
            raise ValueError(f"delay {self.delay} out of range")

    @classmethod
    def local(cls) -> Self:
        return cls(DeliveryType.LOCAL)

    @classmethod
    def to_destination(cls, destination_hash: bytes) -> Self:
        return cls(DeliveryType.DESTINATION, destination_hash)

    @classmethod
    def to_router(cls, router_hash: bytes) -> Self:
        return cls(DeliveryType.ROUTER, router_hash)

    @classmethod
    def to_tunnel(cls, gateway_hash: bytes, tunnel_id: int) -> Self:
        return cls(DeliveryType.TUNNEL, gateway_hash, tunnel_id)

    @classmethod
    def read(cls, r: Reader) -> Self:
        flag_offset = r.pos
        flag = r.u8()
        if flag & _RESERVED_BITS:
            raise r.error(f"reserved flag bits 3-0 set (flag 0x{flag:02x})", flag_offset)
        delivery_type = DeliveryType((flag >> 5) & 0x03)
        session_key = r.take(SESSION_KEY_SIZE) if flag & _ENCRYPTED_FLAG else None
        to_hash = r.take(HASH_SIZE) if delivery_type != DeliveryType.LOCAL else None
        tunnel_id = None
        if delivery_type == DeliveryType.TUNNEL:
            tunnel_id = r.u32()
            if tunnel_id == 0:
                raise r.error("tunnel id must be nonzero", r.pos - 4)
        delay = r.u32() if flag & _DELAY_FLAG else None
        return cls(delivery_type, to_hash, tunnel_id, session_key, delay)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "GarlicCloveDeliveryInstructions")
        instructions = cls.read(r)
        r.expect_end()
        return instructions

    def to_bytes(self) -> bytes:
        flag = self.delivery_type << 5
        if self.session_key is not None:
            flag |= _ENCRYPTED_FLAG
        if self.delay is not None:
            flag |= _DELAY_FLAG
        parts = [bytes((flag,))]
        if self.session_key is not None:
            parts.append(self.session_key)
        if self.to_hash is not None:
            parts.append(self.to_hash)
        if self.tunnel_id is not None:
            parts.append(self.tunnel_id.to_bytes(4, "big"))
        if self.delay is not None:
            parts.append(self.delay.to_bytes(4, "big"))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class GarlicClove:
    """i2np.rst "GarlicClove": the clove of ElGamal/AES garlic; its message uses the standard 16-byte header."""

    delivery_instructions: GarlicCloveDeliveryInstructions
    message: I2NPMessage
    clove_id: int
    expiration_ms: int
    certificate: Certificate = NULL_CERTIFICATE  # "always NULL in the current implementation"

    def __post_init__(self) -> None:
        if not 0 <= self.clove_id <= _U32_MAX:
            raise ValueError(f"clove id {self.clove_id} out of range")
        if not 0 <= self.expiration_ms <= _U64_MAX:
            raise ValueError(f"expiration {self.expiration_ms} out of range")

    @classmethod
    def read(cls, r: Reader) -> Self:
        instructions = GarlicCloveDeliveryInstructions.read(r)
        message = read_standard(r)
        clove_id = r.u32()
        expiration_ms = r.u64()
        return cls(instructions, message, clove_id, expiration_ms, Certificate.read(r))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "GarlicClove")
        clove = cls.read(r)
        r.expect_end()
        return clove

    def to_bytes(self) -> bytes:
        return b"".join((self.delivery_instructions.to_bytes(), encode_standard(self.message),
                         self.clove_id.to_bytes(4, "big"), self.expiration_ms.to_bytes(8, "big"),
                         self.certificate.to_bytes()))


@dataclass(frozen=True, slots=True)
class GarlicCloveSet:
    """i2np.rst "Garlic", decrypted data: 1-255 GarlicCloves, then certificate, message id and expiration."""

    cloves: tuple[GarlicClove, ...]
    message_id: int
    expiration_ms: int
    certificate: Certificate = NULL_CERTIFICATE  # "always NULL in the current implementation"

    def __post_init__(self) -> None:
        if not 1 <= len(self.cloves) <= 0xFF:
            raise ValueError(f"a clove set holds 1-255 cloves, got {len(self.cloves)}")
        if not 0 <= self.message_id <= _U32_MAX:
            raise ValueError(f"message id {self.message_id} out of range")
        if not 0 <= self.expiration_ms <= _U64_MAX:
            raise ValueError(f"expiration {self.expiration_ms} out of range")

    @classmethod
    def read(cls, r: Reader) -> Self:
        count_offset = r.pos
        count = r.u8()
        if count == 0:
            raise r.error("clove set without cloves", count_offset)
        cloves = tuple(GarlicClove.read(r) for _ in range(count))
        certificate = Certificate.read(r)
        return cls(cloves, r.u32(), r.u64(), certificate)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "GarlicCloveSet")
        clove_set = cls.read(r)
        r.expect_end()
        return clove_set

    def to_bytes(self) -> bytes:
        return b"".join((bytes((len(self.cloves),)), *(c.to_bytes() for c in self.cloves),
                         self.certificate.to_bytes(), self.message_id.to_bytes(4, "big"),
                         self.expiration_ms.to_bytes(8, "big")))


@dataclass(frozen=True, slots=True)
class GarlicCloveBlock:
    """ecies.rst "Garlic Clove" block data: delivery instructions, then a message with the 9-byte header.

    parse/to_bytes cover the block's data (after its type byte 11 and 2-byte size); the message body runs
    to the end of the block. `to_block()` adds the block framing.
    """

    BLOCK_TYPE: ClassVar[int] = GARLIC_CLOVE_BLOCK

    delivery_instructions: GarlicCloveDeliveryInstructions
    message: I2NPMessage

    @classmethod
    def read(cls, r: Reader) -> Self:
        """Reads to the end of the reader, which must span exactly the block's data."""
        instructions = GarlicCloveDeliveryInstructions.read(r)
        return cls(instructions, read_short(r))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return cls.read(Reader(data, "GarlicCloveBlock"))

    def to_bytes(self) -> bytes:
        return self.delivery_instructions.to_bytes() + encode_short(self.message)

    def to_block(self) -> bytes:
        data = self.to_bytes()
        if len(data) > MAX_BLOCK_DATA:
            raise ValueError(f"clove of {len(data)} bytes exceeds the {MAX_BLOCK_DATA}-byte block limit")
        return bytes((GARLIC_CLOVE_BLOCK,)) + len(data).to_bytes(2, "big") + data
