"""Sans-I/O SSU2 relay (ssu2.rst "Relay Process"): introductions to firewalled routers, all three roles.

Charlie (firewalled) asks Bob for a relay tag in session and publishes Bob's hash and the tag as an introducer.
Alice sends Bob a Relay Request for that tag (1); Bob sends Charlie Alice's RouterInfo and a Relay Intro (2);
Charlie answers Bob with a Relay Response (3) holding a token for Alice, and sends Alice a Hole Punch (5) with the
same response; Bob forwards the response to Alice (4); Alice dials Charlie with that token.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.clock import Clock, Rng
from core.data.errors import HandshakeError

from . import header as h
from .blocks import (AddressBlock, DateTimeBlock, OpaqueBlock, RelayIntroBlock, RelayRequestBlock, RelayResponseBlock,
                     RelayTagBlock, RouterInfoBlock, RELAY_TAG_REQUEST)
from .handshake import _padded, open_long, seal_long
from .peertest import (RateLimiter, ToAddress, ToPeer, fresh, intro_key_of, peer_test_ids, signed_by,
                       testable_address)

REQUEST_PROLOGUE = b"RelayRequestData"
RESPONSE_PROLOGUE = b"RelayAgreementOK"

# ssu2.rst "RelayResponse" codes
ACCEPT, BOB_UNSPECIFIED, BOB_LIMIT, BOB_SIGNATURE, BOB_NO_TAG, BOB_NO_ALICE_RI = 0, 1, 3, 4, 5, 6
CHARLIE_UNSPECIFIED, CHARLIE_ADDRESS, CHARLIE_LIMIT, CHARLIE_SIGNATURE, CHARLIE_CONNECTED, CHARLIE_UNKNOWN = \
    64, 65, 66, 67, 68, 70


def relay_tag_request() -> OpaqueBlock:
    """ssu2.rst "Relay Tag Request": an empty block of type 15."""
    return OpaqueBlock(RELAY_TAG_REQUEST)


def is_relay_tag_request(block) -> bool:
    return isinstance(block, OpaqueBlock) and block.block_type == RELAY_TAG_REQUEST


# the Hole Punch takes the peer-test form of ids, from the relay nonce (ssu2.rst "Hole Punch (Type 11)")
hole_punch_ids = peer_test_ids


@dataclass(frozen=True, slots=True)
class RelayLimits:
    max_tags: int = 256             # relay tags handed out as Bob (one per Charlie session)
    max_pending: int = 64           # introductions in flight, as Bob and as Charlie each
    per_peer_interval: float = 1.0  # a new Relay Request from the same Alice, or Intro for the same Alice, at most
    max_recent: int = 1024
    expiry: float = 20.0
    max_skew: float = 120.0


class Introducer:
    """Bob: relay tags for the firewalled routers in session with us, and the introductions through them."""

    def __init__(self, *, router_hash: bytes, sign: Callable[[bytes], bytes], clock: Clock, rng: Rng = os.urandom,
                 limits: RelayLimits = RelayLimits()):
        self.router_hash = router_hash
        self._sign = sign
        self._clock = clock
        self._rng = rng
        self.limits = limits
        self.tags: OrderedDict[int, bytes] = OrderedDict()     # relay tag -> Charlie's hash
        self._tag_of: dict[bytes, int] = {}
        self.pending: OrderedDict[int, tuple[bytes, bytes, float]] = OrderedDict()  # nonce -> (Alice, Charlie, exp)
        self._rate = RateLimiter(clock, limits.per_peer_interval, limits.max_recent)
        self.refused = 0
        self.introduced = 0              # Relay Responses forwarded to Alice

    def on_tag_request(self, charlie_hash: bytes) -> RelayTagBlock:
        """ssu2.rst "Relay Tag": the same tag for the same Charlie; the oldest forgotten beyond the limit."""
        tag = self._tag_of.get(charlie_hash)
        if tag is None:
            tag = int.from_bytes(self._rng(4), "big") or 1
            while tag in self.tags:
                tag = (tag + 1) & 0xFFFFFFFF or 1
            self.tags[tag] = charlie_hash
            self._tag_of[charlie_hash] = tag
            while len(self.tags) > self.limits.max_tags:
                _, old = self.tags.popitem(last=False)
                del self._tag_of[old]
        return RelayTagBlock(tag)

    def forget(self, charlie_hash: bytes) -> None:
        """Charlie's session closed: its tag is void."""
        tag = self._tag_of.pop(charlie_hash, None)
        if tag is not None:
            del self.tags[tag]

    def expire(self) -> None:
        now = self._clock.monotonic()
        for nonce in [n for n, (_, _, exp) in self.pending.items() if exp <= now]:
            del self.pending[nonce]

    def _refuse(self, alice_hash: bytes, block: RelayRequestBlock, code: int) -> list:
        """ssu2.rst "RelayResponse": Bob's refusal, signed by Bob, csz 0."""
        self.refused += 1
        unsigned = RelayResponseBlock(code, block.nonce, int(self._clock.time()) & 0xFFFFFFFF, 2, None, None, b"")
        signature = self._sign(RESPONSE_PROLOGUE + self.router_hash + unsigned.signed_data())
        return [ToPeer(alice_hash, (RelayResponseBlock(code, block.nonce, unsigned.timestamp, 2, None, None,
                                                       signature),))]

    def on_relay_request(self, alice_hash: bytes, alice_ri, block: RelayRequestBlock,
                         connected: Callable[[bytes], bool]) -> list:
        """Relay Request from Alice (1): Alice's RouterInfo and a Relay Intro to Charlie (2), or a refusal (4)."""
        self.expire()
        if block.nonce in self.pending or len(self.pending) >= self.limits.max_pending \
                or not self._rate.allow(alice_hash):
            return self._refuse(alice_hash, block, BOB_LIMIT)
        if alice_ri is None:
            return self._refuse(alice_hash, block, BOB_NO_ALICE_RI)
        charlie_hash = self.tags.get(block.relay_tag)
        if charlie_hash is None or not connected(charlie_hash):
            return self._refuse(alice_hash, block, BOB_NO_TAG)
        if not signed_by(alice_ri, REQUEST_PROLOGUE + self.router_hash + charlie_hash + block.signed_data(),
                         block.signature):
            return self._refuse(alice_hash, block, BOB_SIGNATURE)
        self.pending[block.nonce] = (alice_hash, charlie_hash, self._clock.monotonic() + self.limits.expiry)
        intro = RelayIntroBlock(alice_hash, block.nonce, block.relay_tag, block.timestamp, block.version, block.port,
                                block.host, block.signature)
        return [ToPeer(charlie_hash, (RouterInfoBlock.of(alice_ri.to_bytes(), compress=True), intro))]

    def on_relay_response(self, charlie_hash: bytes, block: RelayResponseBlock) -> list:
        """Relay Response from Charlie (3): forwarded to Alice unmodified (4)."""
        entry = self.pending.get(block.nonce)
        if entry is None or entry[1] != charlie_hash:
            return []
        del self.pending[block.nonce]
        self.introduced += 1
        return [ToPeer(entry[0], (block,))]


class _Intro:
    __slots__ = ("alice", "expires")

    def __init__(self, alice: bytes, expires: float):
        self.alice, self.expires = alice, expires


class Introduced:
    """Charlie: Relay Intros from the Bobs that gave us tags; a token for Alice and a Hole Punch to her."""

    def __init__(self, *, router_hash: bytes, sign: Callable[[bytes], bytes], netid: int, clock: Clock,
                 issue_token: Callable[[tuple], int], rng: Rng = os.urandom, limits: RelayLimits = RelayLimits()):
        self.router_hash = router_hash
        self._sign = sign
        self._netid = netid
        self._clock = clock
        self._issue_token = issue_token
        self._rng = rng
        self.limits = limits
        self.tags: OrderedDict[bytes, tuple[int, float]] = OrderedDict()   # Bob's hash -> (tag, when given)
        self.recent: OrderedDict[int, float] = OrderedDict()                # nonces answered, against duplicates
        self._rate = RateLimiter(clock, limits.per_peer_interval, limits.max_recent)
        self.refused = 0
        self.hole_punches = 0

    def on_relay_tag(self, bob_hash: bytes, block: RelayTagBlock) -> None:
        self.tags.pop(bob_hash, None)
        self.tags[bob_hash] = (block.relay_tag, self._clock.time())
        while len(self.tags) > self.limits.max_tags:
            self.tags.popitem(last=False)

    def forget(self, bob_hash: bytes) -> None:
        self.tags.pop(bob_hash, None)

    def on_relay_intro(self, bob_hash: bytes, block: RelayIntroBlock, alice_ri, our_address: tuple[str, int],
                       alice_connected: bool) -> list:
        """Relay Intro from Bob (2): a Relay Response to Bob (3) and, when accepted, a Hole Punch to Alice (5)."""
        now = self._clock.monotonic()
        while self.recent and next(iter(self.recent.values())) <= now:
            self.recent.popitem(last=False)
        if block.nonce in self.recent:
            return []                                     # ssu2.rst "Retransmissions": duplicates by nonce
        entry = self.tags.get(bob_hash)
        code = ACCEPT
        if len(self.recent) >= self.limits.max_pending or not self._rate.allow(block.alice_hash):
            code = CHARLIE_LIMIT
        elif entry is None or entry[0] != block.relay_tag or not fresh(self._clock, block.timestamp, self.limits.max_skew):
            code = CHARLIE_UNSPECIFIED
        elif alice_ri is None or alice_ri.hash != block.alice_hash:
            code = CHARLIE_UNKNOWN
        elif not signed_by(alice_ri, REQUEST_PROLOGUE + bob_hash + self.router_hash + _request_signed(block),
                           block.signature):
            code = CHARLIE_SIGNATURE
        elif not testable_address(block.host, block.port) or intro_key_of(alice_ri) is None:
            code = CHARLIE_ADDRESS
        elif alice_connected:
            code = CHARLIE_CONNECTED
        self.recent[block.nonce] = now + self.limits.expiry
        timestamp = int(self._clock.time()) & 0xFFFFFFFF
        port, host = (our_address[1], our_address[0]) if code == ACCEPT else (None, None)
        unsigned = RelayResponseBlock(code, block.nonce, timestamp, 2, port, host, b"")
        signature = self._sign(RESPONSE_PROLOGUE + bob_hash + unsigned.signed_data())
        token = self._issue_token((block.host, block.port)) if code == ACCEPT else None
        response = RelayResponseBlock(code, block.nonce, timestamp, 2, port, host, signature, token)
        actions: list = [ToPeer(bob_hash, (response,))]
        if code != ACCEPT:
            self.refused += 1
            return actions
        dest, source = hole_punch_ids(block.nonce)
        header = h.LongHeader(dest, int.from_bytes(self._rng(4), "big"), h.HOLE_PUNCH, self._netid, source,
                              int.from_bytes(self._rng(8), "big") or 1)
        payload = _padded([DateTimeBlock.now(self._clock.time()), AddressBlock(block.port, block.host), response],
                          self._rng, 1200)
        actions.append(ToAddress(seal_long(header, payload, intro_key_of(alice_ri)), (block.host, block.port)))
        self.hole_punches += 1
        return actions


def _request_signed(block) -> bytes:
    return RelayRequestBlock(block.nonce, block.relay_tag, block.timestamp, block.version, block.port, block.host,
                             b"").signed_data()


class AliceRelay:
    """Alice: one introduction to `charlie_hash` through `bob_hash` with Charlie's published relay tag."""

    def __init__(self, *, bob_hash: bytes, charlie_hash: bytes, relay_tag: int, host: str, port: int,
                 sign: Callable[[bytes], bytes], netid: int, clock: Clock, rng: Rng = os.urandom):
        self.nonce = int.from_bytes(rng(4), "big") or 1
        self.bob_hash = bob_hash
        self.charlie_hash = charlie_hash
        self._netid = netid
        unsigned = RelayRequestBlock(self.nonce, relay_tag, int(clock.time()) & 0xFFFFFFFF, 2, port, host, b"")
        signature = sign(REQUEST_PROLOGUE + bob_hash + charlie_hash + unsigned.signed_data())
        self.request = RelayRequestBlock(self.nonce, relay_tag, unsigned.timestamp, 2, port, host, signature)
        self.response: RelayResponseBlock | None = None
        self.punched_from: tuple | None = None

    def on_response(self, block: RelayResponseBlock, charlie_ri=None) -> None:
        """Relay Response from Bob (4). An accepted one must carry Charlie's signature over Bob's hash."""
        if block.nonce != self.nonce:
            raise HandshakeError("not a response to this Relay Request", structure="RelayResponse")
        if block.code == ACCEPT and charlie_ri is not None and not signed_by(
                charlie_ri, RESPONSE_PROLOGUE + self.bob_hash + block.signed_data(), block.signature):
            raise HandshakeError("Relay Response not signed by Charlie", structure="RelayResponse")
        if self.response is None or self.response.code != ACCEPT:
            self.response = block

    def on_hole_punch(self, packet: bytes, intro_key: bytes, address: tuple, charlie_ri=None) -> None:
        """Hole Punch from Charlie (5), under our intro key: the same response, and where Charlie really is."""
        header, blocks = open_long(packet, intro_key)
        if header.type != h.HOLE_PUNCH or header.netid != self._netid or header.version != h.VERSION \
                or header.dest_id != hole_punch_ids(self.nonce)[0]:
            raise HandshakeError("not a Hole Punch for this introduction", structure="HolePunch")
        block = next((b for b in blocks if isinstance(b, RelayResponseBlock)), None)
        if block is None or block.code != ACCEPT:
            raise HandshakeError("Hole Punch without an accepted Relay Response", structure="HolePunch")
        self.on_response(block, charlie_ri)
        self.punched_from = address

    @property
    def accepted(self) -> bool:
        return self.response is not None and self.response.code == ACCEPT

    def charlie_address(self) -> tuple[str, int] | None:
        """Where to send the Session Request: the Hole Punch's source port wins (ssu2.rst "Response Handling")."""
        if not self.accepted:
            return None
        if self.punched_from is not None:
            return self.punched_from
        return self.response.host, self.response.port
