"""Sans-I/O NTCP2 data phase: SipHash-obfuscated lengths, ChaCha20-Poly1305 frames, blocks (ntcp2.rst "4) Data Phase")."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from core.clock import BufferedRng, Rng
from core.crypto.chacha import ChaChaPoly, TAG_LEN
from core.crypto.hashes import hmac_sha256
from core.crypto.siphash import siphash24
from core.data.errors import CryptoError, ParseError, ProtocolError

from .blocks import (BLOCK_HEADER_SIZE, MAX_FRAME_PAYLOAD, Block, PaddingBlock, RawI2NP, TerminationBlock,
                     TerminationReason, blocks_of, encode_i2np_blocks, split_frame, termination)

MAX_FRAME_SIZE = 65535              # ChaChaPoly frame incl. MAC; the 2-byte length field's limit
MIN_FRAME_SIZE = TAG_LEN            # an empty frame is just the MAC
DEFAULT_FRAME_TARGET = 16384        # ntcp2.rst: keep frames to a few KB so receivers get MACs early
DEFAULT_MAX_PADDING = 15
_NONCE_LIMIT = 2**64 - 1            # ntcp2.rst "ChaCha20/Poly1305": 2**64-1 must never be sent


class FrameError(ProtocolError):
    """A data-phase frame was unacceptable; `termination_reason` is the code to tell the peer."""

    def __init__(self, message: str, reason: TerminationReason):
        super().__init__(message, structure="NTCP2 data frame")
        self.termination_reason = reason


@dataclass(frozen=True, slots=True)
class DataPhaseKeys:
    """One side's view of the data-phase keys: ChaCha keys and SipHash key/IV per direction."""

    send_key: bytes
    receive_key: bytes
    send_sip_key: bytes
    send_sip_iv: bytes
    receive_sip_key: bytes
    receive_sip_iv: bytes


def derive_data_phase_keys(ck: bytes, h: bytes, initiator: bool) -> DataPhaseKeys:
    """ntcp2.rst "Key Derivation Function (KDF) (for data phase)", Split() plus the SipHash ask chain."""
    temp_key = hmac_sha256(ck, b"")
    k_ab = hmac_sha256(temp_key, b"\x01")
    k_ba = hmac_sha256(temp_key, k_ab + b"\x02")
    ask_master = hmac_sha256(temp_key, b"ask\x01")
    temp_key = hmac_sha256(ask_master, h + b"siphash")
    sip_master = hmac_sha256(temp_key, b"\x01")
    temp_key = hmac_sha256(sip_master, b"")
    sipkeys_ab = hmac_sha256(temp_key, b"\x01")
    sipkeys_ba = hmac_sha256(temp_key, sipkeys_ab + b"\x02")
    ab = (k_ab, sipkeys_ab[:16], sipkeys_ab[16:24])
    ba = (k_ba, sipkeys_ba[:16], sipkeys_ba[16:24])
    send, receive = (ab, ba) if initiator else (ba, ab)
    return DataPhaseKeys(send[0], receive[0], send[1], send[2], receive[1], receive[2])


class LengthObfuscator:
    """ntcp2.rst "SipHash obfuscated length": IV[n] = SipHash(k, IV[n-1]); mask = low 2 bytes of IV[n]."""

    __slots__ = ("_key", "_iv")

    def __init__(self, key: bytes, iv: bytes):
        if len(key) != 16 or len(iv) != 8:
            raise ValueError("SipHash key must be 16 bytes and IV 8 bytes")
        self._key = key
        self._iv = iv

    def next_mask(self) -> int:
        value = siphash24(self._key, self._iv)
        self._iv = value.to_bytes(8, "little")
        return value & 0xFFFF


class DataPhase:
    """Both directions of an established NTCP2 session.

    Sending: `encrypt_frame(blocks)` or `pack(blocks)` return wire bytes. Receiving: `receive_data(bytes)`
    buffers input split anywhere; `next_frame()` returns the next frame's blocks or None. A bad frame raises
    FrameError; receiving is then dead and `terminate(e.termination_reason)` builds the goodbye frame.
    """

    def __init__(self, keys: DataPhaseKeys, *, rng: Rng = os.urandom, max_padding: int = DEFAULT_MAX_PADDING,
                 frame_target: int = DEFAULT_FRAME_TARGET):
        if not 0 <= max_padding <= 0xFFFF or not BLOCK_HEADER_SIZE < frame_target <= MAX_FRAME_PAYLOAD:
            raise ValueError("bad padding or frame size settings")
        self._tx = ChaChaPoly(keys.send_key)
        self._rx = ChaChaPoly(keys.receive_key)
        self._tx_len = LengthObfuscator(keys.send_sip_key, keys.send_sip_iv)
        self._rx_len = LengthObfuscator(keys.receive_sip_key, keys.receive_sip_iv)
        self._random = BufferedRng(rng)   # padding sizes and bytes: a system call per frame cost more than its cipher
        self.max_padding = max_padding
        self.frame_target = frame_target
        self.frames_sent = 0
        self.frames_received = 0
        self._buf = bytearray()
        self._pending_len: int | None = None
        self.failure: FrameError | None = None
        self.peer_termination: TerminationBlock | None = None
        self.send_closed = False

    # sending

    def encrypt_payload(self, payload: bytes) -> bytes:
        """One frame around already-encoded blocks: obfuscated length, then ciphertext and MAC."""
        if self.send_closed:
            raise ProtocolError("NTCP2 session: sending after Termination")
        if len(payload) > MAX_FRAME_PAYLOAD:
            raise ValueError(f"frame payload of {len(payload)} bytes exceeds {MAX_FRAME_PAYLOAD}")
        if self.frames_sent >= _NONCE_LIMIT - 1:
            raise ProtocolError("NTCP2 session: send nonce exhausted")
        ciphertext = self._tx.encrypt(self.frames_sent, payload)
        self.frames_sent += 1
        length = len(ciphertext) ^ self._tx_len.next_mask()
        return length.to_bytes(2, "big") + ciphertext

    def encrypt_frame(self, blocks: Iterable[Block]) -> bytes:
        return self.encrypt_payload(b"".join(block.to_bytes() for block in blocks))

    def padding_block(self, room: int) -> PaddingBlock | None:
        """Random padding of 0..max_padding bytes that fits in `room` bytes (header included)."""
        limit = min(self.max_padding, room - BLOCK_HEADER_SIZE)
        if limit < 0:
            return None
        size = int.from_bytes(self._random(2), "big") % (limit + 1)
        return PaddingBlock(self._random(size))

    def pack(self, blocks: Iterable[Block], *, pad: bool = True) -> bytes:
        """Frames holding `blocks` in order (each whole), filled up to frame_target, each with random padding."""
        return self.pack_encoded([block.to_bytes() for block in blocks], pad=pad)

    def pack_i2np(self, messages: Iterable[RawI2NP], *, pad: bool = True) -> bytes:
        """pack() of I2NP messages in short-header terms (the send path: no block objects)."""
        return self.pack_encoded(encode_i2np_blocks(messages), pad=pad)

    def pack_encoded(self, encoded_blocks: Iterable[bytes], *, pad: bool = True) -> bytes:
        """pack() of blocks already encoded (the send path encodes I2NP blocks without block objects)."""
        out: list[bytes] = []
        parts: list[bytes] = []
        size = 0
        target = self.frame_target
        for encoded in encoded_blocks:
            if parts and size + len(encoded) > target:
                out.append(self._seal(parts, size, pad))
                parts, size = [], 0
            parts.append(encoded)
            size += len(encoded)
        if parts:
            out.append(self._seal(parts, size, pad))
        return b"".join(out)

    def _seal(self, parts: list[bytes], size: int, pad: bool) -> bytes:
        if pad:
            padding = self.padding_block(MAX_FRAME_PAYLOAD - size)
            if padding is not None:
                parts.append(padding.to_bytes())
        return self.encrypt_payload(b"".join(parts))

    def terminate(self, reason: int = TerminationReason.NORMAL_CLOSE, additional_data: bytes = b"") -> bytes:
        """The last frame: a Termination block (frames received so far, reason) plus padding."""
        block = termination(self.frames_received, reason, additional_data)
        frame = self.pack([block])
        self.send_closed = True
        return frame

    # receiving

    @property
    def receive_closed(self) -> bool:
        return self.failure is not None or self.peer_termination is not None

    def receive_data(self, data: bytes) -> None:
        if not self.receive_closed:
            self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> list[Block] | None:
        """The blocks of the next complete frame, or None until more bytes arrive (or after the end)."""
        items = self.next_items()
        if items is None:
            return None
        return blocks_of(items)

    def next_items(self) -> list[Block | RawI2NP] | None:
        """next_frame() with I2NP blocks as RawI2NP tuples (blocks.split_frame), for the receive path."""
        if self.failure is not None:
            raise self.failure
        if self.peer_termination is not None:
            return None
        buf = self._buf
        if self._pending_len is None:
            if len(buf) < 2:
                return None
            length = ((buf[0] << 8) | buf[1]) ^ self._rx_len.next_mask()
            del buf[:2]
            if length < MIN_FRAME_SIZE:
                self._fail(f"frame length {length} is below {MIN_FRAME_SIZE}", TerminationReason.AEAD_FRAMING_ERROR)
            self._pending_len = length
        length = self._pending_len
        if len(buf) < length:
            return None
        ciphertext = bytes(buf[:length])
        del buf[:length]
        self._pending_len = None
        try:
            payload = self._rx.decrypt(self.frames_received, ciphertext)
        except CryptoError:
            self._fail("authentication failed", TerminationReason.DATA_PHASE_AEAD_FAILURE)
        self.frames_received += 1
        try:
            items = split_frame(payload)
        except ParseError as exc:
            self._fail(f"bad payload: {exc}", TerminationReason.PAYLOAD_FORMAT_ERROR)
        for item in items:
            if type(item) is TerminationBlock:
                self.peer_termination = item
                self._buf = bytearray()
        return items

    def feed(self, data: bytes) -> list[list[Block]]:
        """receive_data plus every complete frame now available."""
        self.receive_data(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def _fail(self, message: str, reason: TerminationReason):
        self.failure = FrameError(f"frame {self.frames_received}: {message}", reason)
        self._buf = bytearray()
        raise self.failure
