"""Sans-I/O SSU2 peer test, all three roles (ssu2.rst "Peer Test Process", "Results State Machine").

Alice asks Bob (in session, message 1); Bob picks Charlie and answers (message 4, with Charlie's hash);
Charlie writes to Alice's published address out of session (message 5); Alice writes to Charlie
(message 6) and Charlie answers from where it saw her (message 7).
"""
from __future__ import annotations

import enum
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.clock import Clock, Rng
from core.data.errors import HandshakeError, ProtocolError

from . import header as h
from .blocks import AddressBlock, DateTimeBlock, PeerTestBlock, RouterInfoBlock
from .handshake import _padded, open_long, seal_long

PROLOGUE = b"PeerTestValidate"


class Reachability(enum.StrEnum):
    UNKNOWN = "unknown"
    OK = "OK"
    FIREWALLED = "firewalled"
    SYMMETRIC_NAT = "symmetric NAT"


def peer_test_ids(nonce: int) -> tuple[int, int]:
    """ssu2.rst "Peer Test (Type 7)": messages 5 and 7 go to (nonce << 32 | nonce), from its inverse."""
    dest = (nonce << 32) | nonce
    return dest, ~dest & 0xFFFFFFFFFFFFFFFF


def nonce_of(dest_id: int) -> int | None:
    """The test nonce when a destination id has the peer-test form, else None."""
    return dest_id & 0xFFFFFFFF if dest_id >> 32 == dest_id & 0xFFFFFFFF else None


class AliceTest:
    """One peer test from Alice's side. Feed message 4 (in session) and messages 5 and 7 (out of session);
    `message6()` once Charlie's intro key and address are known; `result` at any time."""

    def __init__(self, *, bob_hash: bytes, host: str, port: int, sign: Callable[[bytes], bytes], netid: int,
                 clock: Clock, rng: Rng = os.urandom):
        self.nonce = int.from_bytes(rng(4), "big") or 1
        self.bob_hash = bob_hash
        self._netid = netid
        self._clock = clock
        self._rng = rng
        unsigned = PeerTestBlock(1, 0, None, 2, self.nonce, int(clock.time()) & 0xFFFFFFFF, port, host)
        signature = sign(PROLOGUE + bob_hash + unsigned.signed_data())
        self.request = PeerTestBlock(1, 0, None, 2, self.nonce, unsigned.timestamp, port, host, signature)
        self.code: int | None = None            # from message 4
        self.charlie_hash: bytes | None = None
        self.got5 = self.got7 = False
        self.seen_as: AddressBlock | None = None   # our address as Charlie saw it (message 7)

    def on_message4(self, block: PeerTestBlock) -> None:
        if block.msg != 4 or block.nonce != self.nonce:
            raise HandshakeError("not message 4 of this test", structure="PeerTest")
        self.code = block.code
        if block.code == 0:
            self.charlie_hash = block.router_hash

    def on_packet(self, packet: bytes, intro_key: bytes) -> None:
        """Message 5 or 7: a Peer Test packet under our intro key."""
        header, blocks = open_long(packet, intro_key)
        if header.type != h.PEER_TEST or header.netid != self._netid or header.version != h.VERSION:
            raise HandshakeError("not a Peer Test packet", structure="PeerTest")
        block = next((b for b in blocks if isinstance(b, PeerTestBlock)), None)
        if block is None or block.nonce != self.nonce or block.msg not in (5, 7):
            raise HandshakeError("no message 5 or 7 of this test", structure="PeerTest")
        if block.msg == 5:
            self.got5 = True
        else:
            self.got7 = True
            self.seen_as = next((b for b in blocks if isinstance(b, AddressBlock)), None)

    def message6(self, charlie_host: str, charlie_port: int, charlie_intro_key: bytes) -> bytes:
        charlie_id, alice_id = peer_test_ids(self.nonce)
        # message 6 goes to Charlie: the ids of messages 5 and 7 swapped
        header = h.LongHeader(alice_id, int.from_bytes(self._rng(4), "big"), h.PEER_TEST, self._netid, charlie_id,
                              int.from_bytes(self._rng(8), "big"))
        r = self.request
        block = PeerTestBlock(6, 0, None, r.version, r.nonce, r.timestamp, r.port, r.host, r.signature)
        payload = _padded([DateTimeBlock.now(self._clock.time()), AddressBlock(charlie_port, charlie_host), block],
                          self._rng, 1200)
        return seal_long(header, payload, charlie_intro_key)

    @property
    def result(self) -> Reachability:
        """ssu2.rst "Results State Machine" on which of messages 4, 5 and 7 arrived."""
        got4 = self.code == 0
        if self.got5:
            return Reachability.OK
        if got4 and self.got7:
            if self.seen_as is not None and self.seen_as.port != self.request.port:
                return Reachability.SYMMETRIC_NAT
            return Reachability.FIREWALLED
        if got4:
            return Reachability.FIREWALLED
        return Reachability.UNKNOWN


# Bob's and Charlie's sides (ssu2.rst "Peer Test Process", "Processing by Bob")

@dataclass(frozen=True, slots=True)
class ToPeer:
    """Blocks for an established session with `peer` (messages 2, 3, 4 and the RouterInfo before them)."""
    peer: bytes
    blocks: tuple


@dataclass(frozen=True, slots=True)
class ToAddress:
    """An out-of-session Peer Test packet (messages 5 and 7)."""
    packet: bytes
    address: tuple


@dataclass(frozen=True, slots=True)
class PeerTestLimits:
    max_bob_tests: int = 64          # tests relayed as Bob and not yet answered by Charlie
    max_charlie_tests: int = 64      # tests held as Charlie, waiting for message 6
    per_peer_interval: float = 10.0  # a new test from the same Alice (as Bob) or Bob (as Charlie) at most this often
    max_recent: int = 1024           # peers remembered for the interval above
    expiry: float = 20.0             # state is dropped after this long
    max_skew: float = 120.0          # message 1 or 2 timestamps further off are refused


# ssu2.rst "PeerTest" codes
ACCEPT, BOB_UNSPECIFIED, BOB_NO_CHARLIE, BOB_LIMIT, BOB_SIGNATURE, BOB_ADDRESS = 0, 1, 2, 3, 4, 5
CHARLIE_UNSPECIFIED, CHARLIE_ADDRESS, CHARLIE_LIMIT, CHARLIE_SIGNATURE, CHARLIE_CONNECTED, CHARLIE_UNKNOWN = \
    64, 65, 66, 67, 68, 70


def testable_address(host: str, port: int) -> bool:
    """ssu2.rst "Processing by Bob": IPv4 only here, no privileged port."""
    return ":" not in host and 1024 <= port <= 65535


class RateLimiter:
    """Bounded per-peer rate: one event per `interval` seconds per peer."""

    def __init__(self, clock: Clock, interval: float, size: int):
        self._clock, self._interval, self._size = clock, interval, size
        self._last: OrderedDict[bytes, float] = OrderedDict()

    def allow(self, peer: bytes) -> bool:
        now = self._clock.monotonic()
        while self._last and next(iter(self._last.values())) <= now - self._interval:
            self._last.popitem(last=False)
        if peer in self._last:
            return False
        self._last[peer] = now
        while len(self._last) > self._size:
            self._last.popitem(last=False)
        return True


def fresh(clock: Clock, timestamp: int, max_skew: float) -> bool:
    """A 4-byte timestamp (it wraps in 2106) within `max_skew` seconds of our clock."""
    diff = (timestamp - int(clock.time())) % (1 << 32)
    return min(diff, (1 << 32) - diff) <= max_skew


def signed_by(ri, data: bytes, signature: bytes) -> bool:
    try:
        return bool(signature) and ri.identity.verify(data, signature)
    except ProtocolError:
        return False


class _Bob:
    __slots__ = ("alice", "charlie", "expires")

    def __init__(self, alice: bytes, charlie: bytes, expires: float):
        self.alice, self.charlie, self.expires = alice, charlie, expires


class _Charlie:
    __slots__ = ("bob", "alice_key", "block", "expires")

    def __init__(self, bob: bytes, alice_key: bytes, block: PeerTestBlock, expires: float):
        self.bob, self.alice_key, self.block, self.expires = bob, alice_key, block, expires


class PeerTestRelay:
    """Bob and Charlie for other routers' peer tests, with bounded state. Each `on_*` returns what to send:
    `ToPeer` for an established session, `ToAddress` for an out-of-session packet."""

    def __init__(self, *, router_hash: bytes, sign: Callable[[bytes], bytes], intro_key: bytes, netid: int, clock: Clock, rng: Rng = os.urandom,
                 limits: PeerTestLimits = PeerTestLimits()):
        self.router_hash = router_hash
        self._sign = sign
        self.intro_key = intro_key
        self._netid = netid
        self._clock = clock
        self._rng = rng
        self.limits = limits
        self.as_bob: dict[int, _Bob] = {}            # by nonce
        self.as_charlie: dict[int, _Charlie] = {}    # by nonce
        self._rate = RateLimiter(clock, limits.per_peer_interval, limits.max_recent)
        self.refused = 0

    def expire(self) -> None:
        now = self._clock.monotonic()
        for table in (self.as_bob, self.as_charlie):
            for nonce in [n for n, s in table.items() if s.expires <= now]:
                del table[nonce]

    def _rate_limited(self, peer: bytes) -> bool:
        return not self._rate.allow(peer)

    def _fresh(self, block: PeerTestBlock) -> bool:
        return fresh(self._clock, block.timestamp, self.limits.max_skew)

    # Bob

    def on_message1(self, alice_hash: bytes, alice_address: tuple, alice_ri, block: PeerTestBlock,
                    charlies: Iterable[tuple[bytes, object]]) -> list:
        """Message 1 from Alice in session: message 2 to a Charlie (after Alice's RouterInfo), or a refusal
        (message 4) to Alice. `charlies` are (hash, RouterInfo) of connected peers with an IPv4 SSU2 address offering "B"."""
        def refuse(code: int) -> list:
            self.refused += 1
            return [ToPeer(alice_hash, (_reply(block, 4, code, bytes(32)),))]
        self.expire()
        if block.version != 2 or not self._fresh(block):
            return refuse(BOB_UNSPECIFIED)
        if block.nonce in self.as_bob or len(self.as_bob) >= self.limits.max_bob_tests \
                or self._rate_limited(alice_hash):
            return refuse(BOB_LIMIT)
        if not testable_address(block.host, block.port) or block.host != alice_address[0]:
            return refuse(BOB_ADDRESS)
        if alice_ri is None or not signed_by(alice_ri, PROLOGUE + self.router_hash + block.signed_data(),
                                             block.signature):
            return refuse(BOB_SIGNATURE)
        for charlie_hash, charlie_ri in charlies:
            if charlie_hash != alice_hash:
                break
        else:
            return refuse(BOB_NO_CHARLIE)
        self.as_bob[block.nonce] = _Bob(alice_hash, charlie_hash, self._clock.monotonic() + self.limits.expiry)
        # ssu2.rst "PeerTest": Alice's RouterInfo before message 2
        return [ToPeer(charlie_hash, (RouterInfoBlock.of(alice_ri.to_bytes(), compress=True),
                                      _reply(block, 2, ACCEPT, alice_hash, block.signature)))]

    def on_message3(self, charlie_hash: bytes, block: PeerTestBlock, charlie_ri) -> list:
        """Message 3 from Charlie in session: message 4 to Alice (after Charlie's RouterInfo when accepted)."""
        test = self.as_bob.get(block.nonce)
        if test is None or test.charlie != charlie_hash:
            return []
        del self.as_bob[block.nonce]
        blocks: tuple = (_reply(block, 4, block.code, charlie_hash if block.code == ACCEPT else bytes(32),
                                block.signature),)
        if block.code == ACCEPT:
            if charlie_ri is None:
                return [ToPeer(test.alice, (_reply(block, 4, BOB_UNSPECIFIED, bytes(32)),))]
            blocks = (RouterInfoBlock.of(charlie_ri.to_bytes(), compress=True),) + blocks
        return [ToPeer(test.alice, blocks)]

    # Charlie

    def on_message2(self, bob_hash: bytes, block: PeerTestBlock, alice_ri, alice_connected: bool) -> list:
        """Message 2 from Bob in session: message 3 to Bob, and message 5 to Alice when we accept."""
        alice_hash = block.router_hash
        def answer(code: int) -> list:
            if code != ACCEPT:
                self.refused += 1
            unsigned = _reply(block, 3, code, None)
            signature = self._sign(PROLOGUE + bob_hash + alice_hash + unsigned.signed_data())
            return [ToPeer(bob_hash, (_reply(block, 3, code, None, signature),))]
        self.expire()
        if block.version != 2 or not self._fresh(block):
            return answer(CHARLIE_UNSPECIFIED)
        if block.nonce in self.as_charlie or len(self.as_charlie) >= self.limits.max_charlie_tests \
                or self._rate_limited(bob_hash):
            return answer(CHARLIE_LIMIT)
        if alice_ri is None or alice_ri.hash != alice_hash:
            return answer(CHARLIE_UNKNOWN)
        if not signed_by(alice_ri, PROLOGUE + bob_hash + block.signed_data(), block.signature):
            return answer(CHARLIE_SIGNATURE)
        alice_key = intro_key_of(alice_ri)
        if alice_key is None or not testable_address(block.host, block.port):
            return answer(CHARLIE_ADDRESS)
        if alice_connected:
            return answer(CHARLIE_CONNECTED)
        self.as_charlie[block.nonce] = _Charlie(bob_hash, alice_key, block,
                                                self._clock.monotonic() + self.limits.expiry)
        return answer(ACCEPT) + [ToAddress(self._to_alice(block, 5, alice_key, None), (block.host, block.port))]

    def on_packet(self, packet: bytes, address: tuple) -> list:
        """Message 6 from Alice out of session (under our intro key): message 7 to where it came from."""
        header, blocks = open_long(packet, self.intro_key)
        if header.type != h.PEER_TEST or header.netid != self._netid or header.version != h.VERSION:
            raise HandshakeError("not a Peer Test packet", structure="PeerTest")
        block = next((b for b in blocks if isinstance(b, PeerTestBlock)), None)
        test = self.as_charlie.get(block.nonce) if block is not None else None
        if test is None or block.msg != 6 or header.dest_id != peer_test_ids(block.nonce)[1]:
            raise HandshakeError("no message 6 of a test we hold", structure="PeerTest")
        # resent unchanged by Alice: answer each, until the test expires
        return [ToAddress(self._to_alice(test.block, 7, test.alice_key, AddressBlock(address[1], address[0])),
                          address)]

    def _to_alice(self, block: PeerTestBlock, msg: int, alice_key: bytes, seen: AddressBlock | None) -> bytes:
        dest, source = peer_test_ids(block.nonce)
        header = h.LongHeader(dest, int.from_bytes(self._rng(4), "big"), h.PEER_TEST, self._netid, source,
                              int.from_bytes(self._rng(8), "big"))
        blocks = [DateTimeBlock.now(self._clock.time())] + ([seen] if seen else []) + [_reply(block, msg, ACCEPT, None)]
        return seal_long(header, _padded(blocks, self._rng, 1200), alice_key)


def _reply(block: PeerTestBlock, msg: int, code: int, router_hash: bytes | None, signature: bytes = b"") -> PeerTestBlock:
    """`block`'s signed part under another message number, code and hash (ssu2.rst: Bob forwards it unmodified)."""
    return PeerTestBlock(msg, code, router_hash, block.version, block.nonce, block.timestamp, block.port, block.host,
                         signature)


def intro_key_of(ri) -> bytes | None:
    address = next(iter(ri.addresses_of("SSU2")), None)
    try:
        return address.i if address is not None and address.i and len(address.i) == 32 else None
    except ProtocolError:
        return None
