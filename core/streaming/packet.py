"""The streaming packet (streaming.rst "Packet Format", "Flags and Option Data Fields").

Options appear in the spec's order: DELAY_REQUESTED, FROM_INCLUDED, MAX_PACKET_SIZE_INCLUDED,
OFFLINE_SIGNATURE, SIGNATURE_INCLUDED. A flag carrying option data is set exactly when its field
is not None, so `flags` and the fields always agree and bytes round-trip exactly.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Self

from core.data.errors import ParseError, SignatureError
from core.data.identity import Destination
from core.data.keytypes import SIG_TYPES
from core.data.leaseset import OfflineSignature
from core.data.reader import Reader

if TYPE_CHECKING:
    from core.data.privatekeys import PrivateKeys

SYNCHRONIZE = 1 << 0
CLOSE = 1 << 1
RESET = 1 << 2
SIGNATURE_INCLUDED = 1 << 3
SIGNATURE_REQUESTED = 1 << 4
FROM_INCLUDED = 1 << 5
DELAY_REQUESTED = 1 << 6
MAX_PACKET_SIZE_INCLUDED = 1 << 7
PROFILE_INTERACTIVE = 1 << 8
ECHO = 1 << 9
NO_ACK = 1 << 10
OFFLINE_SIGNATURE = 1 << 11

OPTION_FLAGS = DELAY_REQUESTED | FROM_INCLUDED | MAX_PACKET_SIZE_INCLUDED | OFFLINE_SIGNATURE | SIGNATURE_INCLUDED
FLAG_NAMES = {SYNCHRONIZE: "SYN", CLOSE: "CLOSE", RESET: "RESET", SIGNATURE_INCLUDED: "SIG",
              SIGNATURE_REQUESTED: "SIGREQ", FROM_INCLUDED: "FROM", DELAY_REQUESTED: "DELAY",
              MAX_PACKET_SIZE_INCLUDED: "MTU", PROFILE_INTERACTIVE: "INTERACTIVE", ECHO: "ECHO",
              NO_ACK: "NO_ACK", OFFLINE_SIGNATURE: "OFFLINE"}

HEADER_LEN = 22
MAX_NACKS = 255
CHOKE_DELAY = 61000
"""DELAY_REQUESTED above 60000 means choke (streaming-api.md "Choking"); 61000 is what Java sends."""
MAX_DELAY = 60000
REPLAY_NACK_COUNT = 8
"""A SYN with 8 NACKs carries the recipient's 32-byte hash (streaming.rst "Replay prevention")."""

_HEADER = struct.Struct(">IIIIB")
_TAIL = struct.Struct(">BHH")   # resendDelay, flags, option size


def hash_to_nacks(destination_hash: bytes) -> tuple[int, ...]:
    """The 8 NACK words that carry a destination hash in a SYN."""
    if len(destination_hash) != 32:
        raise ParseError("a destination hash is 32 bytes", structure="Packet")
    return struct.unpack(">8I", destination_hash)


def flag_names(flags: int) -> str:
    return "|".join(name for bit, name in FLAG_NAMES.items() if flags & bit) or "-"


@dataclass(frozen=True, slots=True)
class Packet:
    send_stream_id: int
    receive_stream_id: int
    sequence_num: int = 0
    ack_through: int = 0
    nacks: tuple[int, ...] = ()
    resend_delay: int = 0
    flags: int = 0
    delay_requested: int | None = None
    from_destination: Destination | None = None
    max_packet_size: int | None = None
    offline_signature: OfflineSignature | None = None
    signature: bytes | None = None
    payload: bytes = b""

    def __post_init__(self) -> None:
        def require(ok: bool, message: str) -> None:
            if not ok:
                raise ParseError(message, structure="Packet")
        for name, value in (("send_stream_id", self.send_stream_id), ("receive_stream_id", self.receive_stream_id),
                            ("sequence_num", self.sequence_num), ("ack_through", self.ack_through)):
            require(type(value) is int and 0 <= value <= 0xFFFFFFFF, f"{name} must fit 4 bytes")
        if self.nacks:
            require(len(self.nacks) <= MAX_NACKS, "at most 255 NACKs")
            require(0 <= min(self.nacks) and max(self.nacks) <= 0xFFFFFFFF, "NACKs must fit 4 bytes")
        require(0 <= self.resend_delay < 256, "resend delay must fit 1 byte")
        flags = self.flags
        require(0 <= flags < 1 << 16, "flags must fit 2 bytes")
        for bit, value in ((DELAY_REQUESTED, self.delay_requested), (FROM_INCLUDED, self.from_destination),
                           (MAX_PACKET_SIZE_INCLUDED, self.max_packet_size),
                           (OFFLINE_SIGNATURE, self.offline_signature), (SIGNATURE_INCLUDED, self.signature)):
            require(bool(flags & bit) == (value is not None), f"flag {FLAG_NAMES[bit]} and its option disagree")
        if self.delay_requested is not None:
            require(0 <= self.delay_requested < 1 << 16, "delay must fit 2 bytes")
        if self.max_packet_size is not None:
            require(0 <= self.max_packet_size < 1 << 16, "max packet size must fit 2 bytes")
        if flags & (FROM_INCLUDED | OFFLINE_SIGNATURE | SIGNATURE_INCLUDED):   # only these make options long
            require(len(self.options_bytes(with_signature=False)) + len(self.signature or b"") < 1 << 16,
                    "options longer than 65535 bytes")

    # ------------------------------------------------------------ flags

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def is_syn(self) -> bool:
        return bool(self.flags & SYNCHRONIZE)

    @property
    def is_close(self) -> bool:
        return bool(self.flags & CLOSE)

    @property
    def is_reset(self) -> bool:
        return bool(self.flags & RESET)

    @property
    def is_echo(self) -> bool:
        return bool(self.flags & ECHO)

    @property
    def is_plain_ack(self) -> bool:
        """sequenceNum 0 without SYN: acknowledges only, is never acknowledged (streaming.rst "sequenceNum")."""
        return self.sequence_num == 0 and not self.flags & (SYNCHRONIZE | ECHO)

    @property
    def is_choke(self) -> bool:
        return self.delay_requested is not None and self.delay_requested > MAX_DELAY

    @property
    def replay_hash(self) -> bytes | None:
        """The recipient hash a SYN carries in its NACKs field, if any."""
        if self.flags & SYNCHRONIZE and len(self.nacks) == REPLAY_NACK_COUNT:
            return struct.pack(">8I", *self.nacks)
        return None

    @property
    def signer_sig_type(self) -> int | None:
        """The type of the key that signs this packet, when the packet itself tells."""
        if self.offline_signature is not None:
            return self.offline_signature.transient_sig_type
        if self.from_destination is not None:
            return self.from_destination.sig_type
        return None

    # ------------------------------------------------------------ codec

    @classmethod
    def read(cls, r: Reader, *, peer: Destination | None = None) -> Self:
        """Parse to the end of `r` (streaming has no length field: the lower layer frames it).

        `peer` is the far end's Destination from an earlier SYN, which sizes the signature and the
        offline signature of packets that carry no FROM.
        """
        send_id, receive_id, seq, ack, nack_count = _HEADER.unpack(r.take(_HEADER.size))
        nacks = struct.unpack(f">{nack_count}I", r.take(4 * nack_count)) if nack_count else ()
        resend_delay, flags, options_size = _TAIL.unpack(r.take(_TAIL.size))
        if not options_size and not flags & OPTION_FLAGS:   # most data packets and ACKs: no options at all
            return cls(send_id, receive_id, seq, ack, nacks, resend_delay, flags, payload=r.rest())
        options = r.sub(options_size, "Packet options")
        delay = from_dest = max_size = offline = signature = None
        if flags & DELAY_REQUESTED:
            delay = options.u16()
        if flags & FROM_INCLUDED:
            from_dest = Destination.read(options)
        if flags & MAX_PACKET_SIZE_INCLUDED:
            max_size = options.u16()
        signer = from_dest or peer
        if flags & OFFLINE_SIGNATURE:
            if signer is None:
                raise options.error("offline signature without a destination to size it")
            try:
                offline = OfflineSignature.read(options, signer.sig_type)
            except ParseError as exc:
                raise options.error(exc.reason) from None
        if flags & SIGNATURE_INCLUDED:
            if offline is not None:
                length = SIG_TYPES[offline.transient_sig_type].signature_len
            elif signer is not None:
                length = signer.signature_len
            else:
                length = options.remaining  # the last option: streaming.rst "Variable Length Signature Notes"
            signature = options.take(length)
        options.expect_end()
        payload = r.rest()
        return cls(send_id, receive_id, seq, ack, nacks, resend_delay, flags, delay, from_dest, max_size,
                   offline, signature, payload)

    @classmethod
    def parse(cls, data: bytes, *, peer: Destination | None = None) -> Self:
        return cls.read(Reader(data, "Packet"), peer=peer)

    def options_bytes(self, *, with_signature: bool = True) -> bytes:
        parts = []
        if self.delay_requested is not None:
            parts.append(self.delay_requested.to_bytes(2, "big"))
        if self.from_destination is not None:
            parts.append(self.from_destination.to_bytes())
        if self.max_packet_size is not None:
            parts.append(self.max_packet_size.to_bytes(2, "big"))
        if self.offline_signature is not None:
            parts.append(self.offline_signature.to_bytes())
        if with_signature and self.signature is not None:
            parts.append(self.signature)
        return b"".join(parts)

    def _encode(self, signature: bytes | None) -> bytes:
        options = self.options_bytes(with_signature=False)
        if signature is not None:
            options += signature
        return b"".join((
            _HEADER.pack(self.send_stream_id, self.receive_stream_id, self.sequence_num, self.ack_through,
                         len(self.nacks)),
            struct.pack(f">{len(self.nacks)}I", *self.nacks) if self.nacks else b"",
            bytes((self.resend_delay,)), self.flags.to_bytes(2, "big"), len(options).to_bytes(2, "big"),
            options, self.payload))

    def to_bytes(self) -> bytes:
        return self._encode(self.signature)

    def signed_data(self) -> bytes:
        """The packet with the signature field all zeros: what the signature covers (flag SIGNATURE_INCLUDED)."""
        if self.signature is None:
            raise SignatureError("packet has no signature field", structure="Packet")
        return self._encode(bytes(len(self.signature)))

    # ------------------------------------------------------------ signing

    def signed(self, keys: PrivateKeys) -> Self:
        """This packet signed by `keys`; sets SIGNATURE_INCLUDED, and OFFLINE_SIGNATURE when the keys are offline."""
        flags = self.flags | SIGNATURE_INCLUDED
        offline = self.offline_signature
        if keys.transient is not None:
            t = keys.transient
            offline = OfflineSignature(t.expires, t.sig_type, t.public_key, t.signature)
            flags |= OFFLINE_SIGNATURE
        unsigned = replace(self, flags=flags, offline_signature=offline, signature=bytes(keys.signature_len))
        return replace(unsigned, signature=keys.sign(unsigned.to_bytes()))

    def verify(self, signer: Destination | None = None, *, now: float | None = None) -> bool:
        """Whether the signature is by FROM (or `signer`, the peer known from the SYN).

        With an offline signature, the transient key must be authorised by the destination and, when
        `now` (wall seconds) is given, not expired. Raises SignatureError only for an unsupported type.
        """
        destination = self.from_destination or signer
        if self.signature is None or destination is None:
            return False
        if self.offline_signature is not None:
            if not self.offline_signature.verify(destination, now):
                return False
            return self.offline_signature.verify_transient(self.signed_data(), self.signature)
        return destination.verify(self.signed_data(), self.signature)

    def describe(self) -> str:
        return (f"Packet(send={self.send_stream_id} recv={self.receive_stream_id} seq={self.sequence_num} "
                f"ack={self.ack_through} nacks={len(self.nacks)} flags={flag_names(self.flags)} "
                f"payload={len(self.payload)})")
