"""ECIES-X25519 tunnel build records, long (528) and short (218), both sides (tunnel-creation-ecies.rst).

Creator: `create_build()` makes the build message and a `PendingBuild`, whose `process_reply()`
returns each hop's status. Hop: `BuildRecordDecryptor` finds and opens our record and writes the reply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Self, Sequence

from core.clock import Clock, Rng
from core.crypto import x25519
from core.crypto.aes import cbc_decrypt, cbc_encrypt
from core.crypto.chacha import ChaChaPoly, chacha20, noise_nonce
from core.crypto.hashes import hkdf
from core.crypto.noise import SymmetricState
from core.data.errors import CryptoError, ParseError
from core.data.identity import RouterIdentity
from core.data.keytypes import CRYPTO_X25519
from core.data.primitives import Mapping
from core.data.reader import Reader
from core.i2np import MessageType, ShortTunnelBuild, VariableTunnelBuild

LONG_RECORD_SIZE = 528
SHORT_RECORD_SIZE = 218
LONG_REQUEST_CLEARTEXT = 464
SHORT_REQUEST_CLEARTEXT = 154
LONG_REPLY_CLEARTEXT = 512
SHORT_REPLY_CLEARTEXT = 202
TRUNCATED_HASH_SIZE = 16
EPHEMERAL_KEY_SIZE = 32
MAC_SIZE = 16
RECORD_HEADER_SIZE = TRUNCATED_HASH_SIZE + EPHEMERAL_KEY_SIZE
MAX_HOPS = 7  # tunnel-routing.md "Tunnel length"
STANDARD_RECORD_COUNT = 4  # tunnel-creation-ecies.rst "Build Records": recommended minimum
MAX_RECORD_COUNT = 8
REQUEST_EXPIRATION_SECONDS = 600  # "the only supported value is 600"

FLAG_INBOUND_GATEWAY = 0x80  # bit 7: allow messages from anyone
FLAG_OUTBOUND_ENDPOINT = 0x40  # bit 6: allow messages to anyone
LAYER_ENCRYPTION_AES = 0

PROTOCOL_NAME = b"Noise_N_25519_ChaChaPoly_SHA256"
_U32_MAX = 0xFFFFFFFF


class BuildStatus(IntEnum):
    """Reply byte values (legacy/tunnel-creation.rst "Reply Record Specification")."""

    ACCEPT = 0
    PROBABILISTIC_REJECT = 10
    TRANSIENT_OVERLOAD = 20
    BANDWIDTH = 30
    CRITICAL = 50


def _check_tunnel_id(value: int, name: str, structure: str) -> None:
    if not 0 < value <= _U32_MAX:
        raise ParseError(f"{name} {value} must be a nonzero 4-byte TunnelId", structure=structure)


def _check_record_fields(record, fixed_len: int, extra_ranges: tuple, structure: str) -> None:
    """What long and short request records share: field ranges, the options cap, padding that fills the record."""
    for value, limit, what in (*extra_ranges, (record.request_time_minutes, _U32_MAX, "request time"),
                               (record.expiration_seconds, _U32_MAX, "expiration"),
                               (record.next_message_id, _U32_MAX, "next message id")):
        if not 0 <= value <= limit:
            raise ParseError(f"{what} {value} out of range", structure=structure)
    options_size = len(record.options.to_bytes())
    if options_size > record.MAX_OPTIONS:
        raise ParseError(f"options take {options_size} bytes, at most {record.MAX_OPTIONS}", structure=structure)
    if fixed_len + options_size + len(record.padding) != record.SIZE:
        raise ParseError(f"padding of {len(record.padding)} bytes does not fill the record", structure=structure)


def _check_flags(flags: int, structure: str) -> None:
    if not 0 <= flags <= 0xFF:
        raise ParseError(f"flags {flags} out of range", structure=structure)
    if flags & FLAG_INBOUND_GATEWAY and flags & FLAG_OUTBOUND_ENDPOINT:
        raise ParseError("gateway and endpoint flags both set", structure=structure)


# --- cleartext request records


@dataclass(frozen=True, slots=True)
class ShortBuildRequestRecord:
    """The 154-byte cleartext short request record ("Short Request Record Unencrypted")."""

    SIZE: ClassVar[int] = SHORT_REQUEST_CLEARTEXT
    MAX_OPTIONS: ClassVar[int] = 98

    receive_tunnel_id: int
    next_tunnel_id: int
    next_ident: bytes
    flags: int
    request_time_minutes: int
    next_message_id: int
    options: Mapping = field(default_factory=Mapping)
    padding: bytes = b""
    expiration_seconds: int = REQUEST_EXPIRATION_SECONDS
    more_flags: int = 0
    layer_encryption: int = LAYER_ENCRYPTION_AES

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_tunnel_id(self.receive_tunnel_id, "receive tunnel id", name)
        _check_tunnel_id(self.next_tunnel_id, "next tunnel id", name)
        if len(self.next_ident) != 32:
            raise ParseError("next ident must be 32 bytes", structure=name)
        _check_flags(self.flags, name)
        _check_record_fields(self, 56, ((self.more_flags, 0xFFFF, "more flags"),
                                        (self.layer_encryption, 0xFF, "layer type")), name)

    @classmethod
    def create(cls, *, receive_tunnel_id: int, next_tunnel_id: int, next_ident: bytes, flags: int,
               request_time_minutes: int, next_message_id: int, rng: Rng, options: Mapping | None = None) -> Self:
        options = options or Mapping()
        return cls(receive_tunnel_id, next_tunnel_id, next_ident, flags, request_time_minutes, next_message_id,
                   options, rng(max(0, cls.SIZE - 56 - len(options.to_bytes()))))

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        receive_tunnel_id, next_tunnel_id = r.u32(), r.u32()
        next_ident = r.take(32)
        flags, more_flags, layer_encryption = r.u8(), r.u16(), r.u8()
        request_time, expiration, next_message_id = r.u32(), r.u32(), r.u32()
        options_offset = r.pos
        options = Mapping.read(r)
        if r.pos - options_offset > cls.MAX_OPTIONS:
            raise r.error(f"options exceed {cls.MAX_OPTIONS} bytes", options_offset)
        padding = r.take(cls.SIZE - (r.pos - start))
        try:
            return cls(receive_tunnel_id, next_tunnel_id, next_ident, flags, request_time, next_message_id, options,
                       padding, expiration, more_flags, layer_encryption)
        except ParseError as exc:
            raise r.error(exc.reason, start) from None

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        record = cls.read(r)
        r.expect_end()
        return record

    def to_bytes(self) -> bytes:
        return b"".join((self.receive_tunnel_id.to_bytes(4, "big"), self.next_tunnel_id.to_bytes(4, "big"),
                         self.next_ident, bytes((self.flags,)), self.more_flags.to_bytes(2, "big"),
                         bytes((self.layer_encryption,)), self.request_time_minutes.to_bytes(4, "big"),
                         self.expiration_seconds.to_bytes(4, "big"), self.next_message_id.to_bytes(4, "big"),
                         self.options.to_bytes(), self.padding))

    @property
    def is_inbound_gateway(self) -> bool:
        return bool(self.flags & FLAG_INBOUND_GATEWAY)

    @property
    def is_outbound_endpoint(self) -> bool:
        return bool(self.flags & FLAG_OUTBOUND_ENDPOINT)


@dataclass(frozen=True, slots=True)
class BuildRequestRecord:
    """The 464-byte cleartext long ECIES request record ("Request Record Unencrypted"); deprecated but in use."""

    SIZE: ClassVar[int] = LONG_REQUEST_CLEARTEXT
    MAX_OPTIONS: ClassVar[int] = 296

    receive_tunnel_id: int
    next_tunnel_id: int
    next_ident: bytes
    layer_key: bytes
    iv_key: bytes
    reply_key: bytes
    reply_iv: bytes
    flags: int
    request_time_minutes: int
    next_message_id: int
    options: Mapping = field(default_factory=Mapping)
    padding: bytes = b""
    expiration_seconds: int = REQUEST_EXPIRATION_SECONDS
    more_flags: int = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_tunnel_id(self.receive_tunnel_id, "receive tunnel id", name)
        _check_tunnel_id(self.next_tunnel_id, "next tunnel id", name)
        for value, size, what in ((self.next_ident, 32, "next ident"), (self.layer_key, 32, "layer key"),
                                  (self.iv_key, 32, "IV key"), (self.reply_key, 32, "reply key"),
                                  (self.reply_iv, 16, "reply IV")):
            if len(value) != size:
                raise ParseError(f"{what} must be {size} bytes", structure=name)
        _check_flags(self.flags, name)
        _check_record_fields(self, 168, ((self.more_flags, 0xFFFFFF, "more flags"),), name)

    @classmethod
    def create(cls, *, receive_tunnel_id: int, next_tunnel_id: int, next_ident: bytes, flags: int,
               request_time_minutes: int, next_message_id: int, rng: Rng, options: Mapping | None = None) -> Self:
        """Fresh random layer, IV and reply keys and random padding."""
        options = options or Mapping()
        return cls(receive_tunnel_id, next_tunnel_id, next_ident, rng(32), rng(32), rng(32), rng(16), flags,
                   request_time_minutes, next_message_id, options, rng(max(0, cls.SIZE - 168 - len(options.to_bytes()))))

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        receive_tunnel_id, next_tunnel_id = r.u32(), r.u32()
        next_ident, layer_key, iv_key, reply_key, reply_iv = r.take(32), r.take(32), r.take(32), r.take(32), r.take(16)
        flags, more_flags = r.u8(), r.uint(3)
        request_time, expiration, next_message_id = r.u32(), r.u32(), r.u32()
        options_offset = r.pos
        options = Mapping.read(r)
        if r.pos - options_offset > cls.MAX_OPTIONS:
            raise r.error(f"options exceed {cls.MAX_OPTIONS} bytes", options_offset)
        padding = r.take(cls.SIZE - (r.pos - start))
        try:
            return cls(receive_tunnel_id, next_tunnel_id, next_ident, layer_key, iv_key, reply_key, reply_iv, flags,
                       request_time, next_message_id, options, padding, expiration, more_flags)
        except ParseError as exc:
            raise r.error(exc.reason, start) from None

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        record = cls.read(r)
        r.expect_end()
        return record

    def to_bytes(self) -> bytes:
        return b"".join((self.receive_tunnel_id.to_bytes(4, "big"), self.next_tunnel_id.to_bytes(4, "big"),
                         self.next_ident, self.layer_key, self.iv_key, self.reply_key, self.reply_iv,
                         bytes((self.flags,)), self.more_flags.to_bytes(3, "big"),
                         self.request_time_minutes.to_bytes(4, "big"), self.expiration_seconds.to_bytes(4, "big"),
                         self.next_message_id.to_bytes(4, "big"), self.options.to_bytes(), self.padding))

    @property
    def is_inbound_gateway(self) -> bool:
        return bool(self.flags & FLAG_INBOUND_GATEWAY)

    @property
    def is_outbound_endpoint(self) -> bool:
        return bool(self.flags & FLAG_OUTBOUND_ENDPOINT)


AnyBuildRequestRecord = ShortBuildRequestRecord | BuildRequestRecord


# --- cleartext reply records


class _ReplyRecord:
    __slots__ = ()
    SIZE: ClassVar[int]
    options: Mapping
    padding: bytes
    status: int

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not 0 <= self.status <= 0xFF:
            raise ParseError(f"status {self.status} out of range", structure=name)
        if len(self.options.to_bytes()) + len(self.padding) + 1 != self.SIZE:
            raise ParseError(f"options and padding do not fill the {self.SIZE}-byte record", structure=name)

    @classmethod
    def create(cls, status: int, rng: Rng, options: Mapping | None = None) -> Self:
        options = options or Mapping()
        return cls(options, rng(max(0, cls.SIZE - 1 - len(options.to_bytes()))), status)  # type: ignore[call-arg]

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        options = Mapping.read(r)
        if r.pos - start > cls.SIZE - 1:
            raise r.error("options overrun the status byte", start)
        padding = r.take(cls.SIZE - 1 - (r.pos - start))
        return cls(options, padding, r.u8())  # type: ignore[call-arg]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, cls.__name__)
        record = cls.read(r)
        r.expect_end()
        return record

    def to_bytes(self) -> bytes:
        return self.options.to_bytes() + self.padding + bytes((self.status,))


@dataclass(frozen=True, slots=True)
class ShortBuildReplyRecord(_ReplyRecord):
    """The 202-byte cleartext short reply: options Mapping, padding, reply byte."""

    SIZE: ClassVar[int] = SHORT_REPLY_CLEARTEXT

    options: Mapping
    padding: bytes
    status: int


@dataclass(frozen=True, slots=True)
class BuildReplyRecord(_ReplyRecord):
    """The 512-byte cleartext long ECIES reply: options Mapping, padding, reply byte."""

    SIZE: ClassVar[int] = LONG_REPLY_CLEARTEXT

    options: Mapping
    padding: bytes
    status: int


# --- key derivation and record crypto


@dataclass(frozen=True, slots=True)
class HopKeys:
    """What a hop and the creator share after a build: tunnel layer keys and the reply crypto."""

    layer_key: bytes
    iv_key: bytes
    reply_key: bytes  # short: ChaCha reply key; long: AES reply key for the other records
    reply_iv: bytes | None = None  # long records only
    reply_aead_key: bytes = b""  # the key of the hop's own reply record (short: reply_key, long: ck)
    garlic_reply_key: bytes | None = None  # short OBEP only: wraps the OutboundTunnelBuildReply
    garlic_reply_tag: bytes | None = None


def derive_short_keys(chaining_key: bytes, outbound_endpoint: bool) -> HopKeys:
    """tunnel-creation-ecies.rst "KDF" (short records): reply, layer and IV keys, garlic key/tag at the OBEP."""
    keydata = hkdf(chaining_key, b"", b"SMTunnelReplyKey")
    reply_key, ck = keydata[32:], keydata[:32]
    keydata = hkdf(ck, b"", b"SMTunnelLayerKey")
    layer_key = keydata[32:]
    if not outbound_endpoint:
        return HopKeys(layer_key, keydata[:32], reply_key, reply_aead_key=reply_key)
    keydata = hkdf(keydata[:32], b"", b"TunnelLayerIVKey")
    iv_key = keydata[32:]
    keydata = hkdf(keydata[:32], b"", b"RGarlicKeyAndTag")
    return HopKeys(layer_key, iv_key, reply_key, reply_aead_key=reply_key, garlic_reply_key=keydata[32:],
                   garlic_reply_tag=keydata[:8])


_BASE_STATE = SymmetricState(PROTOCOL_NAME)
_BASE_STATE.mix_hash(b"")  # null prologue


def _hop_state(hop_static_public: bytes) -> SymmetricState:
    state = _BASE_STATE.copy()
    state.mix_hash(hop_static_public)
    return state


def _record_nonce(index: int) -> bytes:
    """12-byte ChaCha20 IV with the record number at byte 4 ("Record Encryption")."""
    return noise_nonce(index)


def chacha_record(key: bytes, index: int, record: bytes) -> bytes:
    """The per-record ChaCha20 of the short form (an involution); block counter 1 as i2pd and Java run it."""
    return chacha20(key, _record_nonce(index), record, counter=1)


def hop_public_key(identity: RouterIdentity) -> bytes:
    if identity.crypto_type != CRYPTO_X25519:
        raise CryptoError(f"hop {identity.hash.hex()[:8]} has crypto type {identity.crypto_type}, not X25519",
                          structure="BuildRequestRecord")
    return identity.public_key


def encrypt_request_record(cleartext: bytes, hop_hash: bytes, hop_static_public: bytes,
                           rng: Rng) -> tuple[bytes, SymmetricState, bytes]:
    """Noise N "e, es" to the hop's static key: returns (record, state after, ephemeral public key)."""
    state = _hop_state(hop_static_public)
    ephemeral_private = x25519.generate_private(rng)
    ephemeral_public = x25519.public_from_private(ephemeral_private)
    state.mix_hash(ephemeral_public)
    state.mix_key(x25519.dh(ephemeral_private, hop_static_public))
    ciphertext = state.encrypt_and_hash(cleartext)
    return hop_hash[:TRUNCATED_HASH_SIZE] + ephemeral_public + ciphertext, state, ephemeral_public


# --- creator side


@dataclass(frozen=True, slots=True)
class HopConfig:
    """The creator's view of one hop of a tunnel being built."""

    router_hash: bytes
    receive_tunnel_id: int
    next_ident: bytes
    next_tunnel_id: int
    flags: int
    record_index: int
    keys: HopKeys
    handshake_hash: bytes  # Noise h after the request: the AD of the hop's reply


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The outcome of a build reply: per-hop status in hop order, None where the record did not decrypt."""

    statuses: tuple[int | None, ...]
    reply_options: tuple[Mapping | None, ...]
    tampered: bool = False  # the creator's own fake record came back changed (inbound builds)

    @property
    def success(self) -> bool:
        return not self.tampered and all(s == BuildStatus.ACCEPT for s in self.statuses)


@dataclass(slots=True)
class PendingBuild:
    """State kept between sending a build and processing its reply (bounded by its expiry)."""

    inbound: bool
    short: bool
    hops: tuple[HopConfig, ...]
    record_count: int
    reply_msg_id: int
    created_at: float  # Clock.monotonic()
    own_tunnel_id: int | None = None  # inbound: the tunnel id the creator receives on
    own_record: tuple[int, bytes] | None = None  # inbound: (index, bytes) of our fake record

    @property
    def reply_type(self) -> int:
        """The I2NP type the reply comes as: the request type back (inbound) or a reply type (outbound)."""
        if self.inbound:
            return MessageType.SHORT_TUNNEL_BUILD if self.short else MessageType.VARIABLE_TUNNEL_BUILD
        return MessageType.OUTBOUND_TUNNEL_BUILD_REPLY if self.short else MessageType.VARIABLE_TUNNEL_BUILD_REPLY

    @property
    def reply_garlic(self) -> tuple[bytes, bytes] | None:
        """(key, 8-byte tag) the outbound endpoint wraps its short reply with, for the garlic layer to accept."""
        keys = self.hops[-1].keys
        if self.inbound or keys.garlic_reply_key is None:
            return None
        return keys.garlic_reply_key, keys.garlic_reply_tag  # type: ignore[return-value]

    @property
    def layer_keys(self) -> tuple[tuple[bytes, bytes], ...]:
        """(layer key, IV key) per hop in hop order, for core.tunnel.crypto."""
        return tuple((hop.keys.layer_key, hop.keys.iv_key) for hop in self.hops)

    def process_reply(self, records: Sequence[bytes]) -> BuildResult:
        """Undo each hop's symmetric layer on the others' records, then open each hop's own reply."""
        size = SHORT_RECORD_SIZE if self.short else LONG_RECORD_SIZE
        if len(records) != self.record_count or any(len(r) != size for r in records):
            raise ParseError(f"reply has {len(records)} records, the request had {self.record_count} of {size} bytes",
                             structure="BuildReply")
        work = list(records)
        statuses: list[int | None] = [None] * len(self.hops)
        options: list[Mapping | None] = [None] * len(self.hops)
        reply_cls = ShortBuildReplyRecord if self.short else BuildReplyRecord
        for position in range(len(self.hops) - 1, -1, -1):
            hop = self.hops[position]
            nonce = hop.record_index if self.short else 0
            try:
                plain = ChaChaPoly(hop.keys.reply_aead_key).decrypt(nonce, work[hop.record_index], hop.handshake_hash)
                reply = reply_cls.parse(plain)
                statuses[position] = reply.status
                options[position] = reply.options
            except (CryptoError, ParseError):
                pass
            for earlier in self.hops[:position]:
                index = earlier.record_index
                if self.short:
                    work[index] = chacha_record(hop.keys.reply_key, index, work[index])
                else:
                    work[index] = cbc_decrypt(hop.keys.reply_key, hop.keys.reply_iv, work[index])  # type: ignore[arg-type]
        tampered = False
        if self.own_record is not None:
            index, expected = self.own_record
            tampered = records[index] != expected
        return BuildResult(tuple(statuses), tuple(options), tampered)


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """A build ready to send: `message` goes to router `first_hop` as I2NP type `message.TYPE` with `msg_id`."""

    message: ShortTunnelBuild | VariableTunnelBuild
    msg_id: int
    first_hop: bytes
    pending: PendingBuild


def _random_u32(rng: Rng, nonzero: bool = False) -> int:
    while True:
        value = int.from_bytes(rng(4), "big")
        if value or not nonzero:
            return value


def random_tunnel_id(rng: Rng) -> int:
    return _random_u32(rng, nonzero=True)


def shuffled(items: list, rng: Rng) -> list:
    """Fisher-Yates with the injected RNG."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = randbelow(rng, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def randbelow(rng: Rng, n: int) -> int:
    """Uniform integer in [0, n) from the injected RNG (rejection sampling)."""
    if n <= 0:
        raise ValueError("randbelow needs n > 0")
    if n == 1:
        return 0
    bits = (n - 1).bit_length()
    nbytes = (bits + 7) // 8
    mask = (1 << bits) - 1
    while True:
        value = int.from_bytes(rng(nbytes), "big") & mask
        if value < n:
            return value


def create_build(hops: Sequence[RouterIdentity], *, inbound: bool, our_hash: bytes, clock: Clock, rng: Rng,
                 reply_gateway: bytes | None = None, reply_tunnel_id: int | None = None, short: bool = True,
                 record_count: int | None = None, options: Sequence[Mapping | None] | None = None) -> BuildRequest:
    """Build request for `hops` in tunnel order (hops[0] is the gateway for inbound, the first hop for outbound).

    Inbound: the last hop delivers to us on a fresh tunnel id. Outbound: the last hop (OBEP) sends the reply into
    tunnel `reply_tunnel_id` at `reply_gateway`. Records sit at random positions; the rest are fake, and inbound
    builds carry one fake record that looks addressed to us and must come back unchanged.
    """
    if not 1 <= len(hops) <= MAX_HOPS:
        raise ValueError(f"a built tunnel has 1-{MAX_HOPS} hops, got {len(hops)}")
    if not inbound and (reply_gateway is None or reply_tunnel_id is None):
        raise ValueError("an outbound build needs the reply tunnel's gateway and id")
    if options is not None and len(options) != len(hops):
        raise ValueError("one options Mapping (or None) per hop")
    needed = len(hops) + (1 if inbound else 0)
    if record_count is None:
        record_count = STANDARD_RECORD_COUNT if needed <= STANDARD_RECORD_COUNT else MAX_RECORD_COUNT
    if not needed <= record_count <= MAX_RECORD_COUNT:
        raise ValueError(f"{record_count} records cannot hold {needed}")
    record_size = SHORT_RECORD_SIZE if short else LONG_RECORD_SIZE
    record_cls = ShortBuildRequestRecord if short else BuildRequestRecord
    positions = shuffled(list(range(record_count)), rng)
    now_minutes = int(clock.time() // 60)
    receive_ids = [random_tunnel_id(rng) for _ in hops]
    own_tunnel_id = random_tunnel_id(rng) if inbound else None
    reply_msg_id = _random_u32(rng)

    records: list[bytes] = [b""] * record_count
    configs: list[HopConfig] = []
    for position, identity in enumerate(hops):
        last = position == len(hops) - 1
        flags = 0
        if inbound and position == 0:
            flags |= FLAG_INBOUND_GATEWAY
        if not inbound and last:
            flags |= FLAG_OUTBOUND_ENDPOINT
        if not last:
            next_ident, next_tunnel_id = hops[position + 1].hash, receive_ids[position + 1]
        elif inbound:
            next_ident, next_tunnel_id = our_hash, own_tunnel_id
        else:
            next_ident, next_tunnel_id = reply_gateway, reply_tunnel_id
        cleartext = record_cls.create(
            receive_tunnel_id=receive_ids[position], next_tunnel_id=next_tunnel_id,  # type: ignore[arg-type]
            next_ident=next_ident, flags=flags, request_time_minutes=now_minutes,  # type: ignore[arg-type]
            next_message_id=reply_msg_id if last else _random_u32(rng), rng=rng,
            options=options[position] if options else None)
        record, state, _ = encrypt_request_record(cleartext.to_bytes(), identity.hash, hop_public_key(identity), rng)
        if short:
            keys = derive_short_keys(state.ck, bool(flags & FLAG_OUTBOUND_ENDPOINT))
        else:
            assert isinstance(cleartext, BuildRequestRecord)
            keys = HopKeys(cleartext.layer_key, cleartext.iv_key, cleartext.reply_key, cleartext.reply_iv,
                           reply_aead_key=state.ck)
        index = positions[position]
        records[index] = record
        configs.append(HopConfig(identity.hash, receive_ids[position], next_ident, next_tunnel_id,  # type: ignore[arg-type]
                                 flags, index, keys, state.h))

    own_record = None
    fake_positions = positions[len(hops):]
    if inbound:
        index = fake_positions.pop(0)
        own_public = x25519.public_from_private(x25519.generate_private(rng))
        own_record = (index, our_hash[:TRUNCATED_HASH_SIZE] + own_public + rng(record_size - RECORD_HEADER_SIZE))
        records[index] = own_record[1]
    for index in fake_positions:
        records[index] = rng(record_size)

    # pre-decrypt so each hop's predecessors' layers cancel out on the way ("Symmetric Encryption of Records");
    # our own record passes every hop, so it gets every layer, the last hop's first (order matters for CBC)
    record_indices = [cfg.record_index for cfg in configs]
    for position in range(len(configs) - 1, -1, -1):
        hop_keys = configs[position].keys
        targets = record_indices[position + 1:] + ([own_record[0]] if own_record else [])
        for index in targets:
            if short:
                records[index] = chacha_record(hop_keys.reply_key, index, records[index])
            else:
                records[index] = cbc_decrypt(hop_keys.reply_key, hop_keys.reply_iv, records[index])  # type: ignore[arg-type]

    pending = PendingBuild(inbound, short, tuple(configs), record_count, reply_msg_id, clock.monotonic(),
                           own_tunnel_id, own_record)
    message = (ShortTunnelBuild if short else VariableTunnelBuild)(tuple(records))
    return BuildRequest(message, _random_u32(rng), hops[0].hash, pending)


# --- hop side


@dataclass(frozen=True, slots=True)
class DecryptedBuildRequest:
    """Our record, opened: the cleartext, where it sat, and the keys for the tunnel and the reply."""

    record: AnyBuildRequestRecord
    record_index: int
    ephemeral_key: bytes  # the replay filter's key
    handshake_hash: bytes
    keys: HopKeys

    @property
    def short(self) -> bool:
        return isinstance(self.record, ShortBuildRequestRecord)


class BuildRecordDecryptor:
    """A router's side of build records: its identity hash and X25519 static key, the Noise prefix precomputed."""

    __slots__ = ("router_hash", "_static", "_state")

    def __init__(self, router_hash: bytes, static_key: x25519.X25519Keypair):
        self.router_hash = router_hash
        self._static = static_key
        self._state = _hop_state(static_key.public_bytes)

    def find_record(self, records: Sequence[bytes]) -> int | None:
        prefix = self.router_hash[:TRUNCATED_HASH_SIZE]
        for index, record in enumerate(records):
            if record[:TRUNCATED_HASH_SIZE] == prefix:
                return index
        return None

    def decrypt(self, records: Sequence[bytes], index: int) -> DecryptedBuildRequest:
        """Open record `index`; CryptoError when it is not for us or was tampered with, ParseError when malformed."""
        record = records[index]
        short = len(record) == SHORT_RECORD_SIZE
        if not short and len(record) != LONG_RECORD_SIZE:
            raise ParseError(f"build record of {len(record)} bytes", structure="BuildRequestRecord")
        if record[:TRUNCATED_HASH_SIZE] != self.router_hash[:TRUNCATED_HASH_SIZE]:
            raise CryptoError("record is not addressed to us", structure="BuildRequestRecord", offset=0)
        ephemeral = record[TRUNCATED_HASH_SIZE:RECORD_HEADER_SIZE]
        state = self._state.copy()
        state.mix_hash(ephemeral)
        state.mix_key(self._static.dh(ephemeral))
        plain = state.decrypt_and_hash(record[RECORD_HEADER_SIZE:])
        if short:
            request: AnyBuildRequestRecord = ShortBuildRequestRecord.parse(plain)
            keys = derive_short_keys(state.ck, request.is_outbound_endpoint)
        else:
            request = BuildRequestRecord.parse(plain)
            keys = HopKeys(request.layer_key, request.iv_key, request.reply_key, request.reply_iv,
                           reply_aead_key=state.ck)
        return DecryptedBuildRequest(request, index, ephemeral, state.h, keys)

    @staticmethod
    def reply(records: Sequence[bytes], request: DecryptedBuildRequest, status: int, rng: Rng,
              options: Mapping | None = None) -> tuple[bytes, ...]:
        """Our reply in our slot, every other record passed through our reply layer."""
        keys = request.keys
        own_index = request.record_index
        out = []
        for index, record in enumerate(records):
            if index == own_index:
                if request.short:
                    plain = ShortBuildReplyRecord.create(status, rng, options).to_bytes()
                    out.append(ChaChaPoly(keys.reply_aead_key).encrypt(index, plain, request.handshake_hash))
                else:
                    plain = BuildReplyRecord.create(status, rng, options).to_bytes()
                    out.append(ChaChaPoly(keys.reply_aead_key).encrypt(0, plain, request.handshake_hash))
            elif request.short:
                out.append(chacha_record(keys.reply_key, index, record))
            else:
                out.append(cbc_encrypt(keys.reply_key, keys.reply_iv, record))  # type: ignore[arg-type]
        return tuple(out)
