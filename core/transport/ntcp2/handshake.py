"""Sans-I/O NTCP2 handshake, Noise XK with I2P's additions (ntcp2.rst "Messages" 1-3 and their KDFs).

Both roles share one shape: `feed(bytes)` consumes input split anywhere, `data_to_send()` drains the
bytes to write, `result` is set once the handshake is complete, `unused_data` holds bytes after it.
Any failure raises a ProtocolError subclass and the handshake is dead.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from core.clock import Clock, Rng
from core.crypto.aes import cbc_decrypt, cbc_encrypt
from core.crypto.noise import SymmetricState
from core.crypto.x25519 import X25519Keypair
from core.data.errors import CryptoError, HandshakeError, ParseError, ProtocolError, SignatureError
from core.data.reader import Reader
from core.data.routerinfo import RouterInfo

from .blocks import (MAX_FRAME_PAYLOAD, OptionsBlock, PaddingBlock, RouterInfoBlock, TerminationReason,
                     parse_message3_blocks)
from .session import DataPhaseKeys, derive_data_phase_keys

PROTOCOL_NAME = b"Noise_XKaesobfse+hs2+hs3_25519_ChaChaPoly_SHA256"
VERSION = 2
CLOCK_SKEW_LIMIT = 60               # ntcp2.rst "Clock Skew Guidelines": +/- 60 s is fatal
MESSAGE_1_SIZE = 64                 # 32 obfuscated X + 32-byte ChaChaPoly frame (16 options + MAC)
MESSAGE_2_SIZE = 64
MESSAGE_3_PART_1_SIZE = 48
MAX_MESSAGE_3_PART_2_SIZE = 65535 - MESSAGE_3_PART_1_SIZE
MAX_SENT_PADDING = 223              # i2pd 2.45.1 drops messages 1 and 2 longer than 287 bytes
DEFAULT_SENT_PADDING = 64
DEFAULT_ACCEPTED_PADDING = 1024     # ntcp2.rst: Bob may reject excessive padding; peers send <= 256
DEFAULT_ROUTER_INFO_MAX_AGE = 90 * 60  # i2pd's bound on an RI in SessionConfirmed; ours too
_U32 = 0xFFFFFFFF


class ClockSkewError(HandshakeError):
    """The peer's handshake timestamp is more than CLOCK_SKEW_LIMIT away; `skew` = peer minus us, seconds."""

    def __init__(self, message: str, skew: float, *, structure: str | None = None):
        super().__init__(message, structure=structure)
        self.skew = skew


class RouterInfoRejected(HandshakeError):
    """Alice's RouterInfo in SessionConfirmed is unusable; `reason` is the matching Termination code."""

    def __init__(self, message: str, reason: TerminationReason):
        super().__init__(message, structure="SessionConfirmed RouterInfo")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SessionRequestOptions:
    """ntcp2.rst "1) SessionRequest" options block (16 bytes, big-endian)."""

    netid: int
    version: int
    pad_len: int
    m3p2_len: int
    timestamp: int
    reserved: bytes = bytes(6)     # bytes 6-7 and 12-15, zero now; kept for an exact round trip

    SIZE = 16

    @classmethod
    def read(cls, r: Reader) -> Self:
        netid, version, pad_len, m3p2_len = r.u8(), r.u8(), r.u16(), r.u16()
        reserved_a = r.take(2)
        timestamp = r.u32()
        return cls(netid, version, pad_len, m3p2_len, timestamp, reserved_a + r.take(4))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "SessionRequest options")
        options = cls.read(r)
        r.expect_end()
        return options

    def to_bytes(self) -> bytes:
        return (bytes((self.netid, self.version)) + self.pad_len.to_bytes(2, "big")
                + self.m3p2_len.to_bytes(2, "big") + self.reserved[:2]
                + self.timestamp.to_bytes(4, "big") + self.reserved[2:])


@dataclass(frozen=True, slots=True)
class SessionCreatedOptions:
    """ntcp2.rst "2) SessionCreated" options block (16 bytes, big-endian)."""

    pad_len: int
    timestamp: int
    reserved: bytes = bytes(10)    # bytes 0-1, 4-7 and 12-15

    SIZE = 16

    @classmethod
    def read(cls, r: Reader) -> Self:
        reserved_a = r.take(2)
        pad_len = r.u16()
        reserved_b = r.take(4)
        timestamp = r.u32()
        return cls(pad_len, timestamp, reserved_a + reserved_b + r.take(4))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "SessionCreated options")
        options = cls.read(r)
        r.expect_end()
        return options

    def to_bytes(self) -> bytes:
        return (self.reserved[:2] + self.pad_len.to_bytes(2, "big") + self.reserved[2:6]
                + self.timestamp.to_bytes(4, "big") + self.reserved[6:])


class ReplayCache:
    """Ephemeral keys seen in SessionRequests, shared by all Responders of one router.

    Entries live `lifetime` seconds on the injected clock (ntcp2.rst: at least 2*D); at `max_entries`
    the oldest goes first, which is safe because a replay older than D also fails the skew check.
    """

    def __init__(self, clock: Clock, *, max_entries: int = 100_000, lifetime: float = 2 * CLOCK_SKEW_LIMIT + 30):
        if max_entries < 1 or lifetime < 2 * CLOCK_SKEW_LIMIT:
            raise ValueError("replay cache too small or too short-lived")
        self._clock = clock
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self.max_entries = max_entries
        self.lifetime = lifetime

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, expires = next(iter(entries.items()))
            if expires > now:
                break
            entries.popitem(last=False)

    def check_and_add(self, key: bytes) -> bool:
        """True when `key` was seen within its lifetime (a replay); otherwise records it and returns False."""
        now = self._clock.monotonic()
        self._expire(now)
        if key in self._entries:
            return True
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = now + self.lifetime
        return False


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What an established session starts with."""

    initiator: bool
    keys: DataPhaseKeys
    peer_static_key: bytes
    peer_router_hash: bytes
    peer_router_info: bytes | None     # Alice's RI bytes as Bob received them; None on Alice's side
    peer_router_info_flags: int
    peer_options: OptionsBlock | None
    clock_skew: float                  # peer's handshake timestamp minus our clock, seconds
    handshake_hash: bytes
    router_info: RouterInfo | None = None  # Alice's parsed and checked RI, on Bob's side


def _now_seconds(clock: Clock) -> int:
    return int(clock.time() + 0.5) & _U32


def _skew(timestamp: int, clock: Clock) -> float:
    return timestamp - clock.time()


def _random_below(rng: Rng, bound: int) -> int:
    """A value in [0, bound) from the injected RNG (bound <= 65536)."""
    return int.from_bytes(rng(4), "big") % bound if bound > 1 else 0


def _handshake_state(responder_static_key: bytes) -> SymmetricState:
    """ntcp2.rst "KDF for handshake message 1" up to MixHash(rs)."""
    state = SymmetricState(PROTOCOL_NAME)
    state.mix_hash(b"")            # null prologue
    state.mix_hash(responder_static_key)
    return state


def check_peer_router_info(router_info: RouterInfo, static_key: bytes, *, netid: int, now: float,
                           max_age: float = DEFAULT_ROUTER_INFO_MAX_AGE,
                           transport_styles: tuple[str, ...] = ("NTCP2", "NTCP")) -> None:
    """ntcp2.rst "3) SessionConfirmed" notes: Alice's RI must verify, be on our network, be fresh, and
    publish an NTCP/NTCP2 address of version 2 whose "s" is the static key she proved in the handshake.

    Raises RouterInfoRejected (a HandshakeError) naming the Termination reason.
    """
    try:
        verified = router_info.verify()
    except SignatureError as exc:
        raise RouterInfoRejected(f"signature: {exc}", TerminationReason.INCOMPATIBLE_SIGNATURE_TYPE) from None
    if not verified:
        raise RouterInfoRejected("signature does not verify", TerminationReason.ROUTER_INFO_SIGNATURE_FAILURE)
    try:
        peer_netid = router_info.netid
    except ParseError as exc:
        raise RouterInfoRejected(str(exc), TerminationReason.MESSAGE_3_ERROR) from None
    if peer_netid != netid:
        raise RouterInfoRejected(f"netId {peer_netid}, ours is {netid}", TerminationReason.MESSAGE_3_ERROR)
    if now - router_info.published_seconds > max_age:
        raise RouterInfoRejected("RouterInfo is too old", TerminationReason.MESSAGE_3_ERROR)
    for address in router_info.addresses:
        if address.transport_style not in transport_styles:
            continue
        # ntcp2.rst "Published Addresses": v is a comma-separated version list
        if "2" not in {v.strip() for v in (address.v or "").split(",")}:
            continue
        try:
            key = address.s
        except ParseError:
            continue
        if key == static_key:
            return
    raise RouterInfoRejected(f"no {transport_styles[0]} address with the proven static key", TerminationReason.STATIC_KEY_MISMATCH)


class _Handshake:
    def __init__(self, clock: Clock, rng: Rng):
        self._clock = clock
        self._rng = rng
        self._buf = bytearray()
        self._out = bytearray()
        self._failed: ProtocolError | None = None
        self.result: HandshakeResult | None = None
        self.unused_data = b""

    @property
    def complete(self) -> bool:
        return self.result is not None

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def feed(self, data: bytes) -> HandshakeResult | None:
        """Consume input; returns the result once complete. Raises ProtocolError (then dead)."""
        if self._failed is not None:
            raise self._failed
        if self.result is not None:
            self.unused_data += data
            return self.result
        self._buf += data
        try:
            self._advance()
        except ProtocolError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return self.result

    def _advance(self) -> None:
        raise NotImplementedError

    def _take(self, n: int) -> bytes | None:
        if len(self._buf) < n:
            return None
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _check_skew(self, timestamp: int, structure: str) -> float:
        skew = _skew(timestamp, self._clock)
        if abs(skew) > CLOCK_SKEW_LIMIT:
            raise ClockSkewError(f"clock skew {skew:+.0f} s exceeds {CLOCK_SKEW_LIMIT} s", skew, structure=structure)
        return skew


class Initiator(_Handshake):
    """Alice: sends SessionRequest at construction (see data_to_send), answers SessionCreated with SessionConfirmed."""

    def __init__(self, static_key: X25519Keypair, router_info: bytes, peer_router_hash: bytes,
                 peer_static_key: bytes, peer_iv: bytes, *, netid: int, clock: Clock, rng: Rng = os.urandom,
                 options: OptionsBlock | None = None, max_padding: int = DEFAULT_SENT_PADDING,
                 max_accepted_padding: int = DEFAULT_ACCEPTED_PADDING):
        super().__init__(clock, rng)
        if len(peer_router_hash) != 32:
            raise ValueError("peer router hash must be 32 bytes")
        if len(peer_static_key) != 32 or len(peer_iv) != 16:
            raise HandshakeError("peer's NTCP2 s must be 32 bytes and i 16 bytes", structure="RouterAddress")
        if not 0 <= max_padding <= MAX_SENT_PADDING or not 0 <= netid <= 0xFF:
            raise ValueError("bad padding or netid setting")
        self._static_key = static_key
        self._peer_router_hash = peer_router_hash
        self._peer_static_key = peer_static_key
        self._max_accepted_padding = max_accepted_padding
        self._state = "message2"
        self._created: SessionCreatedOptions | None = None

        # ntcp2.rst "SessionConfirmed" notes, strategy a): fix part 2 now so m3p2Len is exact
        blocks = [RouterInfoBlock(router_info)]
        if options is not None:
            blocks.append(options)
        part2 = b"".join(b.to_bytes() for b in blocks)
        room = MAX_FRAME_PAYLOAD - MESSAGE_3_PART_1_SIZE - len(part2)
        if room < 0:
            raise ValueError("RouterInfo too large for SessionConfirmed")
        part2 += PaddingBlock(rng(_random_below(rng, min(max_padding, room - 3) + 1))).to_bytes() if room >= 3 else b""
        self._part2_plaintext = part2

        # "e", "es"; X obfuscated with AES-256-CBC(RH_B, IV_B)
        self._ephemeral = X25519Keypair(rng(32))
        x = self._ephemeral.public_bytes
        x_obfuscated = cbc_encrypt(peer_router_hash, peer_iv, x)
        self._aes_state = x_obfuscated[16:]      # the CBC chain continues into message 2
        state = _handshake_state(peer_static_key)
        state.mix_hash(x)
        state.mix_key(self._ephemeral.dh(peer_static_key))
        pad_len = _random_below(rng, max_padding + 1)
        request = SessionRequestOptions(netid, VERSION, pad_len, len(part2) + 16, _now_seconds(clock))
        frame = state.encrypt_and_hash(request.to_bytes())
        padding = rng(pad_len)
        if padding:
            state.mix_hash(padding)
        self._state_noise = state
        self._out += x_obfuscated + frame + padding

    def _advance(self) -> None:
        if self._state == "message2":
            message = self._take(MESSAGE_2_SIZE)
            if message is None:
                return
            state = self._state_noise
            y = cbc_decrypt(self._peer_router_hash, self._aes_state, message[:32])
            state.mix_hash(y)
            state.mix_key(self._ephemeral.dh(y))
            self._remote_ephemeral = y
            options = SessionCreatedOptions.parse(state.decrypt_and_hash(message[32:]))
            self._skew = self._check_skew(options.timestamp, "SessionCreated")
            if options.pad_len > self._max_accepted_padding:
                raise HandshakeError(f"padding of {options.pad_len} bytes is too long", structure="SessionCreated")
            self._created = options
            self._state = "padding2"
        if self._state == "padding2":
            padding = self._take(self._created.pad_len)
            if padding is None:
                return
            if self._buf:
                raise HandshakeError("data after SessionCreated", structure="SessionCreated")
            self._send_session_confirmed(padding)

    def _send_session_confirmed(self, padding: bytes) -> None:
        state = self._state_noise
        if padding:
            state.mix_hash(padding)
        part1 = state.encrypt_and_hash(self._static_key.public_bytes)      # "s", k from message 2, n = 1
        state.mix_key(self._static_key.dh(self._remote_ephemeral))          # "se"
        part2 = state.encrypt_and_hash(self._part2_plaintext)
        self._out += part1 + part2
        self._state = "done"
        self.result = HandshakeResult(
            initiator=True, keys=derive_data_phase_keys(state.ck, state.h, initiator=True),
            peer_static_key=self._peer_static_key, peer_router_hash=self._peer_router_hash,
            peer_router_info=None, peer_router_info_flags=0, peer_options=None, clock_skew=self._skew,
            handshake_hash=state.h)
        self._ephemeral = self._state_noise = None  # type: ignore[assignment]


class Responder(_Handshake):
    """Bob: reads SessionRequest, answers SessionCreated, reads and checks SessionConfirmed.

    `answered` stays False until SessionCreated is queued; a failure before that must get no answer
    (ntcp2.rst probing resistance), which the driver implements.
    """

    def __init__(self, static_key: X25519Keypair, router_hash: bytes, iv: bytes, *, netid: int, clock: Clock,
                 rng: Rng = os.urandom, replay_cache: ReplayCache,
                 max_padding: int = DEFAULT_SENT_PADDING, max_accepted_padding: int = DEFAULT_ACCEPTED_PADDING,
                 parse_router_info: Callable[[bytes], RouterInfo] = RouterInfo.parse,
                 router_info_max_age: float = DEFAULT_ROUTER_INFO_MAX_AGE):
        super().__init__(clock, rng)
        if len(router_hash) != 32 or len(iv) != 16:
            raise ValueError("router hash must be 32 bytes and IV 16 bytes")
        if not 0 <= max_padding <= MAX_SENT_PADDING or not 0 <= netid <= 0xFF:
            raise ValueError("bad padding or netid setting")
        self._static_key = static_key
        self._router_hash = router_hash
        self._iv = iv
        self._netid = netid
        self._replay_cache = replay_cache
        self._max_padding = max_padding
        self._max_accepted_padding = max_accepted_padding
        self._parse_router_info = parse_router_info
        self._router_info_max_age = router_info_max_age
        self._state = "message1"
        self.answered = False

    def _advance(self) -> None:
        if self._state == "message1":
            message = self._take(MESSAGE_1_SIZE)
            if message is None:
                return
            self._read_session_request(message)
            self._state = "padding1"
        if self._state == "padding1":
            padding = self._take(self._request.pad_len)
            if padding is None:
                return
            if self._buf:
                raise HandshakeError("data after SessionRequest", structure="SessionRequest")
            self._send_session_created(padding)
            self._state = "message3"
        if self._state == "message3":
            message = self._take(MESSAGE_3_PART_1_SIZE + self._request.m3p2_len)
            if message is None:
                return
            self._read_session_confirmed(message)
            self.unused_data = bytes(self._buf)
            self._buf.clear()

    def _read_session_request(self, message: bytes) -> None:
        x_obfuscated = message[:32]
        x = cbc_decrypt(self._router_hash, self._iv, x_obfuscated)
        if x[31] & 0x80:
            raise CryptoError("ephemeral key has the high bit set", structure="SessionRequest", offset=31)
        self._aes_state = x_obfuscated[16:]
        state = _handshake_state(self._static_key.public_bytes)
        state.mix_hash(x)
        state.mix_key(self._static_key.dh(x))
        request = SessionRequestOptions.parse(state.decrypt_and_hash(message[32:]))
        if request.netid and request.netid != self._netid:
            raise HandshakeError(f"network id {request.netid}, ours is {self._netid}", structure="SessionRequest")
        if request.version != VERSION:
            raise HandshakeError(f"version {request.version} is not {VERSION}", structure="SessionRequest")
        if request.pad_len > self._max_accepted_padding:
            raise HandshakeError(f"padding of {request.pad_len} bytes is too long", structure="SessionRequest")
        if not 16 <= request.m3p2_len <= MAX_MESSAGE_3_PART_2_SIZE:
            raise HandshakeError(f"m3p2Len {request.m3p2_len} out of range", structure="SessionRequest")
        self._skew = self._check_skew(request.timestamp, "SessionRequest")
        if self._replay_cache.check_and_add(x):
            raise HandshakeError("replayed ephemeral key", structure="SessionRequest")
        self._remote_ephemeral = x
        self._state_noise = state
        self._request = request

    def _send_session_created(self, request_padding: bytes) -> None:
        state = self._state_noise
        if request_padding:
            state.mix_hash(request_padding)
        rng = self._rng
        self._ephemeral = X25519Keypair(rng(32))
        y = self._ephemeral.public_bytes
        y_obfuscated = cbc_encrypt(self._router_hash, self._aes_state, y)
        state.mix_hash(y)
        state.mix_key(self._ephemeral.dh(self._remote_ephemeral))
        pad_len = _random_below(rng, self._max_padding + 1)
        frame = state.encrypt_and_hash(SessionCreatedOptions(pad_len, _now_seconds(self._clock)).to_bytes())
        padding = rng(pad_len)
        if padding:
            state.mix_hash(padding)
        self._out += y_obfuscated + frame + padding
        self.answered = True

    def _read_session_confirmed(self, message: bytes) -> None:
        state = self._state_noise
        alice_static = state.decrypt_and_hash(message[:MESSAGE_3_PART_1_SIZE])
        state.mix_key(self._ephemeral.dh(alice_static))
        payload = state.decrypt_and_hash(message[MESSAGE_3_PART_1_SIZE:])
        keys = derive_data_phase_keys(state.ck, state.h, initiator=False)
        router_info_block, options, _ = parse_message3_blocks(payload)
        try:
            router_info = self._parse_router_info(router_info_block.router_info)
        except ProtocolError as exc:
            raise RouterInfoRejected(f"unparsable: {exc}", TerminationReason.MESSAGE_3_ERROR) from None
        check_peer_router_info(router_info, alice_static, netid=self._netid, now=self._clock.time(),
                               max_age=self._router_info_max_age)
        self.result = HandshakeResult(
            initiator=False, keys=keys, peer_static_key=alice_static, peer_router_hash=router_info.hash,
            peer_router_info=router_info_block.router_info, peer_router_info_flags=router_info_block.flags,
            peer_options=options, clock_skew=self._skew, handshake_hash=state.h, router_info=router_info)
        self._state = "done"
        self._ephemeral = self._state_noise = None  # type: ignore[assignment]
