"""ElGamal/AES+SessionTags (legacy/elgamal-aes.md), sans-I/O: garlic to and from destinations whose LeaseSet
offers only an ElGamal key (i2pd before 2.54.0 makes its SAM destinations so by default).

Sessions are one-way: we deliver tags with a session key to the far end, and use them (once each) later.
Tags we deliver become usable only when the DeliveryStatus message the caller bundled with them comes back
(confirm()); until then each message is a New Session one (ElGamal block + AES block).
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from ..clock import Clock, Rng
from ..crypto import aes, elgamal
from ..crypto.hashes import sha256
from ..data.errors import CryptoError, ParseError, ProtocolError
from .limits import ReplayFilter, TokenBucket

TAG_LEN = 32
KEY_LEN = 32
MAX_TAGS_PER_MESSAGE = 200          # "tag count: 0-200"
MIN_AES_BLOCK = 48                  # "Minimum length: 48 bytes"
NEW_SESSION_MIN = elgamal.BLOCK_LEN + MIN_AES_BLOCK
EXISTING_SESSION_MIN = TAG_LEN + MIN_AES_BLOCK
_ELGAMAL_PADDING = elgamal.MAX_DATA - 2 * KEY_LEN    # "158 bytes random padding"
_FIXED = 2 + 4 + 32 + 1             # tag count, payload size, payload hash, flag


@dataclass(frozen=True, slots=True)
class ElGamalAesConfig:
    tags_to_send: int = 40                  # i2cp.tagsToSend, Java's and i2pd's default...
    max_tags_to_send: int = 160             # ...doubled, up to this, each time a busy session ran out of tags
    inbound_tag_lifetime: float = 960.0     # "15 minutes currently"; i2pd keeps them 16
    outbound_tag_lifetime: float = 720.0    # use ours well before the far end forgets them (i2pd: 12 minutes)
    confirm_timeout: float = 60.0           # delivered tags not confirmed by then are forgotten
    retry_after: float = 4.0                # a batch unconfirmed this long: send another (i2pd waits 4 s too)
    session_idle: float = 960.0
    max_sessions: int = 1024
    max_unconfirmed: int = 4                # batches awaiting their DeliveryStatus, per session
    max_inbound_tags: int = 10_000          # 250 of i2pd's batches; ~1.5 MB at most
    new_session_per_second: float = 10.0    # ElGamal decryptions (~30 ms each) allowed per second...
    new_session_burst: float = 20.0         # ...with this burst
    replay_window: float = 300.0
    replay_capacity: int = 16_384
    padding_max: int = 32


def encode_aes_block(tags: list[bytes] | tuple[bytes, ...], payload: bytes, rng: Rng, padding_max: int = 0) -> bytes:
    """legacy/elgamal-aes.md "AES Block", unencrypted: tags, payload size, SHA-256, flag 0, payload, padding."""
    if len(tags) > MAX_TAGS_PER_MESSAGE or any(len(t) != TAG_LEN for t in tags):
        raise ValueError(f"0-{MAX_TAGS_PER_MESSAGE} tags of {TAG_LEN} bytes")
    body = b"".join((len(tags).to_bytes(2, "big"), *tags, len(payload).to_bytes(4, "big"), sha256(payload),
                     b"\x00", payload))
    extra = rng(1)[0] % (padding_max + 1) if padding_max else 0
    return body + rng((-len(body) % 16) + 16 * (extra // 16))


def read_aes_block(block: bytes) -> tuple[tuple[bytes, ...], bytes]:
    """(tags, payload) of a decrypted AES block; ParseError when malformed or the payload hash differs."""
    if len(block) < MIN_AES_BLOCK or len(block) % 16:
        raise ParseError(f"{len(block)} bytes", structure="ElGamal/AES block")
    count = int.from_bytes(block[:2], "big")
    if count > MAX_TAGS_PER_MESSAGE or _FIXED + count * TAG_LEN > len(block):
        raise ParseError(f"tag count {count}", structure="ElGamal/AES block", offset=0)
    end = 2 + count * TAG_LEN
    tags = tuple(block[i:i + TAG_LEN] for i in range(2, end, TAG_LEN))
    size = int.from_bytes(block[end:end + 4], "big")
    digest, flag = block[end + 4:end + 36], block[end + 36]
    start = end + 37 + (KEY_LEN if flag == 1 else 0)   # "New Session Key": never sent, skipped when present
    if flag not in (0, 1) or start + size > len(block):
        raise ParseError(f"flag {flag}, payload size {size}", structure="ElGamal/AES block", offset=end)
    payload = block[start:start + size]
    if sha256(payload) != digest:
        raise ParseError("payload hash mismatch", structure="ElGamal/AES block", offset=end + 4)
    return tags, payload


def _iv(pre_iv: bytes) -> bytes:
    return sha256(pre_iv)[:16]   # "the IV is the first 16 bytes of the SHA-256 Hash of the Pre-IV"


@dataclass(frozen=True, slots=True)
class ElGamalAesSent:
    data: bytes
    new_session: bool
    tags_sent: int


@dataclass(frozen=True, slots=True)
class ElGamalAesReceived:
    payload: bytes
    new_session: bool
    tags_received: int


@dataclass(slots=True)
class _Outbound:
    session_key: bytes
    last_used: float
    batch: int
    confirmed_once: bool = False
    tags: deque = field(default_factory=deque)                      # (tag, usable until)
    unconfirmed: OrderedDict = field(default_factory=OrderedDict)    # message id -> (tags, sent at)


class ElGamalAesManager:
    """The ElGamal/AES state of one local destination: outbound sessions by far-end ElGamal key, inbound tags.
    `private_key` is our ElGamal key when our LeaseSet offers one (None: we only send, and read our own tags)."""

    def __init__(self, private_key: bytes | None, *, clock: Clock, rng: Rng = os.urandom,
                 config: ElGamalAesConfig = ElGamalAesConfig()):
        self.private_key = private_key
        self.public_key = elgamal.public_from_private(private_key) if private_key is not None else None
        self.clock, self.rng, self.config = clock, rng, config
        self.stats: Counter[str] = Counter()
        self._sessions: OrderedDict[bytes, _Outbound] = OrderedDict()
        self._waiting: dict[int, bytes] = {}                             # message id -> far-end key
        self._inbound: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()   # tag -> (session key, expires)
        self._bucket = TokenBucket(config.new_session_per_second, config.new_session_burst)
        self._replay = ReplayFilter(config.replay_window, config.replay_capacity)

    @property
    def inbound_tag_count(self) -> int:
        return len(self._inbound)

    def usable_tags(self, remote_key: bytes) -> int:
        session = self._sessions.get(remote_key)
        return len(session.tags) if session is not None else 0

    # ------------------------------------------------------------------ send

    def wants_tags(self, remote_key: bytes) -> bool:
        """Whether the next message should deliver a new batch of tags (and carry a DeliveryStatus for it)."""
        session = self._sessions.get(remote_key)
        if session is None:
            return True
        self._expire_outbound(session, self.clock.monotonic())
        if len(session.tags) > session.batch * 2 // 3:   # a new batch at 2/3 of one left, as i2pd
            return False
        # another batch when the last one's DeliveryStatus is overdue (lost, or its tunnel broke)
        newest = next(reversed(session.unconfirmed.values()), None)
        return newest is None or self.clock.monotonic() - newest[1] >= self.config.retry_after

    def encrypt(self, remote_key: bytes, payload: bytes, *, tags_message_id: int | None = None) -> ElGamalAesSent:
        """A garlic body for the far end with this ElGamal key: Existing Session when a confirmed tag is left,
        else New Session. With `tags_message_id`, a new batch of tags rides along, usable once confirm(id)."""
        now = self.clock.monotonic()
        session = self._sessions.get(remote_key)
        if session is None:
            session = self._sessions[remote_key] = _Outbound(self.rng(KEY_LEN), now, self.config.tags_to_send)
            while len(self._sessions) > self.config.max_sessions:
                self._forget(self._sessions.popitem(last=False)[1])
        self._sessions.move_to_end(remote_key)
        session.last_used = now
        self._expire_outbound(session, now)
        tags: tuple[bytes, ...] = ()
        if tags_message_id is not None:
            tags = tuple(self.rng(TAG_LEN) for _ in range(session.batch))
            if len(session.unconfirmed) >= self.config.max_unconfirmed:
                self._waiting.pop(session.unconfirmed.popitem(last=False)[0], None)
            session.unconfirmed[tags_message_id] = (tags, now)
            self._waiting[tags_message_id] = remote_key
        block = encode_aes_block(tags, payload, self.rng, self.config.padding_max)
        if session.tags:
            tag, _ = session.tags.popleft()
            self.stats["sent_existing"] += 1
            data = tag + aes.cbc_encrypt(session.session_key, _iv(tag), block)
            return ElGamalAesSent(data, False, len(tags))
        if session.confirmed_once and session.unconfirmed:
            # ran out while the next batch was on its way: the far end gets more at a time from now on
            session.batch = min(2 * session.batch, self.config.max_tags_to_send)
        pre_iv = self.rng(KEY_LEN)
        head = elgamal.encrypt(remote_key, session.session_key + pre_iv + self.rng(_ELGAMAL_PADDING), self.rng)
        self.stats["sent_new"] += 1
        return ElGamalAesSent(head + aes.cbc_encrypt(session.session_key, _iv(pre_iv), block), True, len(tags))

    def confirm(self, message_id: int) -> bool:
        """The DeliveryStatus sent with a batch of tags came back: they are usable now."""
        remote_key = self._waiting.pop(message_id, None)
        session = self._sessions.get(remote_key) if remote_key is not None else None
        if session is None or message_id not in session.unconfirmed:
            return False
        tags, sent_at = session.unconfirmed.pop(message_id)
        session.tags.extend((tag, sent_at + self.config.outbound_tag_lifetime) for tag in tags)
        session.confirmed_once = True
        self.stats["tags_confirmed"] += len(tags)
        return True

    def seal_for_self(self, payload: bytes) -> bytes:
        """An Existing Session body under a fresh key and tag only we know: a DeliveryStatus we bundle for the
        far end to send back through one of our inbound tunnels stays opaque to the tunnel's hops."""
        key, tag = self.rng(KEY_LEN), self.rng(TAG_LEN)
        self._add_inbound(tag, key, self.clock.monotonic())
        return tag + aes.cbc_encrypt(key, _iv(tag), encode_aes_block((), payload, self.rng))

    # ------------------------------------------------------------------ receive

    def decrypt_existing(self, data: bytes) -> ElGamalAesReceived | None:
        """A message whose first 32 bytes are a tag delivered to us; None when they are not one."""
        if len(data) < EXISTING_SESSION_MIN or len(data) % 16:
            return None
        entry = self._inbound.pop(data[:TAG_LEN], None)
        if entry is None:
            return None
        key, expires = entry
        if expires < self.clock.monotonic():
            self.stats["tag_expired"] += 1
            return None
        return self._open(key, _iv(data[:TAG_LEN]), data[TAG_LEN:], False)

    def decrypt_new(self, data: bytes) -> ElGamalAesReceived | None:
        """A New Session message to our ElGamal key; None (counted) when it is not one."""
        if self.private_key is None or len(data) < NEW_SESSION_MIN or (len(data) - elgamal.BLOCK_LEN) % 16:
            return None
        now = self.clock.monotonic()
        head = data[:elgamal.BLOCK_LEN]
        representative = sha256(head)
        if self._replay.seen(representative, now):
            self.stats["replayed_new"] += 1
            return None
        if not self._bucket.take(now):
            self.stats["new_rate_limited"] += 1
            return None
        try:
            plain = elgamal.decrypt(self.private_key, head)
        except CryptoError:
            self.stats["new_failed"] += 1
            return None
        if len(plain) != elgamal.MAX_DATA:
            self.stats["new_failed"] += 1
            return None
        self._replay.add(representative, now)
        return self._open(plain[:KEY_LEN], _iv(plain[KEY_LEN:2 * KEY_LEN]), data[elgamal.BLOCK_LEN:], True)

    def _open(self, key: bytes, iv: bytes, encrypted: bytes, new_session: bool) -> ElGamalAesReceived | None:
        try:
            tags, payload = read_aes_block(aes.cbc_decrypt(key, iv, encrypted))
        except ProtocolError:
            self.stats["aes_malformed"] += 1
            return None
        now = self.clock.monotonic()
        for tag in tags:
            self._add_inbound(tag, key, now)
        self.stats["received_new" if new_session else "received_existing"] += 1
        return ElGamalAesReceived(payload, new_session, len(tags))

    def _add_inbound(self, tag: bytes, key: bytes, now: float) -> None:
        self._inbound[tag] = (key, now + self.config.inbound_tag_lifetime)
        self._inbound.move_to_end(tag)
        while len(self._inbound) > self.config.max_inbound_tags:
            self._inbound.popitem(last=False)
            self.stats["inbound_tags_evicted"] += 1

    # ------------------------------------------------------------------ upkeep

    def _expire_outbound(self, session: _Outbound, now: float) -> None:
        while session.tags and session.tags[0][1] <= now:
            session.tags.popleft()
        while session.unconfirmed:
            message_id, (_, sent_at) = next(iter(session.unconfirmed.items()))
            if now - sent_at < self.config.confirm_timeout:
                break
            del session.unconfirmed[message_id]
            self._waiting.pop(message_id, None)
            self.stats["tags_unconfirmed"] += 1

    def _forget(self, session: _Outbound) -> None:
        for message_id in session.unconfirmed:
            self._waiting.pop(message_id, None)

    def upkeep(self) -> None:
        """Expire tags and idle sessions on the injected clock."""
        now = self.clock.monotonic()
        while self._inbound:
            tag, (_, expires) = next(iter(self._inbound.items()))
            if expires > now:
                break   # insertion order is expiry order: every tag lives as long
            del self._inbound[tag]
        for remote_key, session in list(self._sessions.items()):
            self._expire_outbound(session, now)
            if now - session.last_used > self.config.session_idle:
                del self._sessions[remote_key]
                self._forget(session)
        self._replay.expire(now)
