"""The session key manager of one local destination (ecies.rst "Session Context", "Classification"), sans-I/O.

decrypt(): session tag lookup first (ES, NSR, lookup replies), a used-tag check, then a rate-limited,
replay-filtered New Session trial (hybrid first when the message is long enough, then X25519).
encrypt(): NS, NSR or ES on the session bound to the far-end static key, starting one when needed.
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict

from ..bloom import DecayingBloomFilter
from ..clock import Clock, Rng
from ..crypto import elligator2, mlkem, x25519
from ..crypto.x25519 import X25519Keypair
from ..data.errors import ProtocolError
from ..data.keytypes import CRYPTO_X25519
from . import kdf
from .blocks import Block, DateTime, encode_payload, padding_for
from .limits import ReplayFilter, TokenBucket
from .routers import REPLY_KEY_LIFETIME, ReplyKeyStore, check_datetime
from .session import (ES_OVERHEAD, KEY_LEN, SESSION_TAG_LEN, SUPPORTED_CRYPTO_TYPES, ZERO_KEY, MessageKind,
                      RatchetConfig, RatchetContext, RatchetSession, ReceivedGarlic, SentGarlic, SessionState,
                      ns_min_length, read_new_session)
from .tagset import TagIndex, TagSetExhausted

UPKEEP_INTERVAL = 1.0


class SessionKeyManager:
    """All ECIES-ratchet state of one local destination; `static_keys` maps crypto type to X25519 private key."""

    def __init__(self, static_keys: dict[int, bytes], *, clock: Clock, rng: Rng = os.urandom,
                 config: RatchetConfig = RatchetConfig()):
        unknown = set(static_keys) - SUPPORTED_CRYPTO_TYPES
        if unknown or not static_keys:
            raise ValueError(f"need X25519 keys of crypto types in {sorted(SUPPORTED_CRYPTO_TYPES)}, got {unknown}")
        self.ctx = RatchetContext(clock, rng, config, TagIndex(config.max_tags),
                                  {t: X25519Keypair(k) for t, k in static_keys.items()})
        self.config = config
        self.reply_keys = ReplyKeyStore()
        self.stats: Counter[str] = Counter()
        self._live: OrderedDict[int, RatchetSession] = OrderedDict()
        self._by_key: dict[bytes, RatchetSession] = {}
        self._pending_inbound: OrderedDict[int, RatchetSession] = OrderedDict()
        self._replay = ReplayFilter(config.ns_replay_window, config.ns_replay_capacity)
        self._ns_bucket = TokenBucket(config.ns_per_second, config.ns_burst)
        self._used_tags = DecayingBloomFilter(clock, config.used_tag_window, config.used_tag_memory, rng(16))
        self._next_upkeep = 0.0
        # hybrid first: its NS is longer, and a failed hybrid trial falls back to X25519 (ecies-hybrid.rst)
        self._ns_order = sorted(self.ctx.static_keys, reverse=True)

    # ------------------------------------------------------------------ queries

    @property
    def crypto_types(self) -> frozenset[int]:
        return frozenset(self.ctx.static_keys)

    def public_key(self, crypto_type: int = CRYPTO_X25519) -> bytes:
        return self.ctx.static_keys[crypto_type].public_bytes

    def session(self, remote_static_key: bytes) -> RatchetSession | None:
        return self._by_key.get(remote_static_key)

    @property
    def session_count(self) -> int:
        return len(self._live)

    @property
    def tag_count(self) -> int:
        return len(self.ctx.index)

    def sessions_wanting_reply(self, older_than: float = 0.0) -> list[RatchetSession]:
        """Sessions owed a ratchet-layer answer for at least `older_than` seconds (send them an empty message)."""
        now = self.ctx.now()
        return [s for s in self._by_key.values()
                if s.reply_wanted_since is not None and now - s.reply_wanted_since >= older_than]

    # ------------------------------------------------------------------ receive

    def add_reply_key(self, reply_key: bytes, reply_tag: bytes, lifetime: float = REPLY_KEY_LIFETIME) -> None:
        """Listen for the reply to one of our lookups (i2np.rst "DatabaseLookup" reply key and tag)."""
        self.reply_keys.add(reply_key, reply_tag, self.ctx.now() + lifetime)

    def decrypt(self, data: bytes) -> ReceivedGarlic | None:
        """The garlic body of a Garlic message for this destination; None (counted in stats) when it is not ours."""
        self._maybe_upkeep()
        if len(data) < ES_OVERHEAD:
            self.stats["short"] += 1
            return None
        tag = data[:SESSION_TAG_LEN]
        entry = self.ctx.index.get(tag)
        if entry is not None:
            tagset, n = entry
            session: RatchetSession = tagset.owner
            result = session.handle_tagged(tagset, n, data)
            if result is None:
                self.stats["tagged_failed"] += 1
                return None
            self._used_tags.add(tag)
            self._after_receive(session)
            self.stats[result.kind.name.lower()] += 1
            return result
        if tag in self.reply_keys:
            blocks = self.reply_keys.decrypt(data)
            if blocks is not None:
                self._used_tags.add(tag)
                self.stats["reply_key"] += 1
                return ReceivedGarlic(MessageKind.REPLY_KEY, blocks)
        if tag in self._used_tags:
            self.stats["replayed_tag"] += 1
            return None
        return self._try_new_session(data)

    def _try_new_session(self, data: bytes) -> ReceivedGarlic | None:
        now = self.ctx.now()
        types = [t for t in self._ns_order if len(data) >= ns_min_length(t)]
        if not types:
            self.stats["unknown_tag"] += 1
            return None
        representative = data[:KEY_LEN - 1] + bytes((data[KEY_LEN - 1] & 0x3F,))
        if self._replay.seen(representative, now):
            self.stats["replayed_ns"] += 1
            return None
        if not self._ns_bucket.take(now):
            self.stats["ns_rate_limited"] += 1
            return None
        for crypto_type in types:
            try:
                ns = read_new_session(data, crypto_type, self.ctx.static_keys[crypto_type])
                break
            except ProtocolError:
                continue
        else:
            self.stats["ns_failed"] += 1
            return None
        self._replay.add(representative, now)
        if not check_datetime(ns.blocks[0], self.ctx.clock.time(), self.config):
            self.stats["ns_skew"] += 1
            return None
        if ns.remote_static_key is None:
            self.stats["one_time"] += 1
            return ReceivedGarlic(MessageKind.ONE_TIME, ns.blocks)
        session = RatchetSession.from_new_session(self.ctx, ns)
        self._add_live(session)
        self._pending_inbound[id(session)] = session
        while len(self._pending_inbound) > self.config.max_pending_inbound:
            _, old = self._pending_inbound.popitem(last=False)
            self._drop(old)
        existing = self._by_key.get(session.remote_static_key)
        if (existing is None or not existing.established or existing.established_at is None
                or now - existing.established_at > self.config.pending_timeout):
            # ecies.rst "Parameters": replace a session when an NS comes more than 3 minutes after it began
            self._by_key[session.remote_static_key] = session
            if existing is not None and existing.state is SessionState.NEW_SESSION_RECEIVED \
                    and not existing._candidates:
                self._drop(existing)  # never answered: nothing can arrive on it
        self.stats["new_session"] += 1
        return ReceivedGarlic(MessageKind.NEW_SESSION, ns.blocks, session, session.remote_static_key)

    def _after_receive(self, session: RatchetSession) -> None:
        if session.terminated:
            self._drop(session)
            return
        if session.established:
            self._pending_inbound.pop(id(session), None)
            current = self._by_key.get(session.remote_static_key)
            if current is not session and (current is None or not current.established
                                           or (current.established_at or 0) <= (session.established_at or 0)):
                self._by_key[session.remote_static_key] = session
            self._live.move_to_end(id(session))

    # ------------------------------------------------------------------ send

    def encrypt(self, remote_static_key: bytes, blocks: list[Block] | tuple[Block, ...] = (), *,
                crypto_type: int = CRYPTO_X25519, ack_request: bool = False) -> SentGarlic:
        """The next message to the destination with this static key (from its LeaseSet2), as NS, NSR or ES.

        `crypto_type` picks X25519 (4) or an ML-KEM hybrid (6, 7) for a new session; both ends must offer it.
        Raises SessionNotReady when nothing can be sent now (for example no local key of that type).
        """
        self._maybe_upkeep()
        now = self.ctx.now()
        session = self._by_key.get(remote_static_key)
        if session is None or session.should_restart(now):
            session = RatchetSession.outbound(self.ctx, remote_static_key, crypto_type)
            self._by_key[remote_static_key] = session
            self._add_live(session)
        try:
            sent = session.encrypt(blocks, ack_request=ack_request and session.established)
        except TagSetExhausted:
            session = RatchetSession.outbound(self.ctx, remote_static_key, crypto_type)
            self._by_key[remote_static_key] = session
            self._add_live(session)
            sent = session.encrypt(blocks)
        self._live.move_to_end(id(session))
        return sent

    def encrypt_one_time(self, remote_static_key: bytes, blocks: list[Block] | tuple[Block, ...] = (), *,
                         crypto_type: int = CRYPTO_X25519) -> SentGarlic:
        """ecies.rst "1d": an NS with a zero static key; no session, no reply (raw datagrams)."""
        ctx = self.ctx
        body: list[Block] = [DateTime(int(ctx.clock.time()) & 0xFFFFFFFF), *blocks]
        padding = padding_for(ctx.rng, self.config.padding_max)
        payload = encode_payload(body + [padding] if padding is not None else body)
        private, public, representative = elligator2.generate_keypair(ctx.rng)
        state = kdf.initial_state(crypto_type, remote_static_key)
        state.mix_hash(public)
        state.mix_key(x25519.dh(private, remote_static_key))
        parts = [representative]
        if crypto_type != CRYPTO_X25519:
            encap_key, _ = mlkem.keygen(mlkem.BY_CRYPTO_TYPE[crypto_type], ctx.rng)
            parts.append(state.encrypt_and_hash(encap_key))
        parts.append(state.encrypt_and_hash(ZERO_KEY))
        parts.append(state.encrypt_and_hash(payload))  # same key, next nonce: the "ss" step is skipped
        return SentGarlic(b"".join(parts), MessageKind.ONE_TIME)

    def terminate(self, remote_static_key: bytes, reason: int = 0) -> SentGarlic | None:
        """End the session with this far end: a Termination ES when established, then forget it."""
        session = self._by_key.pop(remote_static_key, None)
        if session is None:
            return None
        sent = session.terminate(reason)
        self._drop(session)
        return sent

    # ------------------------------------------------------------------ upkeep

    def _add_live(self, session: RatchetSession) -> None:
        self._live[id(session)] = session
        while len(self._live) > self.config.max_sessions:
            _, old = self._live.popitem(last=False)
            self._drop(old)

    def _drop(self, session: RatchetSession) -> None:
        session.close()
        self._live.pop(id(session), None)
        self._pending_inbound.pop(id(session), None)
        if self._by_key.get(session.remote_static_key) is session:
            del self._by_key[session.remote_static_key]

    def _maybe_upkeep(self) -> None:
        now = self.ctx.now()
        if now >= self._next_upkeep:
            self._next_upkeep = now + UPKEEP_INTERVAL
            self.upkeep()

    def upkeep(self) -> None:
        """Expire sessions, tag sets, reply keys and replay entries on the injected clock."""
        now = self.ctx.now()
        for session in list(self._live.values()):
            if session.is_expired(now):
                self._drop(session)
            else:
                session.expire_tagsets(now)
        self.reply_keys.expire(now)
        self._replay.expire(now)
