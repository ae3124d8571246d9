"""Garlic to and from routers (ecies-routers.rst) and replies under a lookup's reply key and tag.

To a router: the Noise "N" one-shot, a plain (not Elligator2) ephemeral key then one ChaChaPoly
frame of payload blocks that starts with DateTime. Replies to a DatabaseLookup that asked for
ECIES encryption are Existing Session frames: 8-byte reply tag || ChaChaPoly(reply key, n=0, payload, ad=tag)
(i2np.rst "DatabaseLookup", proposal 154).
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict

from ..bloom import DecayingBloomFilter
from ..clock import Clock, Rng
from ..crypto.chacha import TAG_LEN, ChaChaPoly
from ..crypto.x25519 import X25519Keypair
from ..data.errors import CryptoError, ProtocolError
from ..i2np.garlic import GarlicCloveBlock, GarlicCloveDeliveryInstructions
from ..i2np.header import I2NPMessage, MessageType
from ..i2np.messages import Garlic
from . import kdf
from .blocks import Block, DateTime, PayloadKind, encode_payload, padding_for, parse_payload
from .limits import ReplayFilter, TokenBucket
from .session import KEY_LEN, SESSION_TAG_LEN, MessageKind, RatchetConfig, ReceivedGarlic

ROUTER_OVERHEAD = KEY_LEN + TAG_LEN
MIN_ROUTER_MESSAGE = ROUTER_OVERHEAD + 7          # DateTime is required
REPLY_KEY_LIFETIME = 180.0                         # like a previous tag set (i2pd keeps them as long)


def encrypt_to_router(router_static_key: bytes, blocks: list[Block] | tuple[Block, ...] = (), *, clock: Clock,
                      rng: Rng = os.urandom, padding_max: int = 15) -> bytes:
    """A one-shot garlic body for a router's X25519 key (ecies-routers.rst "KDF for Message")."""
    body = [DateTime(int(clock.time()) & 0xFFFFFFFF), *blocks]
    padding = padding_for(rng, padding_max)
    payload = encode_payload(body + [padding] if padding is not None else body)
    ephemeral = X25519Keypair.generate(rng)
    state = kdf.router_initial_state(router_static_key)
    state.mix_hash(ephemeral.public_bytes)
    key = state.mix_key(ephemeral.dh(router_static_key))  # "es"
    return ephemeral.public_bytes + ChaChaPoly(key).encrypt(0, payload, state.h)


def read_router_message(data: bytes, static_key: X25519Keypair) -> tuple[Block, ...]:
    """The router's side; CryptoError when the frame is not for this key, ParseError for a bad payload."""
    if len(data) < MIN_ROUTER_MESSAGE:
        raise CryptoError("too short for a router garlic message", structure="RouterGarlic", offset=0)
    ephemeral = data[:KEY_LEN]
    state = kdf.router_initial_state(static_key.public_bytes)
    state.mix_hash(ephemeral)
    key = state.mix_key(static_key.dh(ephemeral))
    payload = ChaChaPoly(key).decrypt(0, data[KEY_LEN:], state.h)
    return parse_payload(payload, PayloadKind.ROUTER)


def encrypt_with_reply_key(reply_key: bytes, reply_tag: bytes, blocks: list[Block] | tuple[Block, ...], *,
                           rng: Rng = os.urandom, padding_max: int = 15) -> bytes:
    """What a floodfill sends back for a lookup with ECIES reply encryption."""
    if len(reply_key) != KEY_LEN or len(reply_tag) != SESSION_TAG_LEN:
        raise ValueError("reply key must be 32 bytes and reply tag 8")
    padding = padding_for(rng, padding_max)
    payload = encode_payload(list(blocks) + [padding] if padding is not None else list(blocks))
    return reply_tag + ChaChaPoly(reply_key).encrypt(0, payload, reply_tag)


def _garlic_message(data: bytes, inner: I2NPMessage, rng: Rng) -> I2NPMessage:
    return I2NPMessage(MessageType.GARLIC, int.from_bytes(rng(4), "big"), inner.expiration_ms, Garlic(data).to_bytes())


def wrap_for_router(router_static_key: bytes, message: I2NPMessage, *, clock: Clock,
                    rng: Rng = os.urandom) -> I2NPMessage:
    """`message` as the one LOCAL clove of a Garlic message to a router (network-database.md
    "LeaseSet Storage to Floodfills": stores and lookups through tunnels are garlic-wrapped to the floodfill)."""
    clove = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), message)
    return _garlic_message(encrypt_to_router(router_static_key, [clove], clock=clock, rng=rng), message, rng)


def wrap_with_reply_key(reply_key: bytes, reply_tag: bytes, message: I2NPMessage, *,
                        rng: Rng = os.urandom) -> I2NPMessage:
    """A floodfill's answer to a lookup that asked for ECIES replies, as a Garlic message (i2np.rst "DatabaseLookup")."""
    clove = GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), message)
    return _garlic_message(encrypt_with_reply_key(reply_key, reply_tag, [clove], rng=rng), message, rng)


class ReplyKeyStore:
    """Reply keys of our own lookups, by tag; each decrypts one reply, then is gone."""

    __slots__ = ("capacity", "_keys")

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._keys: OrderedDict[bytes, tuple[ChaChaPoly, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, tag: bytes) -> bool:
        return tag in self._keys

    def add(self, reply_key: bytes, reply_tag: bytes, expires_at: float) -> None:
        if len(reply_key) != KEY_LEN or len(reply_tag) != SESSION_TAG_LEN:
            raise ValueError("reply key must be 32 bytes and reply tag 8")
        self._keys[reply_tag] = (ChaChaPoly(reply_key), expires_at)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def decrypt(self, data: bytes) -> tuple[Block, ...] | None:
        """The reply's blocks if its tag is ours and it authenticates; None otherwise (the tag stays on failure)."""
        tag = data[:SESSION_TAG_LEN]
        entry = self._keys.get(tag)
        if entry is None or len(data) < SESSION_TAG_LEN + TAG_LEN:
            return None
        try:
            payload = entry[0].decrypt(0, data[SESSION_TAG_LEN:], tag)
        except CryptoError:
            return None
        del self._keys[tag]
        try:
            return parse_payload(payload, PayloadKind.EXISTING_SESSION)
        except ProtocolError:
            return None

    def expire(self, now: float) -> None:
        for tag in [t for t, (_, at) in self._keys.items() if at < now]:
            del self._keys[tag]


class RouterGarlicReceiver:
    """The router's context (ecies.rst "Session Context"): reply tags first, then a rate-limited Noise N trial."""

    def __init__(self, static_private_key: bytes, *, clock: Clock, config: RatchetConfig = RatchetConfig(),
                 rng: Rng = os.urandom):
        self.static_key = X25519Keypair(static_private_key)
        self.clock = clock
        self.config = config
        self.reply_keys = ReplyKeyStore()
        self._replay = ReplayFilter(config.ns_replay_window, config.ns_replay_capacity)
        self._bucket = TokenBucket(config.ns_per_second, config.ns_burst)
        self._used_tags = DecayingBloomFilter(clock, config.used_tag_window, config.used_tag_memory, rng(16))
        self.stats: Counter[str] = Counter()

    def add_reply_key(self, reply_key: bytes, reply_tag: bytes, lifetime: float = REPLY_KEY_LIFETIME) -> None:
        self.reply_keys.add(reply_key, reply_tag, self.clock.monotonic() + lifetime)

    def decrypt(self, data: bytes) -> ReceivedGarlic | None:
        now = self.clock.monotonic()
        tag = data[:SESSION_TAG_LEN]
        if tag in self.reply_keys:
            blocks = self.reply_keys.decrypt(data)
            if blocks is not None:
                self._used_tags.add(tag)
                self.stats["reply"] += 1
                return ReceivedGarlic(MessageKind.REPLY_KEY, blocks)
        if tag in self._used_tags:
            self.stats["replayed_tag"] += 1
            return None
        if len(data) < MIN_ROUTER_MESSAGE:
            self.stats["short"] += 1
            return None
        ephemeral = data[:KEY_LEN]
        if self._replay.seen(ephemeral, now):
            self.stats["replayed"] += 1
            return None
        if not self._bucket.take(now):
            self.stats["rate_limited"] += 1
            return None
        try:
            blocks = read_router_message(data, self.static_key)
        except ProtocolError:
            self.stats["failed"] += 1
            return None
        self._replay.add(ephemeral, now)
        if not check_datetime(blocks[0], self.clock.time(), self.config):
            self.stats["skew"] += 1
            return None
        self.stats["router"] += 1
        return ReceivedGarlic(MessageKind.ROUTER, blocks)

    def upkeep(self) -> None:
        now = self.clock.monotonic()
        self.reply_keys.expire(now)
        self._replay.expire(now)


def check_datetime(block: Block, wall_now: float, config: RatchetConfig) -> bool:
    """The first block's DateTime is within the allowed skew (ecies.rst "Parameters")."""
    if not isinstance(block, DateTime):
        return False
    # the 32-bit seconds field wraps in 2106: compare modulo 2^32 around now
    delta = (block.timestamp - int(wall_now)) % (1 << 32)
    if delta >= 1 << 31:
        delta -= 1 << 32
    return -config.max_skew_past <= delta <= config.max_skew_future
