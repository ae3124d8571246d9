"""Sans-I/O SSU2 handshake: Token Request/Retry and Noise XK Session Request/Created/Confirmed
(ssu2.rst "KDF for Session Request" through "KDF for data phase").

Everything here works on whole datagrams: `Initiator` (Alice) builds her packets and consumes Bob's;
`Responder` (Bob, one per router) answers Token and Session Requests and finishes inbound handshakes.
Bad input raises a ProtocolError subclass; the driver drops the datagram without answering.
"""
from __future__ import annotations

import os
from collections import Counter, OrderedDict
from dataclasses import dataclass

from core.clock import Clock, Rng
from core.crypto.chacha import ChaChaPoly, ChaChaStream, TAG_LEN, noise_nonce
from core.crypto.hashes import hkdf
from core.crypto.noise import SymmetricState
from core.crypto.x25519 import X25519Keypair
from core.data.errors import CryptoError, HandshakeError, ParseError, ProtocolError
from core.data.routerinfo import RouterInfo
from core.garlic.limits import KeyedBuckets
from core.transport.ntcp2.handshake import (CLOCK_SKEW_LIMIT, ClockSkewError, ReplayCache, RouterInfoRejected,
                                            check_peer_router_info)

from . import header as h
from .blocks import (RELAY_TAG_REQUEST, AddressBlock, Block, DateTimeBlock, NewTokenBlock, OpaqueBlock, PaddingBlock,
                     RouterInfoBlock, TerminationBlock, TerminationReason, encode_blocks, parse_blocks)

PROTOCOL_NAME = b"Noise_XKchaobfse+hs1+hs2+hs3_25519_ChaChaPoly_SHA256"
DEFAULT_MTU = 1500
MIN_MTU = 1280
IPV4_OVERHEAD = 28                  # IP + UDP headers
IPV6_OVERHEAD = 48
MAX_RETRY_PADDING = 64              # ssu2.rst "Retry" notes: keep Retry small against amplification
AMPLIFICATION_FACTOR = 3            # ssu2.rst "Retry": at most 3x what an unvalidated address sent us
TOKEN_LIFETIME = 60.0               # a token sent in Retry is for the Session Request that follows at once
NEW_TOKEN_LIFETIME = 3600           # seconds; a token given in the data phase for the next connection
_MAX_FRAGMENTS = 15


def _initial_state(responder_static: bytes) -> SymmetricState:
    """ssu2.rst "KDF for Initial ChainKey": h = SHA256(name), MixHash(null prologue), MixHash(bpk)."""
    state = SymmetricState(PROTOCOL_NAME)
    state.mix_hash(b"")
    state.mix_hash(responder_static)
    return state


def _random_id(rng: Rng) -> int:
    return int.from_bytes(rng(8), "big") or 1


def _random_below(rng: Rng, bound: int) -> int:
    return int.from_bytes(rng(4), "big") % bound if bound > 1 else 0


def _now(clock: Clock) -> int:
    return int(clock.time() + 0.5) & 0xFFFFFFFF


def max_payload(mtu: int, ipv6: bool) -> int:
    """Bytes after the 16-byte short header, MAC included (ssu2.rst "Payload Format": MTU - 44 or - 64)."""
    return mtu - (IPV6_OVERHEAD if ipv6 else IPV4_OVERHEAD) - h.SHORT_HEADER_SIZE


@dataclass(frozen=True, slots=True)
class DataKeys:
    """One side's data-phase keys (ssu2.rst "KDF for data phase")."""

    send_key: bytes
    send_header_key: bytes          # k_header_2 for what we send
    receive_key: bytes
    receive_header_key: bytes


def derive_data_keys(state: SymmetricState, initiator: bool) -> DataKeys:
    k_ab, k_ba = state.split()
    ab = hkdf(k_ab, b"", b"HKDFSSU2DataKeys", 64)
    ba = hkdf(k_ba, b"", b"HKDFSSU2DataKeys", 64)
    send, receive = (ab, ba) if initiator else (ba, ab)
    return DataKeys(send[:32], send[32:], receive[:32], receive[32:])


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    initiator: bool
    keys: DataKeys
    send_id: int                    # destination id of the packets we send
    receive_id: int                 # destination id of the packets we receive
    peer_static_key: bytes
    peer_intro_key: bytes
    peer_router_hash: bytes
    peer_router_info: bytes | None  # Alice's RI bytes, on Bob's side
    router_info: RouterInfo | None
    clock_skew: float
    our_address: AddressBlock | None   # how the peer sees us (Address block), if it said
    blocks: tuple[Block, ...] = ()     # other blocks of the last handshake message (NewToken, I2NP...)


def _skew(timestamp: int, clock: Clock, structure: str) -> float:
    skew = timestamp - clock.time()
    if abs(skew) > CLOCK_SKEW_LIMIT:
        raise ClockSkewError(f"clock skew {skew:+.0f} s exceeds {CLOCK_SKEW_LIMIT} s", skew, structure=structure)
    return skew


def _find(blocks, cls):
    return next((b for b in blocks if isinstance(b, cls)), None)


def _padded(blocks: list, rng: Rng, room: int, max_padding: int = 16, min_total: int = 8) -> bytes:
    """Blocks plus a random Padding block that keeps the payload >= min_total (header protection needs 24
    bytes of payload and MAC) and within room."""
    payload = encode_blocks(blocks)
    need = max(0, min_total - len(payload) - 3)
    limit = min(max_padding, room - len(payload) - 3)
    if limit < need:
        if need:
            raise ValueError("no room for the padding a packet needs")
        return payload
    size = need + _random_below(rng, limit - need + 1)
    return payload + PaddingBlock(rng(size)).to_bytes()


def seal_long(header: h.LongHeader, payload: bytes, key: bytes) -> bytes:
    """Token Request, Retry, Peer Test 5-7, Hole Punch: ChaChaPoly(key, n = packet number, ad = header)."""
    plain = header.to_bytes()
    ciphertext = ChaChaPoly(key).encrypt(noise_nonce(header.packet_number), payload, plain)
    return h.protect(plain + ciphertext, key, key, 16)


def open_long(packet: bytes, key: bytes) -> tuple[h.LongHeader, list[Block]]:
    """The header and blocks of a long-header packet protected and sealed with `key` alone."""
    plain = h.unprotect_short(packet, key, key) + h.unprotect_rest(packet, key, 16)
    header = h.LongHeader.parse(plain)
    payload = ChaChaPoly(key).decrypt(noise_nonce(header.packet_number), packet[32:], plain)
    return header, parse_blocks(payload)


def peek_long(packet: bytes, key: h.HeaderKey) -> h.LongHeader:
    """The long header of a packet whose header keys are both `key` (Session/Token Request, Retry)."""
    if len(packet) < h.MIN_PACKET_SIZE:
        raise ParseError(f"{len(packet)}-byte datagram", structure="SSU2 packet")
    return h.LongHeader.parse(h.unprotect_short(packet, key, key) + h.unprotect_rest(packet, key, 16))


def _open_noise_long(packet: bytes, k1: bytes, k2: bytes, state: SymmetricState, dh, structure: str):
    """Session Request or Created: unprotect the long header and ephemeral key, MixHash both, MixKey(DH),
    decrypt the payload. Returns the header, the ephemeral key, the blocks and their DateTime."""
    if len(packet) < 64 + TAG_LEN + 8:
        raise ParseError(f"{structure} too short", structure=structure)
    plain = h.unprotect_short(packet, k1, k2) + h.unprotect_rest(packet, k2, 48)
    key = plain[32:64]
    if key[31] & 0x80:
        raise CryptoError("ephemeral key has the high bit set", structure=structure)
    state.mix_hash(plain[:32])
    state.mix_hash(key)
    state.mix_key(dh(key))
    blocks = parse_blocks(state.decrypt_and_hash(packet[64:]), structure)
    datetime = _find(blocks, DateTimeBlock)
    if datetime is None:
        raise HandshakeError("no DateTime block", structure=structure)
    return h.LongHeader.parse(plain), key, blocks, datetime


class Initiator:
    """Alice. `first_packet()`, then `receive(packet)` on Bob's answers; `result` once Session Confirmed is sent.

    `last_sent` is what to resend unchanged when nothing comes back (ssu2.rst "Handshake Retransmission").
    """

    def __init__(self, *, static_key: X25519Keypair, router_info: bytes, intro_key: bytes,
                 peer_router_hash: bytes, peer_static_key: bytes, peer_intro_key: bytes, netid: int,
                 clock: Clock, rng: Rng = os.urandom, token: int = 0, mtu: int = DEFAULT_MTU, ipv6: bool = False,
                 compress_router_info: bool | None = None, relay_tag_request: bool = False):
        if len(peer_static_key) != 32 or len(peer_intro_key) != 32:
            raise HandshakeError("peer's SSU2 s and i must be 32 bytes", structure="RouterAddress")
        self._static_key = static_key
        self._router_info = router_info
        self._intro_key = intro_key
        self.peer_router_hash = peer_router_hash
        self._peer_static = peer_static_key
        self.peer_intro_key = peer_intro_key
        self._netid = netid
        self._clock = clock
        self._rng = rng
        self._mtu = mtu
        self._ipv6 = ipv6
        self._compress = compress_router_info
        self._relay_tag_request = relay_tag_request
        self.token = token
        self.dest_id = _random_id(rng)          # Bob's id for this session
        self.source_id = _random_id(rng)        # ours: Bob's packets carry it
        while self.source_id == self.dest_id:
            self.source_id = _random_id(rng)
        self.state = "new"
        self.last_sent: list[bytes] = []
        self.result: HandshakeResult | None = None
        self.rejection: TerminationBlock | None = None
        self._ephemeral: X25519Keypair | None = None

    def first_packet(self) -> bytes:
        """ssu2.rst "Session Establishment": Token Request unless we hold a token from Bob."""
        if self.token:
            return self._session_request()
        header = h.LongHeader(self.dest_id, int.from_bytes(self._rng(4), "big"), h.TOKEN_REQUEST, self._netid,
                              self.source_id, 0)
        payload = _padded([DateTimeBlock.now(self._clock.time())], self._rng, 64)
        self.state = "token"
        self.last_sent = [seal_long(header, payload, self.peer_intro_key)]
        return self.last_sent[0]

    def _session_request(self) -> bytes:
        self._ephemeral = X25519Keypair(self._rng(32))
        header = h.LongHeader(self.dest_id, int.from_bytes(self._rng(4), "big"), h.SESSION_REQUEST, self._netid,
                              self.source_id, self.token).to_bytes()
        state = _initial_state(self._peer_static)
        state.mix_hash(header)
        x = self._ephemeral.public_bytes
        state.mix_hash(x)
        state.mix_key(self._ephemeral.dh(self._peer_static))
        blocks: list = [DateTimeBlock.now(self._clock.time())]
        if self._relay_tag_request:      # ssu2.rst "Relay Tag Request": Bob may answer in Session Created
            blocks.append(OpaqueBlock(RELAY_TAG_REQUEST))
        payload = _padded(blocks, self._rng, 1024, max_padding=32)
        ciphertext = state.encrypt_and_hash(payload)
        self._created_header_key = hkdf(state.ck, b"", b"SessCreateHeader", 32)
        self._state = state
        self.state = "request"
        packet = h.protect(header + x + ciphertext, self.peer_intro_key, self.peer_intro_key, 48)
        self.last_sent = [packet]
        return packet

    def receive(self, packet: bytes) -> list[bytes]:
        """Consume a Retry or Session Created from Bob; returns the packets to send in answer."""
        if len(packet) < h.MIN_PACKET_SIZE:
            raise ParseError(f"{len(packet)}-byte datagram", structure="SSU2 packet")
        k1 = self.peer_intro_key
        if h.unprotect_dest_id(packet, k1) != self.source_id:
            raise HandshakeError("not for this handshake", structure="SSU2 packet")
        plain8 = h.unprotect_short(packet, k1, k1)[8:16]
        if plain8[4] == h.RETRY and self.state in ("token", "request"):
            try:
                return self._on_retry(packet)
            except CryptoError:
                # Session Created's type byte is under another key: 1 in 256 of them look like a Retry
                if self.state != "request":
                    raise
        if self.state == "request":
            return self._on_session_created(packet)
        raise HandshakeError(f"unexpected packet in state {self.state}", structure="SSU2 packet")

    def _on_retry(self, packet: bytes) -> list[bytes]:
        header, blocks = open_long(packet, self.peer_intro_key)
        self._check_long(header, h.RETRY)
        termination = _find(blocks, TerminationBlock)
        if termination is not None or not header.token:
            self.rejection = termination or TerminationBlock(0, TerminationReason.BAD_TOKEN)
            self.state = "rejected"
            raise HandshakeError(f"Bob refused (reason {self.rejection.reason})", structure="Retry")
        datetime = _find(blocks, DateTimeBlock)
        if datetime is not None:
            _skew(datetime.timestamp, self._clock, "Retry")
        if self.state == "request" and self.token == header.token:
            raise HandshakeError("Retry repeats the token we used", structure="Retry")
        self.token = header.token
        return [self._session_request()]

    def _check_long(self, header: h.LongHeader, expected: int) -> None:
        if header.type != expected or header.version != h.VERSION or header.netid != self._netid:
            raise HandshakeError(f"type {header.type} version {header.version} net {header.netid}",
                                 structure="SSU2 long header")
        if header.source_id != self.dest_id:
            raise HandshakeError("source connection id mismatch", structure="SSU2 long header")

    def _on_session_created(self, packet: bytes) -> list[bytes]:
        state = self._state.copy()
        header, y, blocks, datetime = _open_noise_long(packet, self.peer_intro_key, self._created_header_key, state,
                                                       self._ephemeral.dh, "Session Created")
        self._check_long(header, h.SESSION_CREATED)
        skew = _skew(datetime.timestamp, self._clock, "Session Created")
        termination = _find(blocks, TerminationBlock)
        if termination is not None:
            self.rejection = termination
            self.state = "rejected"
            raise HandshakeError(f"Bob refused (reason {termination.reason})", structure="Session Created")
        self._state = state
        self._y = y
        confirmed_header_key = hkdf(state.ck, b"", b"SessionConfirmed", 32)
        packets = self._session_confirmed(confirmed_header_key)
        self.state = "confirmed"
        self.last_sent = packets
        self.result = HandshakeResult(
            initiator=True, keys=derive_data_keys(state, True), send_id=self.dest_id, receive_id=self.source_id,
            peer_static_key=self._peer_static, peer_intro_key=self.peer_intro_key,
            peer_router_hash=self.peer_router_hash, peer_router_info=None, router_info=None, clock_skew=skew,
            our_address=_find(blocks, AddressBlock), blocks=tuple(blocks))
        self._ephemeral = None
        return packets

    def _session_confirmed(self, header_key: bytes) -> list[bytes]:
        """ssu2.rst "Session Confirmed Fragmentation": one jumbo Noise message cut to the MTU."""
        room = max_payload(self._mtu, self._ipv6)
        compress = self._compress
        if compress is None:   # ssu2.rst "RouterInfo" notes: gzip when that avoids fragmenting
            compress = len(self._router_info) + 5 + 64 > room
        ri_block = RouterInfoBlock.of(self._router_info, compress=compress)
        payload = encode_blocks([ri_block])
        total = len(payload) + 3 + 64             # with a Padding block header, the static key and two MACs
        count = -(-total // room)
        if count > _MAX_FRAGMENTS:
            raise ValueError("RouterInfo too large for Session Confirmed")
        pad_min = max(0, 24 - (total - (count - 1) * room))    # the last fragment needs 24 bytes for header masks
        pad_max = max(pad_min, min(pad_min + 16, count * room - total))
        payload += PaddingBlock(self._rng(pad_min + _random_below(self._rng, pad_max - pad_min + 1))).to_bytes()
        count = -(-(len(payload) + 64) // room)
        plain_header = h.ShortHeader(self.dest_id, 0, h.SESSION_CONFIRMED, bytes((count,)) + b"\x00\x00").to_bytes()
        state = self._state
        state.mix_hash(plain_header)
        body = state.encrypt_and_hash(self._static_key.public_bytes)
        state.mix_key(self._static_key.dh(self._y))   # "se"
        body += state.encrypt_and_hash(payload)
        packets = []
        for i in range(count):
            part = body[i * room:(i + 1) * room]
            frag_header = plain_header if i == 0 else h.ShortHeader(
                self.dest_id, 0, h.SESSION_CONFIRMED, bytes(((i << 4) | count,)) + b"\x00\x00").to_bytes()
            packets.append(h.protect(frag_header + part, self.peer_intro_key, header_key))
        return packets



class _InboundHandshake:
    __slots__ = ("address", "receive_id", "send_id", "state", "ephemeral", "remote_ephemeral", "confirmed_key",
                 "created_packet", "fragments", "total", "skew", "started", "token", "requested", "received", "sent")

    def __init__(self, address, receive_id: int, send_id: int, started: float, token: int):
        self.address = address
        self.receive_id = receive_id
        self.send_id = send_id
        self.started = started
        self.token = token
        self.state: SymmetricState | None = None
        self.ephemeral: X25519Keypair | None = None
        self.remote_ephemeral = b""
        self.confirmed_key = b""
        self.created_packet = b""
        self.fragments: dict[int, bytes] = {}
        self.total = 0
        self.skew = 0.0
        self.requested: tuple = ()      # Session Request blocks the data phase answers (Relay Tag Request)
        self.received = 0               # bytes from the address (not validated until Session Confirmed)
        self.sent = 0

    def may_send(self, size: int) -> bool:
        """ssu2.rst "Retry": the address is not validated, so send it at most 3x the bytes it sent us."""
        if self.sent + size > AMPLIFICATION_FACTOR * self.received:
            return False
        self.sent += size
        return True


class Responder:
    """Bob's side for every inbound handshake of one router: tokens, replay cache, pending sessions.

    `receive(packet, address)` returns (packets to send back, HandshakeResult or None). Packets that are
    not valid requests raise ProtocolError and get no answer (ssu2.rst probing resistance).
    """

    def __init__(self, *, static_key: X25519Keypair, intro_key: bytes, netid: int, clock: Clock,
                 rng: Rng = os.urandom, replay_cache: ReplayCache | None = None, max_pending: int = 256,
                 max_pending_per_ip: int = 8, max_tokens: int = 4096, handshake_timeout: float = 20.0,
                 router_info_max_age: float = 90 * 60, handshake_rate: float = 10.0, handshake_burst: float = 40.0,
                 max_tracked_ips: int = 4096):
        self._static_key = static_key
        self.intro_key = intro_key
        self._intro_mask = ChaChaStream(intro_key)   # unmasks every packet that reaches the responder
        self._netid = netid
        self._clock = clock
        self._rng = rng
        self._replay = replay_cache or ReplayCache(clock)
        self._pending: OrderedDict[int, _InboundHandshake] = OrderedDict()
        self._tokens: OrderedDict[tuple, tuple[int, float]] = OrderedDict()   # address -> (token, expiry)
        self._max_pending = max_pending
        self._max_pending_per_ip = max_pending_per_ip
        self._max_tokens = max_tokens
        self._timeout = handshake_timeout
        self._ri_max_age = router_info_max_age
        self._base = _initial_state(static_key.public_bytes)
        self.dropped = 0
        # Token Requests and Session Requests per IP, checked before any decryption or DH
        self._requests = KeyedBuckets(handshake_rate, handshake_burst, max_tracked_ips)
        self.limited: Counter[str] = Counter()     # "handshake_rate", "amplification"

    def __contains__(self, receive_id: int) -> bool:
        return receive_id in self._pending

    def pending_addresses(self) -> set:
        """The addresses with an inbound handshake under way."""
        return {p.address for p in self._pending.values()}

    def issue_token(self, address, lifetime: float = TOKEN_LIFETIME) -> int:
        """A fresh token for `address` (kept, bounded, oldest dropped first)."""
        token = _random_id(self._rng)
        self._tokens.pop(address, None)
        self._tokens[address] = (token, self._clock.monotonic() + lifetime)
        while len(self._tokens) > self._max_tokens:
            self._tokens.popitem(last=False)
        return token

    def _token_ok(self, address, token: int) -> bool:
        entry = self._tokens.get(address)
        if entry is None or not token or entry[0] != token or entry[1] < self._clock.monotonic():
            return False
        del self._tokens[address]        # ssu2.rst "Tokens": used once
        return True

    def expire(self) -> None:
        now = self._clock.monotonic()
        for rid, pending in list(self._pending.items()):
            if now - pending.started > self._timeout:
                del self._pending[rid]

    def retransmit(self) -> list[tuple[bytes, object]]:
        """Session Created again for handshakes still waiting for Session Confirmed, within the 3x budget."""
        out = []
        for p in self._pending.values():
            if p.created_packet:
                if p.may_send(len(p.created_packet)):
                    out.append((p.created_packet, p.address))
                else:
                    self.limited["amplification"] += 1
        return out

    def receive(self, packet: bytes, address) -> tuple[list[bytes], HandshakeResult | None]:
        if len(packet) < h.MIN_PACKET_SIZE:
            raise ParseError(f"{len(packet)}-byte datagram", structure="SSU2 packet")
        k = self._intro_mask
        dest_id = h.unprotect_dest_id(packet, k)
        pending = self._pending.get(dest_id)
        if pending is not None and pending.created_packet:
            again = h.unprotect_short(packet, k, k)
            if again[12] == h.SESSION_REQUEST and again[13] == h.VERSION and again[14] == self._netid:
                if pending.address != address:
                    raise HandshakeError("connection id in use", structure="Session Request")
                pending.received += len(packet)
                if not pending.may_send(len(pending.created_packet)):
                    self.limited["amplification"] += 1
                    return [], None
                return [pending.created_packet], None    # Alice missed Session Created: the same packet again
            return self._on_session_confirmed(packet, pending, address)
        header = peek_long(packet, k)
        if header.version != h.VERSION or header.netid != self._netid:
            raise HandshakeError("wrong version or network", structure="SSU2 long header")
        if header.source_id == header.dest_id:
            raise HandshakeError("source and destination ids are equal", structure="SSU2 long header")
        if header.type in (h.TOKEN_REQUEST, h.SESSION_REQUEST) \
                and not self._requests.take(address[0], self._clock.monotonic()):
            self.dropped += 1
            self.limited["handshake_rate"] += 1
            raise HandshakeError("too many handshake requests from this address", structure="SSU2 long header")
        if header.type == h.TOKEN_REQUEST:
            return self._on_token_request(packet, address), None
        if header.type == h.SESSION_REQUEST:
            return self._on_session_request(packet, header, address), None
        raise HandshakeError(f"message type {header.type} is not a request", structure="SSU2 long header")

    def _retry(self, header: h.LongHeader, address, token: int, received: int,
               termination: int | None = None) -> bytes:
        blocks: list = [DateTimeBlock.now(self._clock.time()), AddressBlock(address[1], address[0])]
        if termination is not None:
            blocks.append(TerminationBlock(0, termination))
        # 32-byte header and 16-byte MAC around the payload; the whole Retry within 3x the packet received
        room = min(MAX_RETRY_PADDING + 40, AMPLIFICATION_FACTOR * received - 48)
        payload = _padded(blocks, self._rng, room, max_padding=MAX_RETRY_PADDING)
        retry = h.LongHeader(header.source_id, int.from_bytes(self._rng(4), "big"), h.RETRY, self._netid,
                             header.dest_id, token)
        return seal_long(retry, payload, self.intro_key)

    def _on_token_request(self, packet: bytes, address) -> list[bytes]:
        header, blocks = open_long(packet, self.intro_key)
        datetime = _find(blocks, DateTimeBlock)
        if datetime is None:
            raise HandshakeError("no DateTime block", structure="Token Request")
        try:
            _skew(datetime.timestamp, self._clock, "Token Request")
        except ClockSkewError:
            return [self._retry(header, address, 0, len(packet), TerminationReason.CLOCK_SKEW)]
        return [self._retry(header, address, self.issue_token(address), len(packet))]

    def _on_session_request(self, packet: bytes, header: h.LongHeader, address) -> list[bytes]:
        if not self._token_ok(address, header.token):
            # ssu2.rst "Tokens": no DH for a request without a valid token, just a Retry with one
            return [self._retry(header, address, self.issue_token(address), len(packet))]
        if len(self._pending) >= self._max_pending:
            self.expire()
        same_ip = sum(1 for p in self._pending.values() if p.address[0] == address[0])
        if len(self._pending) >= self._max_pending or same_ip >= self._max_pending_per_ip:
            self.dropped += 1        # before any DH: a flood from one host costs it only its own requests
            raise HandshakeError("too many handshakes in progress", structure="Session Request")
        state = self._base.copy()
        _, x, blocks, datetime = _open_noise_long(packet, self.intro_key, self.intro_key, state, self._static_key.dh,
                                                  "Session Request")
        try:
            skew = _skew(datetime.timestamp, self._clock, "Session Request")
        except ClockSkewError:
            return [self._retry(header, address, 0, len(packet), TerminationReason.CLOCK_SKEW)]
        if self._replay.check_and_add(x):
            raise HandshakeError("replayed ephemeral key", structure="Session Request")
        created_header_key = hkdf(state.ck, b"", b"SessCreateHeader", 32)
        pending = _InboundHandshake(address, header.dest_id, header.source_id, self._clock.monotonic(), 0)
        pending.skew = skew
        pending.requested = tuple(b for b in blocks if isinstance(b, OpaqueBlock) and b.block_type == RELAY_TAG_REQUEST)
        pending.remote_ephemeral = x
        pending.ephemeral = X25519Keypair(self._rng(32))
        y = pending.ephemeral.public_bytes
        created = h.LongHeader(header.source_id, 0, h.SESSION_CREATED, self._netid, header.dest_id, 0).to_bytes()
        state.mix_hash(created)
        state.mix_hash(y)
        state.mix_key(pending.ephemeral.dh(x))
        # 64-byte header, 32-byte Y and 16-byte MAC around the payload, within 3x the Session Request
        payload = _padded([DateTimeBlock.now(self._clock.time()), AddressBlock(address[1], address[0])],
                          self._rng, min(1024, AMPLIFICATION_FACTOR * len(packet) - 112), max_padding=32)
        ciphertext = state.encrypt_and_hash(payload)
        pending.confirmed_key = hkdf(state.ck, b"", b"SessionConfirmed", 32)
        pending.state = state
        pending.created_packet = h.protect(created + y + ciphertext, self.intro_key, created_header_key, 48)
        pending.received = len(packet)
        pending.sent = len(pending.created_packet)
        self._pending[header.dest_id] = pending
        return [pending.created_packet]

    def _on_session_confirmed(self, packet: bytes, pending: _InboundHandshake,
                              address) -> tuple[list[bytes], HandshakeResult | None]:
        plain = h.unprotect_short(packet, self._intro_mask, pending.confirmed_key)
        header = h.ShortHeader.parse(plain)
        if header.type != h.SESSION_CONFIRMED:
            raise HandshakeError(f"type {header.type} while waiting for Session Confirmed", structure="SSU2")
        number, total = header.fragment
        if not 1 <= total <= _MAX_FRAGMENTS or number >= total:
            raise ParseError(f"fragment {number} of {total}", structure="Session Confirmed")
        if total != pending.total:
            pending.fragments.clear()
            pending.total = total
        pending.fragments[number] = (plain if number == 0 else b"") + packet[16:]
        if len(pending.fragments) < total:
            return [], None
        jumbo = b"".join(pending.fragments[i] for i in range(total))
        del self._pending[pending.receive_id]
        state = pending.state
        first_header, body = jumbo[:16], jumbo[16:]
        state.mix_hash(first_header)
        if len(body) < 48 + TAG_LEN:
            raise ParseError("Session Confirmed too short", structure="Session Confirmed")
        alice_static = state.decrypt_and_hash(body[:48])
        state.mix_key(pending.ephemeral.dh(alice_static))
        blocks = parse_blocks(state.decrypt_and_hash(body[48:]), "Session Confirmed")
        if not blocks or not isinstance(blocks[0], RouterInfoBlock):
            raise ParseError("first block is not RouterInfo", structure="Session Confirmed")
        ri_bytes = blocks[0].router_info
        try:
            router_info = RouterInfo.parse(ri_bytes)
        except ProtocolError as exc:
            raise RouterInfoRejected(f"unparsable: {exc}", TerminationReason.SESSION_CONFIRMED_ERROR) from None
        check_peer_router_info(router_info, alice_static, netid=self._netid, now=self._clock.time(),
                               max_age=self._ri_max_age, transport_styles=("SSU2", "SSU"))
        intro_key = _intro_key(router_info, alice_static)
        if intro_key is None:
            raise RouterInfoRejected("no SSU2 intro key", TerminationReason.STATIC_KEY_MISMATCH)
        result = HandshakeResult(
            initiator=False, keys=derive_data_keys(state, False), send_id=pending.send_id,
            receive_id=pending.receive_id, peer_static_key=alice_static, peer_intro_key=intro_key,
            peer_router_hash=router_info.hash, peer_router_info=ri_bytes, router_info=router_info,
            clock_skew=pending.skew, our_address=None, blocks=pending.requested + tuple(blocks[1:]))
        return [], result


def _intro_key(router_info: RouterInfo, static_key: bytes) -> bytes | None:
    for address in router_info.addresses:
        if address.transport_style not in ("SSU2", "SSU"):
            continue
        try:
            if address.s == static_key and address.i is not None and len(address.i) == 32:
                return address.i
        except ParseError:
            continue
    return None


def new_token_block(token: int, clock: Clock, lifetime: int = NEW_TOKEN_LIFETIME) -> NewTokenBlock:
    return NewTokenBlock(int(clock.time()) + lifetime, token)


__all__ = ["DataKeys", "HandshakeResult", "Initiator", "Responder", "ReplayCache",
           "derive_data_keys", "max_payload", "new_token_block", "peek_long", "seal_long", "open_long"]
