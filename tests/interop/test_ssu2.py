"""SSU2 against real i2pd on the private testnet: i2pd routers with NTCP2 off, so every session is SSU2.

pyi2p dials an SSU2-only floodfill and exchanges I2NP with it, builds tunnels through the SSU2-only
routers, then that floodfill dials a second pyi2p router over SSU2 to deliver a lookup reply.
"""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import time

import pytest

from core.client import open_stream_session
from core.config import load_config
from core.control.api import NetStatus
from core.data.encoding import b64decode, b64encode
from core.i2np.messages import DatabaseLookup, DatabaseStore, LookupType
from core.i2np.registry import parse_payload
from core.router import Router
from core.transport.ssu2.peertest import Reachability
from core.tunnel.service import TunnelSettings
from pyi2p.testnet import TestnetError, parse_transports_page

from .conftest import _start_testnet, i2pd_binaries, _version_id

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=i2pd_binaries(), ids=_version_id)
def ssu2_testnet(request, testnet_requirements, tmp_path_factory):
    """3 i2pd floodfills; r2 and r3 run SSU2 only. SSU2-only routers take minutes to build their tunnels
    (their first handshakes collide) and this module needs none: it waits until every console answers."""
    net = _start_testnet(tmp_path_factory, request.param, wait=0, i2pd_count=3, floodfills=3, ssu2_only=2)
    try:
        deadline = time.monotonic() + 60
        while not all(s.running and (s.known_routers or 0) >= 3 for s in net.status(sessions=False)):
            if time.monotonic() > deadline:
                raise TimeoutError("i2pd consoles did not come up in 60 s")
            time.sleep(1)
        yield net
    finally:
        net.down()


async def wait_for(predicate, timeout: float, step: float = 0.2):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def ssu2_router(testnet, path, port: int, *, reseed: bool = True, host: str | None = "") -> Router:
    """A pyi2p router with SSU2 on; `host=None` makes it firewalled (no published address)."""
    host = testnet.add_pyi2p_address() if host == "" else host
    return Router(load_config(path, {"netid": testnet.netid, "host": host, "port": port,
                                     "reseed_file": str(testnet.seed_file) if reseed else None, "control_port": 0,
                                     "sam_port": 0, "ssu2_enabled": True}))


def wait_for_i2pd_links(testnet, routers, timeout: float) -> None:
    """Poll the consoles until each of these i2pd routers has a session with every other one."""
    deadline = time.monotonic() + timeout
    missing: list[str] = []
    while time.monotonic() < deadline:
        missing = []
        for r in routers:
            try:
                peers = {t.address for t in parse_transports_page(testnet.http_get(r, "/?page=transports"))}
            except (OSError, http.client.HTTPException, TestnetError):
                peers = set()
            missing += [f"{r.name}->{other.name}" for other in routers if other is not r and other.address not in peers]
        if not missing:
            return
        time.sleep(1)
    raise TimeoutError(f"i2pd routers not in session with each other after {timeout:.0f} s: {', '.join(missing)}")


def senders(router: Router) -> list[bytes]:
    """The peers `router` gets I2NP from, in order; call before start."""
    got: list[bytes] = []
    on_message = router.handle_message
    router.handle_message = lambda peer, m: (got.append(peer), on_message(peer, m))
    return got


async def test_ssu2_both_directions_with_i2pd(ssu2_testnet, tmp_path):
    testnet = ssu2_testnet
    only_ssu2 = {b64decode(r.ident_hash): r.name for r in testnet.i2pd_routers if not r.ntcp2}
    with testnet.in_netns():
        router = ssu2_router(testnet, tmp_path / "p", 24100)
        # one hop: i2pd routers that speak only SSU2 need minutes to reach each other at start
        router.tunnel_settings = TunnelSettings(exploratory_length=1, ip_restriction=0)
        stores: list[tuple[bytes, object]] = []
        on_message = router.handle_message

        def record(peer, message):
            stores.append((peer, parse_payload(message)))
            on_message(peer, message)
        router.handle_message = record
        await router.start()
        try:
            ri = router.router_info
            (address,) = ri.addresses_of("SSU2")
            assert address.host and address.port == 24100 and len(address.i) == 32 and address.v == "2"
            # outbound: the SSU2-only floodfills can only be reached over SSU2
            flood = next(iter(only_ssu2))
            conn = await asyncio.wait_for(router.transports.connect(flood), 30)
            assert conn is not None and conn.transport_style == "SSU2" and not conn.inbound
            # I2NP both ways: a lookup for the floodfill's own RouterInfo comes back as a DatabaseStore
            router.transports.send(flood, router.new_message(DatabaseLookup(flood, router.hash,
                                                                            LookupType.ROUTER_INFO)))
            await wait_for(lambda: any(p == flood and isinstance(m, DatabaseStore) for p, m in stores), 20)
            me = b64encode(router.hash)
            await wait_for(lambda: any(me.startswith(p)
                                       for p in testnet.i2pd_peers(only_ssu2[flood], "SSU2")), 15, step=1.0)

            # tunnels: the SSU2-only routers are hops too, and their builds succeed over SSU2
            await wait_for(lambda: any(t.state == "established" and any(h in only_ssu2 for h in t.hops)
                                       for t in router.tunnels()), 30)

            # inbound: the floodfill dials a router it learns of only from our store, to answer its lookup
            other = ssu2_router(testnet, tmp_path / "q", 24101, reseed=False)   # knows nobody, dials nobody
            await other.start()
            try:
                router.transports.send(flood, router.new_message(
                    DatabaseStore.for_router_info(other.hash, other.router_info.to_bytes())))
                await asyncio.sleep(1.0)
                router.transports.send(flood, router.new_message(
                    DatabaseLookup(flood, other.hash, LookupType.ROUTER_INFO)))
                await wait_for(lambda: flood in other.transports.sessions, 30)
                back = other.transports.sessions[flood]
                assert back.inbound and back.transport_style == "SSU2" and not back.closed
                await wait_for(lambda: other.netdb.get_router_info(flood) is not None, 15)
            finally:
                await other.stop()
            assert conn.data_phase.srtt is not None and conn.data_phase.srtt < 1.0
        finally:
            await router.stop()


async def test_peer_test_with_i2pd_as_bob_and_charlie(ssu2_testnet, tmp_path):
    """A router connected only to Bob asks him for a peer test; i2pd Charlie reaches its published address
    (OK). Asked about a port where nothing listens, Charlie's message 5 gets nowhere: not OK."""
    testnet = ssu2_testnet
    bob_router = next(r for r in testnet.i2pd_routers if not r.ntcp2)
    bob_hash = b64decode(bob_router.ident_hash)
    others = {r.ident_hash for r in testnet.i2pd_routers} - {bob_router.ident_hash}
    # Bob needs a Charlie: an SSU2 session with another i2pd, which SSU2-only routers take a while to get
    t0 = time.monotonic()
    await wait_for(lambda: testnet.i2pd_peers(bob_router, "SSU2") & others, 180, step=2.0)
    print(f"Bob has an SSU2 session with another i2pd after {time.monotonic() - t0:.0f} s")
    with testnet.in_netns():
        router = ssu2_router(testnet, tmp_path / "a", 24102, reseed=False)
        await router.start()
        try:
            router.netdb.add_router_info(bob_router.router_info_path.read_bytes())
            bob = await asyncio.wait_for(router.transports.connect(bob_hash), 20)
            assert bob is not None and bob.transport_style == "SSU2"
            ssu2 = router.transports.ssu2
            host = router.config.host
            assert await router.transports.peer_test() == Reachability.OK   # picks Bob: "B" in his caps
            assert ssu2.reachability == Reachability.OK and router.snapshot().net_status == NetStatus.OK
            result = await ssu2.peer_test(router.transports.sessions[bob_hash], host, 24199)
            assert result in (Reachability.FIREWALLED, Reachability.SYMMETRIC_NAT)
            assert router.snapshot().net_status in (NetStatus.FIREWALLED, NetStatus.ERROR_SYMMETRIC_NAT)
        finally:
            await router.stop()


async def test_i2pd_introduces_a_firewalled_router(ssu2_testnet, tmp_path):
    """A pyi2p router with no published host gets a relay tag from an SSU2-only i2pd in its Session Request,
    publishes it as introducer, and a second pyi2p router reaches it through that i2pd (Relay Request, Relay
    Intro, Relay Response, Hole Punch), then carries I2NP over the session."""
    testnet = ssu2_testnet
    bob_router = next(r for r in testnet.i2pd_routers if not r.ntcp2)
    bob_hash = b64decode(bob_router.ident_hash)
    with testnet.in_netns():
        charlie = ssu2_router(testnet, tmp_path / "c", 24103, reseed=False, host=None)
        alice = ssu2_router(testnet, tmp_path / "a", 24104, reseed=False)
        got = senders(charlie)
        await charlie.start()
        await alice.start()
        try:
            bob_ri = bob_router.router_info_path.read_bytes()
            (bob_address,) = charlie.netdb.add_router_info(bob_ri).addresses_of("SSU2")
            assert "C" in bob_address.caps
            conn = await asyncio.wait_for(charlie.transports.connect(bob_hash), 20)
            assert conn is not None and conn.transport_style == "SSU2"
            await wait_for(lambda: charlie.transports.ssu2.introducers(), 10)
            assert charlie.transports.refresh_introducers()
            (address,) = charlie.router_info.addresses_of("SSU2")
            assert address.host is None and b64decode(address.get("ih0")) == bob_hash
            # Alice knows Charlie only by his RouterInfo: no host, one introducer
            alice.netdb.add_router_info(bob_ri)
            alice.netdb.add_router_info(charlie.router_info.to_bytes())
            back = await asyncio.wait_for(alice.transports.connect(charlie.hash), 30)
            assert back is not None and back.transport_style == "SSU2" and not back.inbound
            assert bob_hash in alice.transports.sessions
            await wait_for(lambda: alice.hash in charlie.transports.sessions, 10)
            alice.transports.send(charlie.hash, alice.new_message(DatabaseLookup(charlie.hash, alice.hash,
                                                                                 LookupType.ROUTER_INFO)))
            await wait_for(lambda: alice.hash in got, 10)
        finally:
            await alice.stop()
            await charlie.stop()


async def test_peer_test_with_pyi2p_as_bob_and_i2pd_as_charlie(ssu2_testnet, tmp_path):
    """Our Bob relays a peer test between our Alice and an SSU2-only i2pd Charlie: messages 2 and 3 with i2pd,
    Alice's RouterInfo forwarded to it, Charlie's to Alice; Alice learns OK from i2pd's message 5."""
    testnet = ssu2_testnet
    charlie_router = next(r for r in testnet.i2pd_routers if not r.ntcp2)
    charlie_hash = b64decode(charlie_router.ident_hash)
    with testnet.in_netns():
        bob = ssu2_router(testnet, tmp_path / "b", 24105, reseed=False)
        alice = ssu2_router(testnet, tmp_path / "a", 24106, reseed=False)
        await bob.start()
        await alice.start()
        try:
            (address,) = bob.netdb.add_router_info(charlie_router.router_info_path.read_bytes()).addresses_of("SSU2")
            assert "B" in address.caps
            assert await asyncio.wait_for(bob.transports.connect(charlie_hash), 20) is not None
            (at_bob,) = bob.router_info.addresses_of("SSU2")      # SSU2 surely: Bob publishes NTCP2 too
            to_bob = await alice.transports.ssu2.connect(at_bob.host, at_bob.port, peer_router_hash=bob.hash,
                                                         peer_static_key=at_bob.s, peer_intro_key=at_bob.i)
            result = await alice.transports.ssu2.peer_test(to_bob, alice.config.host, 24106)
            assert result == Reachability.OK
            relay = bob.transports.ssu2.relay
            assert relay.refused == 0 and not relay.as_bob            # message 3 came back from i2pd
            # Alice knew nobody: Charlie's RouterInfo came from Bob before message 4
            assert alice.transports.ssu2.router_info_of(charlie_hash) is not None
        finally:
            await alice.stop()
            await bob.stop()


async def test_i2pd_reaches_a_firewalled_pyi2p_through_a_pyi2p_introducer(ssu2_testnet, tmp_path):
    """Our Bob gives our firewalled Charlie a relay tag; an i2pd floodfill told to answer a lookup to Charlie
    dials him through Bob: its Relay Request, our Relay Intro and Response, our Hole Punch, its Session Request."""
    testnet = ssu2_testnet
    flood_router = next(r for r in testnet.i2pd_routers if not r.ntcp2)
    flood = b64decode(flood_router.ident_hash)
    with testnet.in_netns():
        bob = ssu2_router(testnet, tmp_path / "b", 24107, reseed=False)
        charlie = ssu2_router(testnet, tmp_path / "c", 24108, reseed=False, host=None)
        got = senders(charlie)
        await bob.start()
        await charlie.start()
        try:
            charlie.netdb.add_router_info(bob.router_info.to_bytes())
            to_bob = await asyncio.wait_for(charlie.transports.connect(bob.hash), 20)
            assert to_bob is not None
            await wait_for(lambda: charlie.transports.ssu2.introducers(), 10)
            assert charlie.transports.refresh_introducers()
            assert bob.netdb.add_router_info(flood_router.router_info_path.read_bytes()) is not None
            # the floodfill learns Bob and Charlie, then answers a lookup "from" Charlie straight to him
            for ri in (bob.router_info, charlie.router_info):
                bob.transports.send(flood, bob.new_message(DatabaseStore.for_router_info(ri.hash, ri.to_bytes())))
            await asyncio.sleep(1.0)
            bob.transports.send(flood, bob.new_message(DatabaseLookup(flood, charlie.hash, LookupType.ROUTER_INFO)))
            await wait_for(lambda: flood in charlie.transports.sessions, 30)
            conn = charlie.transports.sessions[flood]
            assert conn.inbound and conn.transport_style == "SSU2"
            await wait_for(lambda: flood in got, 10)
            introducer = bob.transports.ssu2.introducer
            assert introducer.refused == 0 and introducer.introduced == 1
            assert charlie.transports.ssu2.introduced.hole_punches == 1
        finally:
            await charlie.stop()
            await bob.stop()


async def test_a_stream_through_ssu2_only_i2pd_hops(ssu2_testnet, tmp_path):
    """Two pyi2p destinations on two pyi2p routers whose 1-hop tunnels all go through the SSU2-only i2pd
    routers: the LeaseSet lookup, the SYN and the data all cross SSU2 sessions."""
    testnet = ssu2_testnet
    only_ssu2 = {b64decode(r.ident_hash) for r in testnet.i2pd_routers if not r.ntcp2}
    options = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "2", "outbound.quantity": "2",
               "i2cp.leaseSetEncType": "4"}
    payload = bytes(range(256)) * 256                 # 64 KiB
    # a path from one SSU2-only hop to the other needs those two i2pd routers in session with each other: at
    # start both dial at once and i2pd 2.58 drops both handshakes ("Unexpected message type 11 instead 9"),
    # then redials only after about 75 s. Not our link: wait for it (bounded) before counting our time.
    await asyncio.to_thread(wait_for_i2pd_links, testnet, [r for r in testnet.i2pd_routers if not r.ntcp2], 240)
    with testnet.in_netns():
        routers = [ssu2_router(testnet, tmp_path / name, port) for name, port in (("sa", 24110), ("sb", 24111))]
        for router in routers:
            router.tunnel_settings = TunnelSettings(exploratory_length=1, ip_restriction=0, tick_s=0.2)
        sessions, streams = [], []
        try:
            for router in routers:
                await router.start()
                service = router.tunnel_service       # hops: the SSU2-only i2pd routers and no one else
                usable = service._usable_hop
                service._usable_hop = lambda ri, ssu2=False, usable=usable: ri.hash in only_ssu2 and usable(ri, ssu2)
                service._tiers = None
            for router in routers:
                sessions.append(await router.client.open_session(options=options, name="ssu2-stream"))
            for session in sessions:
                await asyncio.wait_for(session.wait_published(), 120)
            now = sessions[0].clock.monotonic()
            for router, session in zip(routers, sessions):
                hops = {hop for pool in session._handle for t in pool.core.usable(now) for hop in t.hops}
                assert hops and hops <= only_ssu2, (hops, only_ssu2)
                # a 1-hop tunnel's only hop is in session with us, over SSU2 (the only transport it has)
                conns = [router.transports.sessions.get(hop) for hop in hops]
                assert any(c is not None for c in conns)
                assert all(c.transport_style == "SSU2" for c in conns if c is not None)
            streams = [open_stream_session(session) for session in sessions]
            got: asyncio.Future = asyncio.get_running_loop().create_future()

            async def echo(reader, writer):
                data = await reader.readexactly(len(payload))
                writer.write(hashlib.sha256(data).digest())
                await writer.drain()
                writer.close()
                if not got.done():
                    got.set_result(len(data))
            server = await streams[1].start_server(echo)
            started = time.monotonic()
            reader, writer = None, None
            for _ in range(3):                        # the first lookup may meet a floodfill not yet stored
                try:
                    reader, writer = await asyncio.wait_for(streams[0].open_connection(streams[1].destination), 60)
                    break
                except (ConnectionError, TimeoutError):
                    await asyncio.sleep(5)
            assert writer is not None, "no stream through the SSU2-only hops"
            writer.write(payload)
            await writer.drain()
            answer = await asyncio.wait_for(reader.readexactly(32), 90)
            assert answer == hashlib.sha256(payload).digest() and await got == len(payload)
            print(f"\n64 KiB through SSU2-only i2pd hops and back its hash in {time.monotonic() - started:.1f} s")
            writer.close()
            server.close()
        finally:
            for stream in streams:
                await stream.close()
            for session in sessions:
                await session.close()
            for router in routers:
                await router.stop()
