"""SSU2 over loopback UDP with three endpoints, ours in every role: peer test (Alice, Bob, Charlie) and relay."""
import asyncio

import pytest

from core.clock import SystemClock
from core.transport.ssu2.driver import SSU2Endpoint
from core.transport.ssu2.peertest import Reachability

from .ssu2_support import make_ssu2_router, until

NETID = 42


class Node:
    """An endpoint whose RouterInfo publishes the port it got; `known` is its netDb."""

    def __init__(self, name: str, clock):
        self.name, self.clock = name, clock
        self.known: dict = {}
        self.inbound: list = []
        self.router = make_ssu2_router(name, clock)
        self.endpoint = SSU2Endpoint(static_key=self.router.static_key, intro_key=self.router.intro_key, netid=NETID,
                                     router_info=lambda: self.router.router_info.to_bytes(),
                                     on_connection=self.inbound.append, clock=clock, sign=self.router.sign,
                                     lookup_router_info=self.known.get)

    async def start(self):
        await self.endpoint.start("127.0.0.1", 0)
        # same name, same keys: the RouterInfo again with the real port and "B"
        self.router = make_ssu2_router(self.name, self.clock, port=self.endpoint.port, caps="B")

    async def connect(self, other: "Node", **kw):
        self.known[other.router.router_hash] = other.router.router_info
        r = other.router
        conn = await self.endpoint.connect("127.0.0.1", other.endpoint.port, peer_router_hash=r.router_hash,
                                           peer_static_key=r.static_key.public_bytes, peer_intro_key=r.intro_key, **kw)
        await until(lambda: other.inbound)
        return conn


async def three_nodes():
    clock = SystemClock()
    nodes = [Node(name, clock) for name in ("alice", "bob", "charlie")]
    for node in nodes:
        await node.start()
    return nodes


async def test_alice_bob_and_charlie_over_udp_give_ok():
    alice, bob, charlie = await three_nodes()
    try:
        to_bob = await alice.connect(bob)
        await charlie.connect(bob)
        result = await alice.endpoint.peer_test(to_bob, "127.0.0.1", alice.endpoint.port, timeout=5)
        assert result == Reachability.OK and alice.endpoint.reachability == Reachability.OK
        # Charlie's RouterInfo reached Alice through Bob; Alice's reached Charlie the same way
        assert alice.endpoint.router_info_of(charlie.router.router_hash) is not None
        assert charlie.router.router_hash not in alice.known and alice.router.router_hash not in charlie.known
        assert not bob.endpoint.relay.as_bob and charlie.endpoint.relay.as_charlie
        assert bob.endpoint.relay.refused == charlie.endpoint.relay.refused == 0
    finally:
        for node in (alice, bob, charlie):
            await node.endpoint.stop()


async def test_a_port_nobody_listens_on_is_seen_through_message_7_as_symmetric_nat():
    alice, bob, charlie = await three_nodes()
    try:
        to_bob = await alice.connect(bob)
        await charlie.connect(bob)
        # Alice asks about a port she does not listen on: message 5 is lost, 7 answers her real port
        result = await alice.endpoint.peer_test(to_bob, "127.0.0.1", _free_port(), timeout=5)
        assert result == Reachability.SYMMETRIC_NAT
    finally:
        for node in (alice, bob, charlie):
            await node.endpoint.stop()


async def test_bob_without_a_charlie_refuses():
    nodes = alice, bob, _ = await three_nodes()
    try:
        to_bob = await alice.connect(bob)
        assert await alice.endpoint.peer_test(to_bob, "127.0.0.1", alice.endpoint.port, timeout=5) \
            == Reachability.UNKNOWN
        assert bob.endpoint.relay.refused == 1 and not bob.endpoint.relay.as_bob
    finally:
        for node in nodes:
            await node.endpoint.stop()


def _free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_alice_reaches_a_firewalled_charlie_through_bob_over_udp():
    nodes = alice, bob, charlie = await three_nodes()
    try:
        to_bob = await charlie.connect(bob)
        charlie.endpoint.request_relay_tag(to_bob)                      # asked in the data phase
        await until(lambda: charlie.endpoint.introducers())
        ((introducer, tag),) = charlie.endpoint.introducers()
        assert introducer == bob.router.router_hash and bob.endpoint.introducer.tags[tag] == charlie.router.router_hash
        alice_to_bob = await alice.connect(bob)
        r = charlie.router
        alice.known[r.router_hash] = r.router_info      # from the netDb: Charlie's signature on the response is checked
        conn = await alice.endpoint.connect_introduced(alice_to_bob, charlie_hash=r.router_hash, relay_tag=tag,
                                                       peer_static_key=r.static_key.public_bytes,
                                                       peer_intro_key=r.intro_key)
        assert conn.peer_router_hash == r.router_hash and not conn.closed
        await until(lambda: any(c.peer_router_hash == alice.router.router_hash for c in charlie.inbound))
        # Alice came: Charlie's Hole Punch is not sent again
        assert charlie.endpoint.introduced.hole_punches == 1
        charlie.endpoint._resend_hole_punches()
        assert not charlie.endpoint._hole_punches
        # a wrong tag is refused by Bob (after his one-introduction-per-Alice-a-second limit)
        await asyncio.sleep(1.1)
        with pytest.raises(ConnectionError, match="code 5"):
            await alice.endpoint.connect_introduced(alice_to_bob, charlie_hash=r.router_hash, relay_tag=tag ^ 1,
                                                    peer_static_key=r.static_key.public_bytes,
                                                    peer_intro_key=r.intro_key)
        # Charlie's session with Bob closes: the tag is gone on both sides
        await to_bob.close()
        await until(lambda: not bob.endpoint.introducer.tags)
        assert charlie.endpoint.introducers() == []
    finally:
        for node in nodes:
            await node.endpoint.stop()


async def test_a_hole_punch_is_resent_until_alice_comes_or_the_resends_are_spent():
    clock = SystemClock()
    charlie = Node("charlie", clock)
    await charlie.start()
    got: list[bytes] = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.append(data)
    loop = asyncio.get_running_loop()
    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    alice = sink.get_extra_info("sockname")[:2]
    try:
        charlie.endpoint._hole_punches[alice] = [b"p" * 60, charlie.endpoint.settings.hole_punch_resends]
        for _ in range(charlie.endpoint.settings.hole_punch_resends + 2):     # one housekeeping turn each
            charlie.endpoint._resend_hole_punches()
        await until(lambda: len(got) == charlie.endpoint.settings.hole_punch_resends)
        assert not charlie.endpoint._hole_punches
        await asyncio.sleep(0.1)
        assert got == [b"p" * 60] * charlie.endpoint.settings.hole_punch_resends
    finally:
        sink.close()
        await charlie.endpoint.stop()
