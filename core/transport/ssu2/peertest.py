"""Sans-I/O SSU2 peer test, Alice's side (ssu2.rst "Peer Test Process", "Results State Machine").

Alice asks Bob (in session, message 1); Bob picks Charlie and answers (message 4, with Charlie's hash);
Charlie writes to Alice's published address out of session (message 5); Alice writes to Charlie
(message 6) and Charlie answers from where it saw her (message 7).
"""
from __future__ import annotations

import enum
import os
from collections.abc import Callable

from core.clock import Clock, Rng
from core.data.errors import HandshakeError

from . import header as h
from .blocks import AddressBlock, DateTimeBlock, PeerTestBlock
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
