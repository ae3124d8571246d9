"""netDb traffic through tunnels on real pyi2p routers (NTCP2 on loopback): LeaseSet stores go garlic-wrapped
out of client tunnels with the DeliveryStatus back through an inbound tunnel, lookups ask for ECIES-encrypted
replies that come back through our tunnels, and hostile garlic to a router is dropped and counted."""
import asyncio

from core.client.api import CLIENT_POOL_PREFIX
from core.datagram import PROTO_RAW
from core.garlic.blocks import DateTime
from core.garlic.routers import encrypt_to_router, wrap_for_router
from core.i2np import GarlicCloveBlock, GarlicCloveDeliveryInstructions, I2NPMessage, MessageType
from core.i2np.messages import DatabaseLookup, DeliveryStatus, Garlic, LookupType

from tests.client.routers import make_router, start_network, two_hop_leases, wait_for

OPTIONS = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2"}


async def test_leaseset_store_and_lookup_go_through_tunnels_with_encrypted_replies(tmp_path):
    floodfill = make_router(tmp_path, "ff", floodfill=True)
    nodes = [floodfill] + [make_router(tmp_path, f"r{i}") for i in range(4)]
    node_a, node_b = nodes[1], nodes[2]
    try:
        await start_network(nodes)
        a = await node_a.api.open_session(options=OPTIONS, name="a")
        b = await node_b.api.open_session(options=OPTIONS, name="b")
        await wait_for(lambda: two_hop_leases(a) and two_hop_leases(b), 60)
        await wait_for(lambda: floodfill.router.netdb.get_leaseset(a.hash) == a.leaseset
                       and floodfill.router.netdb.get_leaseset(b.hash) == b.leaseset, 10)
        for node in (node_a, node_b):
            stats = node.router.netdb_service.stats
            assert stats["stores_via_tunnels"] >= 1 and stats["stores_confirmed"] >= 1
        # the floodfill never saw our routers send it a store directly: they came as garlic out of tunnels
        assert floodfill.router.garlic.stats["router"] >= 2

        a.send_datagram(b.hash, b"raw through a tunneled lookup", protocol=PROTO_RAW)
        got = await asyncio.wait_for(b.receive_datagram(), 20)
        assert got.payload == b"raw through a tunneled lookup"
        assert node_a.router.netdb_service.stats["lookups_via_tunnels"] >= 1
        assert floodfill.router.netdb_service.stats["encrypted_replies"] >= 1
        assert node_a.router.garlic.stats["reply"] >= 1          # the answer opened under our reply key
        assert node_a.router.netdb.get_leaseset(b.hash) == b.leaseset
    finally:
        for node in reversed(nodes):
            await node.stop()


async def test_router_info_lookups_and_exploration_go_through_exploratory_tunnels(tmp_path):
    floodfill = make_router(tmp_path, "ff", floodfill=True)
    nodes = [floodfill] + [make_router(tmp_path, f"r{i}") for i in range(4)]
    me, target = nodes[1], nodes[4]
    try:
        await start_network(nodes)
        tunnels = me.router.tunnel_service
        netdb = me.router.netdb_service

        def multi_hop(pool) -> bool:
            return any(t.hops for t in pool.core.usable(tunnels.clock.monotonic()))
        await wait_for(lambda: multi_hop(tunnels.exploratory_inbound) and multi_hop(tunnels.exploratory_outbound), 60)
        await wait_for(lambda: floodfill.router.netdb.get_router_info(target.router.hash) is not None, 10)
        me.router.netdb.remove_router_info(target.router.hash)
        before, opened = netdb.stats["lookups_via_tunnels"], me.router.garlic.stats["reply"]
        ri = await asyncio.wait_for(netdb.lookup_router_info(target.router.hash), 20)
        assert ri is not None and ri.hash == target.router.hash
        assert netdb.stats["lookups_via_tunnels"] > before      # asked out an exploratory tunnel,
        assert me.router.garlic.stats["reply"] > opened         # answered under our reply key into our tunnel
        assert floodfill.router.netdb_service.stats["encrypted_replies"] >= 1

        before = netdb.stats["lookups_via_tunnels"]
        exploration = netdb.explore()
        assert exploration is not None
        await wait_for(lambda: exploration.done, 20)
        assert netdb.stats["lookups_via_tunnels"] > before
    finally:
        for node in reversed(nodes):
            await node.stop()


async def test_hostile_garlic_to_a_router_is_dropped_and_counted(tmp_path):
    nodes = [make_router(tmp_path, "ff", floodfill=True), make_router(tmp_path, "r0")]
    target, sender = nodes
    try:
        await start_network(nodes)
        router = target.router
        clock = router.clock
        key = router.router_info.identity.public_key

        def garlic(data: bytes) -> I2NPMessage:
            return I2NPMessage(MessageType.GARLIC, 1, int(clock.time() * 1000) + 60_000, Garlic(data).to_bytes())

        stats = router.garlic.stats
        other_key = sender.router.router_info.identity.public_key
        router.handle_message(sender.hash, garlic(encrypt_to_router(other_key, clock=clock)))   # not for us
        router.handle_message(sender.hash, garlic(bytes(40)))                                    # too short
        router.handle_message(sender.hash, garlic(bytes(range(200))))                            # garbage
        assert (stats["failed"], stats["short"], stats["router"]) == (2, 1, 0)

        # a lookup wrapped to us is answered; the same garlic again is a replay
        lookup = DatabaseLookup(sender.hash, sender.hash, LookupType.ROUTER_INFO)
        message = wrap_for_router(key, sender.router.netdb_service._message(lookup), clock=clock)
        received = router.netdb_service.stats["lookups_received"]
        router.handle_message(sender.hash, message)
        router.handle_message(sender.hash, message)
        assert stats["router"] == 1 and stats["replayed"] == 1
        assert router.netdb_service.stats["lookups_received"] == received + 1

        # cloves we are asked to pass on: TUNNEL ones go to the gateway, ROUTER ones from a direct peer do not
        inner = I2NPMessage.build(DeliveryStatus(7, 0), 9, int(clock.time() * 1000) + 60_000)
        cloves = [GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_router(sender.hash), inner)]
        cloves += [GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_tunnel(sender.hash, 1 + i), inner)
                   for i in range(6)]
        router.handle_message(sender.hash, garlic(encrypt_to_router(key, [DateTime(int(clock.time())), *cloves][1:],
                                                                    clock=clock)))
        tunnel_stats = router.tunnel_service.stats
        assert tunnel_stats["cloves_dropped"] == 1
        assert tunnel_stats["cloves_forwarded"] == 3 and tunnel_stats["cloves_forward_limit"] == 3
        assert not any(p.name.startswith(CLIENT_POOL_PREFIX) for p in router.tunnel_service.pools)
    finally:
        for node in reversed(nodes):
            await node.stop()
