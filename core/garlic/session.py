"""ECIES-X25519-AEAD-Ratchet sessions (ecies.rst; ecies-hybrid.rst for ML-KEM), sans-I/O.

A RatchetSession is one pairing of an outbound and an inbound direction with one far-end static key.
Alice creates one to send New Session (NS) messages until a New Session Reply (NSR) arrives; Bob gets
one from each bound NS and answers with NSRs until Alice's first Existing Session (ES) message.
Both then exchange ES messages and DH-ratchet with Next Key blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

from ..clock import Clock, Rng
from ..crypto import elligator2, mlkem, x25519
from ..crypto.chacha import ChaChaPoly, TAG_LEN
from ..crypto.noise import SymmetricState
from ..crypto.x25519 import X25519Keypair
from ..data.errors import CryptoError, ProtocolError
from ..data.keytypes import CRYPTO_X25519
from ..i2np.garlic import GarlicCloveBlock
from . import kdf
from .blocks import (Ack, AckRequest, Block, DateTime, MessageNumber, NextKey, PayloadKind, Termination,
                     encode_payload, padding_for, parse_payload)
from .tagset import InboundTagSet, OutboundTagSet, TagIndex, TagSetExhausted

KEY_LEN = 32
SESSION_TAG_LEN = 8
ZERO_KEY = bytes(KEY_LEN)
NS_OVERHEAD = KEY_LEN + KEY_LEN + 2 * TAG_LEN          # ecies.rst "1b": 96 + payload
NSR_OVERHEAD = SESSION_TAG_LEN + KEY_LEN + 2 * TAG_LEN  # ecies.rst "1g": 72 + payload
ES_OVERHEAD = SESSION_TAG_LEN + TAG_LEN
MIN_NS_PAYLOAD = 7                                       # a DateTime block is required
SUPPORTED_CRYPTO_TYPES = frozenset((CRYPTO_X25519, *mlkem.BY_CRYPTO_TYPE))


@dataclass(frozen=True, slots=True)
class RatchetConfig:
    """Limits and timeouts; defaults from ecies.rst "Parameters" unless noted."""

    nsr_tags: int = 12
    es_min_window: int = 24
    es_max_window: int = 160
    ratchet_after: int = 4096                  # send a Next Key at this tag index
    nsr_tagset_timeout: float = 180.0
    previous_tagset_timeout: float = 180.0
    send_timeout: float = 480.0
    receive_timeout: float = 600.0
    pending_timeout: float = 180.0             # NS sent or received without an answer
    restart_after_silence: float = 90.0        # i2pd: start over when the peer is silent this long...
    restart_min_age: float = 120.0             # ...and the session is at least this old
    max_handshakes: int = 8                    # Alice: NS states kept per session for late NSRs
    max_nsr_per_ns: int = 16                   # Bob: NSRs (each with its own keys) per NS
    max_owed_acks: int = 64
    padding_max: int = 15
    max_skew_past: float = 300.0               # "Max clock skew: -5 minutes to +2 minutes"
    max_skew_future: float = 120.0
    # per-context bounds (SessionKeyManager)
    max_tags: int = 100_000
    max_sessions: int = 4096
    max_pending_inbound: int = 512
    ns_per_second: float = 200.0               # NS trial decryptions allowed per second...
    ns_burst: float = 100.0                    # ...with this burst
    ns_replay_window: float = 300.0            # "NS replay filter duration: 5 minutes"
    ns_replay_capacity: int = 65_536
    used_tag_memory: int = 8192                # recently used tags, to drop replays without NS trial...
    used_tag_window: float = 300.0             # ...for at least this long, in a fixed-size Bloom filter


class MessageKind(Enum):
    NEW_SESSION = auto()
    NEW_SESSION_REPLY = auto()
    EXISTING_SESSION = auto()
    ONE_TIME = auto()            # NS with a zero static key: no session, no reply
    ROUTER = auto()              # ecies-routers.rst Noise N one-shot
    REPLY_KEY = auto()           # a reply encrypted with a lookup's reply key and tag
    ELGAMAL_AES = auto()         # legacy/elgamal-aes.md, from a destination that speaks only ElGamal


class SessionState(Enum):
    NEW_SESSION_SENT = auto()
    NEW_SESSION_RECEIVED = auto()
    ESTABLISHED = auto()
    TERMINATED = auto()


class SessionNotReady(Exception):
    """Nothing can be sent on this session now (NSR limit reached, terminated, or no local key)."""


@dataclass(frozen=True, slots=True)
class SentGarlic:
    """An encrypted garlic body (the Garlic message's data); ack_id is what an Ack for it will carry."""

    data: bytes
    kind: MessageKind
    ack_id: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ReceivedGarlic:
    kind: MessageKind
    blocks: tuple[Block, ...]
    session: "RatchetSession | None" = None
    remote_static_key: bytes | None = None
    acks: tuple[tuple[int, int], ...] = ()
    terminated: bool = False

    @property
    def cloves(self) -> tuple[GarlicCloveBlock, ...]:
        return tuple(b for b in self.blocks if isinstance(b, GarlicCloveBlock))


@dataclass(slots=True)
class RatchetContext:
    """What the sessions of one local destination (or router) share."""

    clock: Clock
    rng: Rng
    config: RatchetConfig
    index: TagIndex
    static_keys: dict[int, X25519Keypair] = field(default_factory=dict)

    def now(self) -> float:
        return self.clock.monotonic()


def _state(ck: bytes, h: bytes) -> SymmetricState:
    state = SymmetricState.__new__(SymmetricState)
    state.ck, state.h, state.k, state.n = ck, h, None, 0
    return state


def hybrid_params(crypto_type: int) -> mlkem.MLKEMParams | None:
    return None if crypto_type == CRYPTO_X25519 else mlkem.BY_CRYPTO_TYPE[crypto_type]


def ns_min_length(crypto_type: int) -> int:
    params = hybrid_params(crypto_type)
    extra = params.encap_key_len + TAG_LEN if params else 0
    return NS_OVERHEAD + MIN_NS_PAYLOAD + extra


def nsr_min_length(crypto_type: int) -> int:
    params = hybrid_params(crypto_type)
    return NSR_OVERHEAD + (params.ciphertext_len + TAG_LEN if params else 0)


@dataclass(slots=True)
class _Handshake:
    """Alice's state after one NS, kept to read NSRs to it."""

    ephemeral_private: bytes
    decapsulator: mlkem.Decapsulator | None
    ck: bytes
    h: bytes
    nsr_tagset: InboundTagSet | None = None


@dataclass(slots=True)
class _ReplyCandidate:
    """Bob's ES tag sets from one NSR; the first used by Alice becomes the session's."""

    inbound: InboundTagSet
    outbound: OutboundTagSet


@dataclass(slots=True)
class _DHRatchet:
    """One side's key for the next tag set in one direction (ecies.rst "DH RATCHET MESSAGE FLOW")."""

    key_id: int = 0
    new_key: bool = True
    keypair: X25519Keypair | None = None
    remote: bytes | None = None

    @property
    def receive_tagset_id(self) -> int:
        return 2 * self.key_id + 1 if self.new_key else 2 * self.key_id


@dataclass(frozen=True, slots=True)
class NewSessionRead:
    """A decrypted NS: the payload, and for bound sessions Bob's handshake state."""

    blocks: tuple[Block, ...]
    crypto_type: int
    remote_static_key: bytes | None
    ephemeral_public: bytes
    ck: bytes
    h: bytes
    encap_key: bytes | None


def read_new_session(data: bytes, crypto_type: int, static_key: X25519Keypair) -> NewSessionRead:
    """Bob's side of ecies.rst "1f" (and ecies-hybrid.rst "Bob KDF for NS"); CryptoError/ParseError if not ours."""
    params = hybrid_params(crypto_type)
    if len(data) < ns_min_length(crypto_type):
        raise CryptoError("too short for a New Session message", structure="NewSession", offset=0)
    ephemeral = elligator2.decode(data[:KEY_LEN])
    state = kdf.initial_state(crypto_type, static_key.public_bytes)
    state.mix_hash(ephemeral)
    state.mix_key(static_key.dh(ephemeral))
    offset = KEY_LEN
    encap_key = None
    if params is not None:
        end = offset + params.encap_key_len + TAG_LEN
        encap_key = state.decrypt_and_hash(data[offset:end])
        offset = end
    flags_or_key = state.decrypt_and_hash(data[offset:offset + KEY_LEN + TAG_LEN])
    offset += KEY_LEN + TAG_LEN
    remote = None if flags_or_key == ZERO_KEY else flags_or_key
    if remote is not None:
        state.mix_key(static_key.dh(remote))  # "ss"
    payload = state.decrypt_and_hash(data[offset:])
    blocks = parse_payload(payload, PayloadKind.NEW_SESSION)
    return NewSessionRead(blocks, crypto_type, remote, ephemeral, state.ck, state.h, encap_key)


class RatchetSession:
    """One bound session with a far-end static key; see the module docstring for its life."""

    def __init__(self, ctx: RatchetContext, remote_static_key: bytes, crypto_type: int, state: SessionState):
        if crypto_type not in SUPPORTED_CRYPTO_TYPES:
            raise ValueError(f"crypto type {crypto_type} is not supported")
        self.ctx = ctx
        self.remote_static_key = remote_static_key
        self.crypto_type = crypto_type
        self.state = state
        now = ctx.now()
        self.created = now
        self.last_sent = now
        self.last_received = now
        self.established_at: float | None = None
        self.reply_wanted_since: float | None = None
        # Alice
        self._handshakes: list[_Handshake] = []
        # Bob
        self._ns: NewSessionRead | None = None
        self._nsr_tagset: OutboundTagSet | None = None
        self._candidates: list[_ReplyCandidate] = []
        # both, once established
        self.send_tagset: OutboundTagSet | None = None
        self.receive_tagsets: list[InboundTagSet] = []
        self._next_send: _DHRatchet | None = None
        self._next_receive: _DHRatchet | None = None
        self._send_forward_key = False
        self._send_reverse_key = False
        self._owed_acks: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ construction

    @classmethod
    def outbound(cls, ctx: RatchetContext, remote_static_key: bytes, crypto_type: int = CRYPTO_X25519
                 ) -> "RatchetSession":
        if crypto_type not in ctx.static_keys:
            raise SessionNotReady(f"no local static key of crypto type {crypto_type} to bind with")
        return cls(ctx, remote_static_key, crypto_type, SessionState.NEW_SESSION_SENT)

    @classmethod
    def from_new_session(cls, ctx: RatchetContext, ns: NewSessionRead) -> "RatchetSession":
        assert ns.remote_static_key is not None
        session = cls(ctx, ns.remote_static_key, ns.crypto_type, SessionState.NEW_SESSION_RECEIVED)
        session._ns = ns
        session._nsr_tagset = OutboundTagSet(ns.ck, kdf.nsr_tagset_key(ns.ck))
        session.reply_wanted_since = session.created
        return session

    # ------------------------------------------------------------------ state queries

    @property
    def established(self) -> bool:
        return self.state is SessionState.ESTABLISHED

    @property
    def terminated(self) -> bool:
        return self.state is SessionState.TERMINATED

    @property
    def wants_reply(self) -> bool:
        """The far end waits for a ratchet-layer answer (NSR, first ES, Ack or reverse key): send even empty."""
        return self.reply_wanted_since is not None

    def is_expired(self, now: float) -> bool:
        cfg = self.ctx.config
        if self.state is SessionState.TERMINATED:
            return True
        if self.state is not SessionState.ESTABLISHED:
            return now - self.created > cfg.pending_timeout
        return now - self.last_received > cfg.receive_timeout and now - self.last_sent > cfg.send_timeout

    def should_restart(self, now: float) -> bool:
        """Better to start a new session than to send on this one (dead peer or used up)."""
        cfg = self.ctx.config
        if self.state is SessionState.TERMINATED:
            return True
        if self.state is SessionState.NEW_SESSION_RECEIVED:
            return len(self._candidates) >= cfg.max_nsr_per_ns
        if self.state is not SessionState.ESTABLISHED:
            return False
        if self.send_tagset is None or self.send_tagset.exhausted:
            return True
        return (now - self.last_received > cfg.restart_after_silence and now - self.created > cfg.restart_min_age
                or now - self.last_sent > cfg.send_timeout)

    # ------------------------------------------------------------------ sending

    def encrypt(self, blocks: list[Block] | tuple[Block, ...] = (), *, ack_request: bool = False,
                terminate: Termination | None = None) -> SentGarlic:
        """The next message carrying `blocks` (cloves, options...): NS, NSR or ES as the state requires."""
        now = self.ctx.now()
        if self.state is SessionState.ESTABLISHED:
            sent = self._write_existing(list(blocks), ack_request, terminate)
        elif terminate is not None:
            raise SessionNotReady("Termination is only sent in Existing Session messages")
        elif self.state is SessionState.NEW_SESSION_SENT:
            sent = self._write_new_session(list(blocks))
        elif self.state is SessionState.NEW_SESSION_RECEIVED:
            sent = self._write_new_session_reply(list(blocks))
        else:
            raise SessionNotReady("session is terminated")
        self.last_sent = now
        self.reply_wanted_since = None
        return sent

    def terminate(self, reason: int = 0) -> SentGarlic | None:
        """A final ES carrying Termination (None before the session is established); the session ends."""
        sent = self.encrypt(terminate=Termination(reason)) if self.established else None
        self.close()
        return sent

    def close(self) -> None:
        """Forget every tag and key of this session."""
        self.state = SessionState.TERMINATED
        for handshake in self._handshakes:
            if handshake.nsr_tagset is not None:
                handshake.nsr_tagset.discard()
        self._handshakes.clear()
        for candidate in self._candidates:
            candidate.inbound.discard()
        self._candidates.clear()
        for tagset in self.receive_tagsets:
            tagset.discard()
        self.receive_tagsets.clear()
        self.send_tagset = None
        self._ns = None

    def _padded(self, blocks: list[Block]) -> list[Block]:
        padding = padding_for(self.ctx.rng, self.ctx.config.padding_max)
        return blocks + [padding] if padding is not None else blocks

    def _write_new_session(self, blocks: list[Block]) -> SentGarlic:
        """ecies.rst "1b" / "1f" (ecies-hybrid.rst "Alice KDF for NS Message")."""
        ctx, cfg = self.ctx, self.ctx.config
        local = ctx.static_keys[self.crypto_type]
        payload = encode_payload(self._padded([DateTime(int(ctx.clock.time()) & 0xFFFFFFFF), *blocks]))
        ephemeral_private, ephemeral_public, representative = elligator2.generate_keypair(ctx.rng)
        state = kdf.initial_state(self.crypto_type, self.remote_static_key)
        state.mix_hash(ephemeral_public)
        state.mix_key(x25519.dh(ephemeral_private, self.remote_static_key))  # "es"
        parts = [representative]
        decapsulator = None
        params = hybrid_params(self.crypto_type)
        if params is not None:
            encap_key, seed = mlkem.keygen(params, ctx.rng)
            decapsulator = mlkem.Decapsulator(params, seed)
            parts.append(state.encrypt_and_hash(encap_key))  # "e1"
        parts.append(state.encrypt_and_hash(local.public_bytes))  # "s"
        state.mix_key(local.dh(self.remote_static_key))  # "ss"
        parts.append(state.encrypt_and_hash(payload))
        handshake = _Handshake(ephemeral_private, decapsulator, state.ck, state.h)
        handshake.nsr_tagset = InboundTagSet(
            state.ck, kdf.nsr_tagset_key(state.ck), tagset_id=0, index=ctx.index, owner=self, purpose=handshake,
            min_window=cfg.nsr_tags, max_window=cfg.nsr_tags, created=ctx.now(),
            expires_at=ctx.now() + cfg.nsr_tagset_timeout)
        self._handshakes.append(handshake)
        while len(self._handshakes) > cfg.max_handshakes:
            old = self._handshakes.pop(0)
            if old.nsr_tagset is not None:
                old.nsr_tagset.discard()
        return SentGarlic(b"".join(parts), MessageKind.NEW_SESSION)

    def _write_new_session_reply(self, blocks: list[Block]) -> SentGarlic:
        """ecies.rst "1g": a fresh ephemeral key per NSR, each giving its own pair of ES tag sets."""
        ctx, cfg, ns = self.ctx, self.ctx.config, self._ns
        assert ns is not None and self._nsr_tagset is not None
        if len(self._candidates) >= cfg.max_nsr_per_ns:
            raise SessionNotReady("NSR limit for this New Session reached")
        payload = encode_payload(self._padded(blocks))
        _, tag = self._nsr_tagset.next_tag()
        state = _state(ns.ck, ns.h)
        state.mix_hash(tag)
        ephemeral_private, ephemeral_public, representative = elligator2.generate_keypair(ctx.rng)
        state.mix_hash(ephemeral_public)
        state.mix_key(x25519.dh(ephemeral_private, ns.ephemeral_public))  # "ee"
        parts = [tag, representative]
        params = hybrid_params(self.crypto_type)
        if params is not None:
            assert ns.encap_key is not None
            kem_ciphertext, kem_shared = mlkem.encapsulate(params, ns.encap_key)
            parts.append(state.encrypt_and_hash(kem_ciphertext))  # "ekem1"
            state.mix_key(kem_shared)
        state.mix_key(x25519.dh(ephemeral_private, self.remote_static_key))  # "se"
        parts.append(state.encrypt_and_hash(b""))
        k_ab, k_ba = kdf.split(state.ck)
        now = ctx.now()
        candidate = _ReplyCandidate(
            InboundTagSet(state.ck, k_ab, tagset_id=0, index=ctx.index, owner=self, purpose=None,
                          min_window=cfg.es_min_window, max_window=cfg.es_max_window, created=now,
                          expires_at=self.created + cfg.pending_timeout),
            OutboundTagSet(state.ck, k_ba, created=now))
        candidate.inbound.purpose = candidate
        self._candidates.append(candidate)
        parts.append(ChaChaPoly(kdf.attach_payload_key(k_ba)).encrypt(0, payload, state.h))
        return SentGarlic(b"".join(parts), MessageKind.NEW_SESSION_REPLY)

    def _write_existing(self, blocks: list[Block], ack_request: bool, terminate: Termination | None) -> SentGarlic:
        """ecies.rst "1h": tag || ChaChaPoly(k_N, N, payload, ad=tag)."""
        send = self.send_tagset
        assert send is not None
        if send.next_index >= self.ctx.config.ratchet_after and not self._send_forward_key:
            self.start_ratchet()
        extra: list[Block] = []
        if self._owed_acks:
            extra.append(Ack(tuple(self._owed_acks)))
        if self._send_reverse_key and self._next_receive is not None:
            r = self._next_receive
            public = r.keypair.public_bytes if r.new_key and r.keypair else None
            extra.append(NextKey.reverse_key(r.key_id if r.new_key else r.key_id - 1, public))
        if self._send_forward_key and self._next_send is not None:
            r = self._next_send
            public = r.keypair.public_bytes if r.new_key and r.keypair else None
            extra.append(NextKey.forward(r.key_id, public, request_reverse=not r.new_key or r.key_id == 0))
        if ack_request:
            extra.append(AckRequest())
        if terminate is not None:
            extra.append(terminate)
        payload = encode_payload(self._padded(blocks + extra))
        n, tag, key = send.next_entry()
        self._owed_acks.clear()
        data = tag + ChaChaPoly(key).encrypt(n, payload, tag)
        return SentGarlic(data, MessageKind.EXISTING_SESSION, (send.tagset_id, n))

    def start_ratchet(self) -> None:
        """Begin a DH ratchet of our outbound tag set: send Next Key blocks until the reverse key comes."""
        r = self._next_send
        if r is None:
            r = self._next_send = _DHRatchet(0, True)
        elif not r.new_key or r.key_id == 0:
            if r.key_id >= 32767:
                raise TagSetExhausted("key ids used up; start a new session")
            r.key_id += 1
            r.new_key = True
        else:
            r.new_key = False
        if r.new_key:
            r.keypair = X25519Keypair.generate(self.ctx.rng)
        self._send_forward_key = True

    # ------------------------------------------------------------------ receiving

    def handle_tagged(self, tagset: InboundTagSet, n: int, data: bytes) -> ReceivedGarlic | None:
        """A message whose tag belongs to one of this session's inbound tag sets; None if it fails."""
        if self.state is SessionState.TERMINATED:
            return None
        if isinstance(tagset.purpose, _Handshake):
            return self._read_new_session_reply(tagset, n, data)
        return self._read_existing(tagset, n, data)

    def _read_new_session_reply(self, tagset: InboundTagSet, n: int, data: bytes) -> ReceivedGarlic | None:
        """Alice's side of ecies.rst "1g" (ecies-hybrid.rst "Alice KDF for NSR Message")."""
        handshake: _Handshake = tagset.purpose
        if len(data) < nsr_min_length(self.crypto_type):
            return None
        try:
            tag = data[:SESSION_TAG_LEN]
            reply_ephemeral = elligator2.decode(data[SESSION_TAG_LEN:SESSION_TAG_LEN + KEY_LEN])
            state = _state(handshake.ck, handshake.h)
            state.mix_hash(tag)
            state.mix_hash(reply_ephemeral)
            state.mix_key(x25519.dh(handshake.ephemeral_private, reply_ephemeral))  # "ee"
            offset = SESSION_TAG_LEN + KEY_LEN
            params = hybrid_params(self.crypto_type)
            if params is not None and handshake.decapsulator is not None:
                end = offset + params.ciphertext_len + TAG_LEN
                kem_ciphertext = state.decrypt_and_hash(data[offset:end])  # "ekem1"
                state.mix_key(handshake.decapsulator.decapsulate(kem_ciphertext))
                offset = end
            state.mix_key(self.ctx.static_keys[self.crypto_type].dh(reply_ephemeral))  # "se"
            state.decrypt_and_hash(data[offset:offset + TAG_LEN])
            offset += TAG_LEN
            k_ab, k_ba = kdf.split(state.ck)
            payload = ChaChaPoly(kdf.attach_payload_key(k_ba)).decrypt(0, data[offset:], state.h)
        except CryptoError:
            return None
        tagset.consume(n)
        try:
            blocks = parse_payload(payload, PayloadKind.NEW_SESSION_REPLY)
        except ProtocolError:
            return None
        now = self.ctx.now()
        if self.state is SessionState.NEW_SESSION_SENT:
            cfg = self.ctx.config
            self.send_tagset = OutboundTagSet(state.ck, k_ab, created=now)
            self.receive_tagsets = [InboundTagSet(
                state.ck, k_ba, tagset_id=0, index=self.ctx.index, owner=self, purpose=None,
                min_window=cfg.es_min_window, max_window=cfg.es_max_window, created=now)]
            self.state = SessionState.ESTABLISHED
            self.established_at = now
            self.reply_wanted_since = now  # Bob sends NSRs until our first ES
        self.last_received = now
        return ReceivedGarlic(MessageKind.NEW_SESSION_REPLY, blocks, self, self.remote_static_key)

    def _read_existing(self, tagset: InboundTagSet, n: int, data: bytes) -> ReceivedGarlic | None:
        key = tagset.key_for(n)
        if key is None or len(data) < ES_OVERHEAD:
            return None
        tag = data[:SESSION_TAG_LEN]
        try:
            payload = ChaChaPoly(key).decrypt(n, data[SESSION_TAG_LEN:], tag)
        except CryptoError:
            return None  # the tag stays: a forgery must not burn a real message's tag
        tagset.consume(n)
        now = self.ctx.now()
        if isinstance(tagset.purpose, _ReplyCandidate):
            self._adopt(tagset.purpose, now)
        self.last_received = now
        try:
            blocks = parse_payload(payload, PayloadKind.EXISTING_SESSION)
        except ProtocolError:
            return None
        if self._send_reverse_key and self._next_receive is not None \
                and tagset.tagset_id == self._next_receive.receive_tagset_id:
            self._send_reverse_key = False  # the sender uses the new tag set: our reverse key arrived
        acks: list[tuple[int, int]] = []
        terminated = False
        for block in blocks:
            if isinstance(block, NextKey):
                self._handle_next_key(block)
            elif isinstance(block, Ack):
                acks.extend(block.acks)
            elif isinstance(block, AckRequest):
                if len(self._owed_acks) < self.ctx.config.max_owed_acks:
                    self._owed_acks.append((tagset.tagset_id, n))
                self._want_reply(now)
            elif isinstance(block, MessageNumber):
                self._handle_message_number(tagset, block.previous_n)
            elif isinstance(block, Termination):
                terminated = True
        if terminated:
            self.close()
        return ReceivedGarlic(MessageKind.EXISTING_SESSION, blocks, self, self.remote_static_key,
                              tuple(acks), terminated)

    def _want_reply(self, now: float) -> None:
        if self.reply_wanted_since is None:
            self.reply_wanted_since = now

    def _adopt(self, candidate: _ReplyCandidate, now: float) -> None:
        """Bob: Alice's first ES picks the NSR whose tag sets the session keeps (ecies.rst "1g" Notes)."""
        if self.state is not SessionState.NEW_SESSION_RECEIVED:
            return
        for other in self._candidates:
            if other is not candidate:
                other.inbound.discard()
        self._candidates.clear()
        candidate.inbound.expires_at = None
        candidate.inbound.purpose = None
        self.receive_tagsets = [candidate.inbound]
        self.send_tagset = candidate.outbound
        self.state = SessionState.ESTABLISHED
        self.established_at = now
        self._ns = None
        self._nsr_tagset = None

    def _handle_next_key(self, block: NextKey) -> None:
        """ecies.rst "DH RATCHET MESSAGE FLOW"; tag set id = 1 + sender key id + receiver key id."""
        if block.is_reverse:
            r = self._next_send
            if not self._send_forward_key or r is None or r.keypair is None or self.send_tagset is None:
                return
            expected = r.key_id if (not r.new_key or r.key_id == 0) else r.key_id - 1
            if block.key_id != expected:
                return
            if block.public_key is not None:
                r.remote = block.public_key
            if r.remote is None:
                return
            try:
                shared = r.keypair.dh(r.remote)
            except CryptoError:
                return
            self.send_tagset = OutboundTagSet(self.send_tagset.next_root_key, kdf.ratchet_tagset_key(shared),
                                              tagset_id=1 + r.key_id + block.key_id, created=self.ctx.now())
            self._send_forward_key = False
            return
        r = self._next_receive
        request = block.requests_reverse
        # the sender's (key id, new reverse key wanted) runs (0,T) (1,F) (1,T) (2,F) (2,T) ...
        expected = (0, True) if r is None else ((r.key_id + 1, False) if r.new_key else (r.key_id, True))
        if (block.key_id, request) != expected:
            return  # a repeat of the Next Key we already answered, or out of sequence
        if not self.receive_tagsets:
            return
        candidate = _DHRatchet(block.key_id, request,
                               r.keypair if r is not None else None, r.remote if r is not None else None)
        if request:
            candidate.keypair = X25519Keypair.generate(self.ctx.rng)
        if block.public_key is not None:
            candidate.remote = block.public_key
        if candidate.keypair is None or candidate.remote is None:
            return
        try:
            shared = candidate.keypair.dh(candidate.remote)
        except CryptoError:
            return
        cfg, now = self.ctx.config, self.ctx.now()
        current = self.receive_tagsets[-1]
        new = InboundTagSet(current.next_root_key, kdf.ratchet_tagset_key(shared),
                            tagset_id=candidate.receive_tagset_id, index=self.ctx.index, owner=self, purpose=None,
                            min_window=cfg.es_max_window, max_window=cfg.es_max_window, created=now)
        for old in self.receive_tagsets:
            if old.expires_at is None:
                old.expires_at = now + cfg.previous_tagset_timeout
        self.receive_tagsets.append(new)
        self._next_receive = candidate
        self._send_reverse_key = True
        self._want_reply(now)

    def _handle_message_number(self, tagset: InboundTagSet, previous_n: int) -> None:
        """PN: nothing above it was sent in the previous tag set (ecies.rst "Message Numbers")."""
        sets = self.receive_tagsets
        if len(sets) >= 2 and tagset is sets[-1]:
            sets[-2].trim_above(previous_n)

    # ------------------------------------------------------------------ upkeep

    def expire_tagsets(self, now: float) -> None:
        keep = []
        for tagset in self.receive_tagsets:
            if tagset.expires_at is not None and now > tagset.expires_at and tagset is not self.receive_tagsets[-1]:
                tagset.discard()
            else:
                keep.append(tagset)
        self.receive_tagsets = keep
        for handshake in self._handshakes:
            ts = handshake.nsr_tagset
            if ts is not None and ts.expires_at is not None and now > ts.expires_at:
                ts.discard()
                handshake.nsr_tagset = None
        if self.state is SessionState.ESTABLISHED and self._handshakes and all(
                h.nsr_tagset is None for h in self._handshakes):
            self._handshakes.clear()
