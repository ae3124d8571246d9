"""SSU2 relay in memory: our Alice, Bob (introducer) and Charlie (firewalled) under a fake clock."""
import pytest

from core.clock import FakeClock
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.transport.ssu2.blocks import RelayIntroBlock, RelayResponseBlock, RouterInfoBlock
from core.transport.ssu2.peertest import ToAddress, ToPeer
from core.transport.ssu2.relay import (RESPONSE_PROLOGUE, AliceRelay, Introduced, Introducer, RelayLimits,
                                       is_relay_tag_request, relay_tag_request)

from .ssu2_support import make_ssu2_router, only, wire
from .test_ntcp2_support import NETID, CountingRng

ALICE_AT = ("127.0.0.1", 20001)
CHARLIE_AT = ("127.0.0.1", 20003)



class World:
    def __init__(self, limits=RelayLimits()):
        self.clock = clock = FakeClock()
        self.alice = make_ssu2_router("alice", clock, port=ALICE_AT[1])
        self.bob = make_ssu2_router("bob", clock, port=20002, caps="BC")
        self.charlie = make_ssu2_router("charlie", clock, port=CHARLIE_AT[1])
        self.tokens = []
        self.bob_side = Introducer(router_hash=self.bob.router_hash, sign=self.bob.sign, clock=clock,
                                   rng=CountingRng("tags"), limits=limits)
        self.charlie_side = Introduced(router_hash=self.charlie.router_hash, sign=self.charlie.sign, netid=NETID,
                                       clock=clock, issue_token=self.token, rng=CountingRng("hp"), limits=limits)
        self.n = 0
        # Charlie asks Bob for a tag in session; Bob answers with one
        assert is_relay_tag_request(wire(relay_tag_request()))
        self.tag = wire(self.bob_side.on_tag_request(self.charlie.router_hash))
        self.charlie_side.on_relay_tag(self.bob.router_hash, self.tag)

    def token(self, address):
        self.tokens.append(address)
        return 0x1122334455667788

    def alice_relay(self, tag=None, signer=None):
        self.n += 1
        return AliceRelay(bob_hash=self.bob.router_hash, charlie_hash=self.charlie.router_hash,
                          relay_tag=tag or self.tag.relay_tag, host=ALICE_AT[0], port=ALICE_AT[1],
                          sign=signer or self.alice.sign, netid=NETID, clock=self.clock, rng=CountingRng(f"a{self.n}"))

    def request(self, relay, alice_ri="default", connected=True):
        ri = self.alice.router_info if alice_ri == "default" else alice_ri
        return self.bob_side.on_relay_request(self.alice.router_hash, ri, wire(relay.request), lambda h: connected)


def test_introduction_gives_alice_charlies_address_and_a_token_for_her_address():
    w = World()
    assert w.bob_side.on_tag_request(w.charlie.router_hash) == w.tag        # the same tag for the same Charlie
    relay = w.alice_relay()
    ri_block, intro = wire(*only(w.request(relay), ToPeer, w.charlie.router_hash).blocks)
    assert isinstance(ri_block, RouterInfoBlock) and isinstance(intro, RelayIntroBlock)
    assert intro.alice_hash == w.alice.router_hash and intro.signature == relay.request.signature
    actions = w.charlie_side.on_relay_intro(w.bob.router_hash, intro, RouterInfo.parse(ri_block.router_info),
                                            CHARLIE_AT, alice_connected=False)
    response = wire(*only(actions, ToPeer, w.bob.router_hash).blocks)
    assert response.code == 0 and (response.host, response.port) == CHARLIE_AT and response.token == 0x1122334455667788
    assert w.tokens == [ALICE_AT]
    assert w.charlie.router_info.identity.verify(RESPONSE_PROLOGUE + w.bob.router_hash + response.signed_data(),
                                                 response.signature)
    hole_punch = only(actions, ToAddress)
    assert hole_punch.address == ALICE_AT
    # the Hole Punch arrives first, from a NATed port of Charlie's: that port wins
    relay.on_hole_punch(hole_punch.packet, w.alice.intro_key, ("127.0.0.1", 31000), w.charlie.router_info)
    assert relay.accepted and relay.charlie_address() == ("127.0.0.1", 31000)
    forwarded = wire(*only(w.bob_side.on_relay_response(w.charlie.router_hash, response), ToPeer,
                           w.alice.router_hash).blocks)
    relay.on_response(forwarded, w.charlie.router_info)
    assert relay.response.token == 0x1122334455667788 and not w.bob_side.pending
    # a duplicate Relay Intro (Bob's retransmission) gets nothing
    assert w.charlie_side.on_relay_intro(w.bob.router_hash, intro, w.alice.router_info, CHARLIE_AT, False) == []


def test_relay_response_alone_gives_the_published_address():
    w = World()
    relay = w.alice_relay()
    intro = wire(*only(w.request(relay), ToPeer).blocks)[1]
    response = wire(*only(w.charlie_side.on_relay_intro(w.bob.router_hash, intro, w.alice.router_info, CHARLIE_AT,
                                                        False), ToPeer).blocks)
    relay.on_response(wire(*only(w.bob_side.on_relay_response(w.charlie.router_hash, response), ToPeer).blocks))
    assert relay.charlie_address() == CHARLIE_AT


def bob_code(actions, w):
    block = wire(*only(actions, ToPeer, w.alice.router_hash).blocks)
    assert isinstance(block, RelayResponseBlock) and block.host is None and block.token is None
    assert w.bob.router_info.identity.verify(RESPONSE_PROLOGUE + w.bob.router_hash + block.signed_data(),
                                             block.signature)
    return block.code


def test_bob_refuses_unknown_tags_forged_requests_and_floods():
    w = World(RelayLimits(per_peer_interval=1.0, max_pending=1))
    assert bob_code(w.request(w.alice_relay(tag=w.tag.relay_tag ^ 1)), w) == 5
    w.clock.advance(2)
    assert bob_code(w.request(w.alice_relay(), connected=False), w) == 5       # Charlie's session is gone
    w.clock.advance(2)
    assert bob_code(w.request(w.alice_relay(signer=w.bob.sign)), w) == 4
    w.clock.advance(2)
    assert bob_code(w.request(w.alice_relay(), alice_ri=None), w) == 6
    w.clock.advance(2)
    assert only(w.request(w.alice_relay()), ToPeer).peer == w.charlie.router_hash
    assert bob_code(w.request(w.alice_relay()), w) == 3                        # the same Alice within 1 s
    w.clock.advance(2)
    assert bob_code(w.request(w.alice_relay()), w) == 3                        # one introduction in flight at most
    w.clock.advance(20)
    assert only(w.request(w.alice_relay()), ToPeer).peer == w.charlie.router_hash   # the first expired
    w.bob_side.forget(w.charlie.router_hash)
    assert not w.bob_side.tags


def test_charlie_refuses_without_punching():
    w = World()
    relay = w.alice_relay()
    intro = wire(*only(w.request(relay), ToPeer).blocks)[1]

    def answer(**kw):
        args = dict(bob=w.bob.router_hash, block=intro, alice_ri=w.alice.router_info, connected=False)
        args.update(kw)
        w.clock.advance(2)
        w.charlie_side.recent.clear()
        actions = w.charlie_side.on_relay_intro(args["bob"], args["block"], args["alice_ri"], CHARLIE_AT,
                                                args["connected"])
        assert not [a for a in actions if isinstance(a, ToAddress)]
        response = wire(*only(actions, ToPeer).blocks)
        assert response.token is None
        return response.code
    assert answer(connected=True) == 68
    assert answer(alice_ri=None) == 70
    assert answer(bob=w.alice.router_hash) == 64                    # no tag from that Bob
    forged = RelayIntroBlock(w.alice.router_hash, intro.nonce, intro.relay_tag, intro.timestamp, 2, intro.port,
                             intro.host, bytes(64))
    assert answer(block=forged) == 67
    assert w.tokens == []


def test_alice_refuses_a_hole_punch_or_response_of_another_introduction():
    w = World()
    relay, other = w.alice_relay(), w.alice_relay()
    intro = wire(*only(w.request(other), ToPeer).blocks)[1]
    actions = w.charlie_side.on_relay_intro(w.bob.router_hash, intro, w.alice.router_info, CHARLIE_AT, False)
    with pytest.raises(ProtocolError):
        relay.on_hole_punch(only(actions, ToAddress).packet, w.alice.intro_key, CHARLIE_AT)
    with pytest.raises(ProtocolError):
        relay.on_response(wire(*only(actions, ToPeer).blocks))
    forged = RelayResponseBlock(0, other.nonce, 0, 2, 1234, "127.0.0.1", bytes(64), 5)
    with pytest.raises(ProtocolError):
        other.on_response(forged, w.charlie.router_info)
    assert not relay.accepted and not other.accepted
