"""Two destinations on two real pyi2p routers (NTCP2 on loopback, five routers, one floodfill): each
publishes its LeaseSet2, finds the other's through the floodfill, and they exchange repliable datagrams
and a stream through 2-hop tunnels."""
import asyncio
import time

from core.datagram import PROTO_DATAGRAM, PROTO_RAW

from .routers import make_router, start_network, two_hop_leases, wait_for
from .streams import echo_round_trip

OPTIONS = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2"}


async def test_datagrams_and_streaming_between_two_routers(tmp_path):
    floodfill = make_router(tmp_path, "ff", floodfill=True)
    nodes = [floodfill] + [make_router(tmp_path, f"r{i}") for i in range(4)]
    node_a, node_b = nodes[1], nodes[2]
    try:
        await start_network(nodes)
        opened = time.monotonic()
        a = await node_a.api.open_session(options=OPTIONS, name="a")
        b = await node_b.api.open_session(options=OPTIONS, name="b")
        await wait_for(lambda: two_hop_leases(a) and two_hop_leases(b), 60)
        ready_after = time.monotonic() - opened
        # the floodfill holds both LeaseSets, each signed by its destination
        await wait_for(lambda: floodfill.router.netdb.get_leaseset(a.hash) == a.leaseset
                       and floodfill.router.netdb.get_leaseset(b.hash) == b.leaseset, 10)
        assert node_b.router.netdb.get_leaseset(a.hash) is None

        started = time.monotonic()
        a.send_datagram(b.hash, b"ping over tunnels", protocol=PROTO_DATAGRAM, src_port=11, dst_port=22)
        got = await asyncio.wait_for(b.receive_datagram(), 20)
        assert (got.payload, got.sender, got.src_port, got.dst_port) == (b"ping over tunnels", a.destination, 11, 22)
        b.send_datagram(got.sender, b"pong", protocol=PROTO_DATAGRAM, src_port=22, dst_port=11)
        back = await asyncio.wait_for(a.receive_datagram(), 20)
        first_round_trip = time.monotonic() - started
        assert back.payload == b"pong" and back.sender == b.destination
        assert a.stats["lookups"] == 1 and b.stats["lookups"] == 0   # b replied with the bundled LeaseSet

        started = time.monotonic()
        a.send_datagram(b.hash, b"raw", protocol=PROTO_RAW)
        got = await asyncio.wait_for(b.receive_datagram(), 20)
        assert got.payload == b"raw" and got.sender_hash == a.hash
        b.send_datagram(a.hash, b"raw back", protocol=PROTO_RAW)
        assert (await asyncio.wait_for(a.receive_datagram(), 20)).payload == b"raw back"
        round_trip = time.monotonic() - started

        await echo_round_trip(a, b, bytes(range(256)) * 200, port=0, connect_timeout=30, timeout=30)
        assert a.stats["garlic_undecryptable"] == 0 and b.stats["garlic_undecryptable"] == 0
        print(f"\nLeaseSets published with 2-hop leases {ready_after:.1f} s after opening; "
              f"first datagram round trip {first_round_trip * 1000:.0f} ms (lookup included), "
              f"then {round_trip * 1000:.0f} ms")
    finally:
        for node in reversed(nodes):
            await node.stop()
