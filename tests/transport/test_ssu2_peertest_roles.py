"""SSU2 peer test with all three roles in memory: our Alice, Bob and Charlie under a fake clock."""
import pytest

from core.clock import FakeClock
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.transport.ssu2.blocks import PeerTestBlock, RouterInfoBlock
from core.transport.ssu2.peertest import (PROLOGUE, AliceTest, PeerTestLimits, PeerTestRelay, Reachability, ToAddress,
                                          ToPeer)

from .ssu2_support import make_ssu2_router, only, wire
from .test_ntcp2_support import NETID, CountingRng

ALICE_AT = ("127.0.0.1", 20001)
CHARLIE_AT = ("127.0.0.1", 20003)


class World:
    def __init__(self, limits=PeerTestLimits()):
        self.clock = clock = FakeClock()
        self.alice = make_ssu2_router("alice", clock, port=ALICE_AT[1], caps="B")
        self.bob = make_ssu2_router("bob", clock, port=20002, caps="B")
        self.charlie = make_ssu2_router("charlie", clock, port=CHARLIE_AT[1], caps="B")
        self.bob_relay = self.relay(self.bob, limits)
        self.charlie_relay = self.relay(self.charlie, limits)
        self.tests = 0

    def relay(self, router, limits):
        return PeerTestRelay(router_hash=router.router_hash, sign=router.sign,
                             intro_key=router.intro_key, netid=NETID, clock=self.clock, rng=CountingRng("relay"),
                             limits=limits)

    def test(self, port=ALICE_AT[1], signer=None):
        self.tests += 1
        return AliceTest(bob_hash=self.bob.router_hash, host="127.0.0.1", port=port, netid=NETID,
                         sign=signer or self.alice.sign, clock=self.clock, rng=CountingRng(f"pt{self.tests}"))

    def message1(self, test, charlies=None):
        if charlies is None:
            charlies = [(self.charlie.router_hash, self.charlie.router_info)]
        return self.bob_relay.on_message1(self.alice.router_hash, ALICE_AT, self.alice.router_info,
                                          wire(test.request), charlies)



def test_bob_and_charlie_carry_a_test_to_ok_with_signatures_checked():
    w = World()
    test = w.test()
    # 1 -> Bob -> 2 to Charlie, after Alice's RouterInfo
    to_charlie = only(w.message1(test), ToPeer, w.charlie.router_hash)
    ri_block, message2 = wire(*to_charlie.blocks)
    assert isinstance(ri_block, RouterInfoBlock) and message2.msg == 2
    assert message2.router_hash == w.alice.router_hash and message2.signed_data() == test.request.signed_data()
    alice_ri = RouterInfo.parse(ri_block.router_info)
    assert alice_ri.hash == w.alice.router_hash
    # 2 -> Charlie -> 3 to Bob (signed by Charlie over Bob's and Alice's hashes) and 5 to Alice
    actions = w.charlie_relay.on_message2(w.bob.router_hash, message2, alice_ri, alice_connected=False)
    message3 = wire(*only(actions, ToPeer, w.bob.router_hash).blocks)
    assert message3.msg == 3 and message3.code == 0
    assert w.charlie.router_info.identity.verify(
        PROLOGUE + w.bob.router_hash + w.alice.router_hash + message3.signed_data(), message3.signature)
    message5 = only(actions, ToAddress)
    assert message5.address == ALICE_AT
    # 3 -> Bob -> 4 to Alice, after Charlie's RouterInfo
    to_alice = only(w.bob_relay.on_message3(w.charlie.router_hash, message3, w.charlie.router_info), ToPeer)
    assert to_alice.peer == w.alice.router_hash
    ri_block, message4 = wire(*to_alice.blocks)
    assert RouterInfo.parse(ri_block.router_info).hash == w.charlie.router_hash
    assert message4.signature == message3.signature and not w.bob_relay.as_bob
    test.on_message4(message4)
    assert test.charlie_hash == w.charlie.router_hash
    test.on_packet(message5.packet, w.alice.intro_key)
    assert test.result == Reachability.OK
    # 6 -> Charlie -> 7 to where 6 came from, telling Alice that address; a resent 6 is answered again
    for _ in range(2):
        message7 = only(w.charlie_relay.on_packet(test.message6(*CHARLIE_AT, w.charlie.intro_key),
                                                  ("127.0.0.1", 40000)), ToAddress)
        assert message7.address == ("127.0.0.1", 40000)
    test.on_packet(message7.packet, w.alice.intro_key)
    assert test.got7 and test.seen_as.port == 40000 and test.result == Reachability.OK


def test_without_message_5_alice_learns_symmetric_nat_from_message_7():
    w = World()
    test = w.test()
    message2 = wire(*only(w.message1(test), ToPeer).blocks)[1]
    actions = w.charlie_relay.on_message2(w.bob.router_hash, message2, w.alice.router_info, alice_connected=False)
    test.on_message4(wire(*only(w.bob_relay.on_message3(w.charlie.router_hash,
                                                        wire(*only(actions, ToPeer).blocks), w.charlie.router_info),
                                ToPeer).blocks)[1])
    assert test.result == Reachability.FIREWALLED          # message 5 lost: a firewall in front of Alice
    message7 = only(w.charlie_relay.on_packet(test.message6(*CHARLIE_AT, w.charlie.intro_key), ("127.0.0.1", 50000)),
                    ToAddress)
    test.on_packet(message7.packet, w.alice.intro_key)
    assert test.result == Reachability.SYMMETRIC_NAT


def refusal(actions, w):
    block = wire(*only(actions, ToPeer, w.alice.router_hash).blocks)
    assert block.msg == 4 and block.router_hash == bytes(32)
    return block.code


def test_bob_refuses_bad_signature_address_and_no_charlie():
    w = World()
    assert refusal(w.message1(w.test(signer=w.bob.sign)), w) == 4
    w.clock.advance(11)
    assert refusal(w.message1(w.test(port=80)), w) == 5         # privileged port
    w.clock.advance(11)
    assert refusal(w.bob_relay.on_message1(w.alice.router_hash, ("127.0.0.9", 1), w.alice.router_info,
                                           w.test().request, [(w.charlie.router_hash, w.charlie.router_info)]), w) == 5
    w.clock.advance(11)
    assert refusal(w.message1(w.test(), charlies=[(w.alice.router_hash, w.alice.router_info)]), w) == 2
    w.clock.advance(11)
    assert refusal(w.bob_relay.on_message1(w.alice.router_hash, ALICE_AT, None, w.test().request, []), w) == 4
    assert not w.bob_relay.as_bob and w.bob_relay.refused == 5


def test_bob_limits_tests_per_alice_and_in_total_and_forgets_them():
    w = World(PeerTestLimits(max_bob_tests=2, per_peer_interval=10.0, expiry=30.0))
    assert only(w.message1(w.test()), ToPeer).peer == w.charlie.router_hash
    assert refusal(w.message1(w.test()), w) == 3                 # the same Alice within 10 s
    w.clock.advance(11)
    assert only(w.message1(w.test()), ToPeer).peer == w.charlie.router_hash
    w.clock.advance(11)
    assert refusal(w.message1(w.test()), w) == 3                 # two unanswered tests held: full
    w.clock.advance(10)                                           # the first expired (30 s)
    w.bob_relay.expire()
    assert len(w.bob_relay.as_bob) == 1
    assert only(w.message1(w.test()), ToPeer).peer == w.charlie.router_hash
    assert len(w.bob_relay.as_bob) == 2


def test_bob_forwards_charlies_refusal_and_ignores_message_3_from_others():
    w = World()
    test = w.test()
    message2 = wire(*only(w.message1(test), ToPeer).blocks)[1]
    message3 = wire(*only(w.charlie_relay.on_message2(w.bob.router_hash, message2, w.alice.router_info,
                                                      alice_connected=True), ToPeer).blocks)
    assert message3.code == 68 and not w.charlie_relay.as_charlie          # no message 5 either
    assert w.bob_relay.on_message3(w.alice.router_hash, message3, w.alice.router_info) == []
    assert refusal(w.bob_relay.on_message3(w.charlie.router_hash, message3, w.charlie.router_info), w) == 68


def test_charlie_refuses_forged_unknown_and_stale_requests():
    w = World()
    test = w.test()
    message2 = wire(*only(w.message1(test), ToPeer).blocks)[1]
    forged = PeerTestBlock(2, 0, w.alice.router_hash, 2, message2.nonce, message2.timestamp, message2.port,
                           message2.host, bytes(64))

    def code(block, alice_ri=w.alice.router_info, bob=w.bob.router_hash):
        w.clock.advance(11)
        return wire(*only(w.charlie_relay.on_message2(bob, block, alice_ri, alice_connected=False), ToPeer).blocks).code
    assert code(forged) == 67
    assert code(message2, alice_ri=None) == 70
    assert code(message2, bob=w.charlie.router_hash) == 67         # signed for another Bob
    w.clock.advance(300)
    assert code(message2) == 64                                    # timestamp too old
    assert not w.charlie_relay.as_charlie


def test_charlie_answers_message_6_only_for_tests_it_holds_and_until_they_expire():
    w = World()
    test = w.test()
    message2 = wire(*only(w.message1(test), ToPeer).blocks)[1]
    w.charlie_relay.on_message2(w.bob.router_hash, message2, w.alice.router_info, alice_connected=False)
    other = w.test()
    with pytest.raises(ProtocolError):
        w.charlie_relay.on_packet(other.message6(*CHARLIE_AT, w.charlie.intro_key), ALICE_AT)
    with pytest.raises(ProtocolError):                                 # not under our intro key
        w.charlie_relay.on_packet(test.message6(*CHARLIE_AT, w.alice.intro_key), ALICE_AT)
    assert only(w.charlie_relay.on_packet(test.message6(*CHARLIE_AT, w.charlie.intro_key), ALICE_AT), ToAddress)
    w.clock.advance(21)
    w.charlie_relay.expire()
    with pytest.raises(ProtocolError):
        w.charlie_relay.on_packet(test.message6(*CHARLIE_AT, w.charlie.intro_key), ALICE_AT)
