"""SSU2 peer test, Alice's side, in memory: messages 4, 5 and 7 crafted as Bob and Charlie send them."""
import pytest

from core.clock import FakeClock
from core.crypto import signing
from core.data.errors import ProtocolError
from core.transport.ssu2 import header as h
from core.transport.ssu2.blocks import AddressBlock, DateTimeBlock, PeerTestBlock
from core.transport.ssu2.handshake import open_long, seal_long
from core.transport.ssu2.peertest import PROLOGUE, AliceTest, Reachability, nonce_of, peer_test_ids

from .test_ntcp2_support import NETID, CountingRng

ALICE_KEY = bytes(range(32))
CHARLIE_KEY = bytes(range(32, 64))
BOB = b"\x0b" * 32
CHARLIE = b"\x0c" * 32


@pytest.fixture
def alice():
    clock = FakeClock()
    private, public = signing.generate(7, CountingRng("alice-sig"))
    test = AliceTest(bob_hash=BOB, host="10.0.0.1", port=12345, sign=lambda d: signing.sign(7, private, d),
                     netid=NETID, clock=clock, rng=CountingRng("pt"))
    test.public_key = public
    return test


def from_charlie(test: AliceTest, msg: int, seen_port: int = 12345) -> bytes:
    dest, source = peer_test_ids(test.nonce)
    header = h.LongHeader(dest, 7, h.PEER_TEST, NETID, source, 0)
    r = test.request
    blocks = [DateTimeBlock(r.timestamp), AddressBlock(seen_port, "10.0.0.1"),
              PeerTestBlock(msg, 0, None, 2, r.nonce, r.timestamp, r.port, r.host)]
    return seal_long(header, b"".join(b.to_bytes() for b in blocks), ALICE_KEY)


def message4(test: AliceTest, code: int = 0) -> PeerTestBlock:
    r = test.request
    return PeerTestBlock(4, code, CHARLIE if code == 0 else bytes(32), 2, r.nonce, r.timestamp, r.port, r.host)


def test_message1_is_signed_over_bob_hash_and_the_signed_fields(alice):
    r = alice.request
    assert r.msg == 1 and r.router_hash is None and (r.host, r.port) == ("10.0.0.1", 12345)
    assert signing.verify(7, alice.public_key, PROLOGUE + BOB + r.signed_data(), r.signature)


def test_ids_are_the_doubled_nonce_and_its_inverse():
    dest, source = peer_test_ids(0x01020304)
    assert dest == 0x0102030401020304 and source == dest ^ 0xFFFFFFFFFFFFFFFF
    assert nonce_of(dest) == 0x01020304 and nonce_of(0x0102030405060708) is None


def test_4_5_7_is_ok(alice):
    alice.on_message4(message4(alice))
    alice.on_packet(from_charlie(alice, 5), ALICE_KEY)
    assert alice.result == Reachability.OK
    packet = alice.message6("10.0.0.3", 4000, CHARLIE_KEY)
    header, blocks = open_long(packet, CHARLIE_KEY)           # Charlie can read it, with swapped ids
    assert (header.dest_id, header.source_id) == tuple(reversed(peer_test_ids(alice.nonce)))
    (block,) = [b for b in blocks if isinstance(b, PeerTestBlock)]
    assert block.msg == 6 and block.nonce == alice.nonce
    alice.on_packet(from_charlie(alice, 7), ALICE_KEY)
    assert alice.result == Reachability.OK


def test_4_without_5_is_firewalled_and_a_changed_port_is_symmetric_nat(alice):
    alice.on_message4(message4(alice))
    assert alice.result == Reachability.FIREWALLED
    alice.on_packet(from_charlie(alice, 7, seen_port=40000), ALICE_KEY)
    assert alice.result == Reachability.SYMMETRIC_NAT


def test_rejection_or_nothing_is_unknown(alice):
    assert alice.result == Reachability.UNKNOWN
    alice.on_message4(message4(alice, code=2))
    assert alice.result == Reachability.UNKNOWN and alice.charlie_hash is None


def test_packets_of_another_test_or_key_are_refused(alice):
    with pytest.raises(ProtocolError):
        alice.on_packet(from_charlie(alice, 5), CHARLIE_KEY)
    other = AliceTest(bob_hash=BOB, host="10.0.0.1", port=1, sign=lambda d: bytes(64), netid=NETID,
                      clock=FakeClock(), rng=CountingRng("other"))
    with pytest.raises(ProtocolError):
        alice.on_packet(from_charlie(other, 5), ALICE_KEY)
    assert not alice.got5
