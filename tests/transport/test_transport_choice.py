"""The manager's transport choice with both NTCP2 and SSU2 on: NTCP2 first where the peer publishes both, SSU2
first only while firewalled and short of introducers, or for a while after NTCP2 failed and SSU2 worked."""
import asyncio

from core.clock import FakeClock, SystemClock
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.routerinfo import RouterAddress, RouterInfo
from core.i2np.header import I2NPMessage
from core.transport.manager import TransportManager, TransportSettings
from core.transport.ssu2.driver import SSU2Connection

from .ssu2_support import make_ssu2_router

NETID = 42
NTCP2_KEY = X25519Keypair(bytes(range(32)))
NTCP2_IV = bytes(16)


def dual_stack(name, clock, port, *, ntcp2_port=None, caps=None):
    """A router publishing SSU2 and NTCP2 (the manager's NTCP2 key and IV) on `port`."""
    router = make_ssu2_router(name, clock, port=port, caps=caps)
    ntcp2 = RouterAddress.create("NTCP2", {"host": "127.0.0.1", "port": str(ntcp2_port or port), "v": "2",
                                           "s": b64encode(NTCP2_KEY.public_bytes), "i": b64encode(NTCP2_IV)})
    ri = router.router_info
    router.router_info = RouterInfo.create(ri.identity, router.signing_private, ri.published,
                                           [*ri.addresses, ntcp2], ri.options)
    return router


def make_manager(router, infos, inbox, clock, **settings):
    return TransportManager(
        router_hash=router.router_hash, static_key=NTCP2_KEY, iv=NTCP2_IV, netid=NETID,
        router_info=lambda: router.router_info.to_bytes(), lookup_router_info=infos.get,
        on_message=lambda peer, m: inbox.append((peer, m)), on_router_info=lambda *a: None, clock=clock,
        ssu2_keys=(router.static_key, router.intro_key), settings=TransportSettings(**settings))


async def test_ntcp2_first_where_both_are_published_ssu2_after_ntcp2_failed():
    clock = FakeClock(SystemClock().time())
    alice = make_ssu2_router("alice", clock)
    peer = dual_stack("peer", clock, 4000, caps="BC")
    mgr = make_manager(alice, {}, [], clock)
    await mgr.start("127.0.0.1", 0)
    try:
        for _ in range(32):       # whatever the random bytes: no coin toss any more
            assert [style for style, _ in mgr._dial_choices(peer.router_info)] == ["NTCP2", "SSU2"]
        mgr._remember_ntcp2_failure(peer.router_hash)
        assert [style for style, _ in mgr._dial_choices(peer.router_info)] == ["SSU2", "NTCP2"]
        clock.advance(mgr.settings.ntcp2_failure_memory_s + 1)
        assert [style for style, _ in mgr._dial_choices(peer.router_info)] == ["NTCP2", "SSU2"]
        assert not mgr._ntcp2_failed
        for k in range(mgr.settings.max_connections * 4 + 10):      # bounded
            mgr._remember_ntcp2_failure(bytes([k & 0xFF, k >> 8]) * 16)
        assert len(mgr._ntcp2_failed) == mgr.settings.max_connections * 4
    finally:
        await mgr.stop()


async def test_firewalled_router_dials_introducers_over_ssu2_first():
    clock = FakeClock(SystemClock().time())
    alice = make_ssu2_router("alice", clock, host=None)
    introducer = dual_stack("bob", clock, 4000, caps="BC")
    plain = dual_stack("carol", clock, 4010, caps="B")
    mgr = make_manager(alice, {}, [], clock)
    await mgr.start(None, 0)          # no host: firewalled, wants relay tags
    try:
        assert [style for style, _ in mgr._dial_choices(introducer.router_info)] == ["SSU2", "NTCP2"]
        assert [style for style, _ in mgr._dial_choices(plain.router_info)] == ["NTCP2", "SSU2"]
    finally:
        await mgr.stop()


async def send_and_wait(sender, receiver_hash, inbox, msg_id):
    expires = int(SystemClock().time() * 1000) + 60_000
    assert sender.send(receiver_hash, I2NPMessage(20, msg_id, expires, b"m" * 3000))
    async with asyncio.timeout(10):
        while not any(m.msg_id == msg_id for _, m in inbox):
            await asyncio.sleep(0.02)


async def test_dial_uses_ntcp2_then_ssu2_when_ntcp2_is_unreachable():
    clock = SystemClock()
    infos, a_in, b_in = {}, [], []
    bob = make_ssu2_router("bob", clock)
    bob_mgr = make_manager(bob, infos, b_in, clock)
    await bob_mgr.start("127.0.0.1", 0)
    port = bob_mgr.listen_port
    assert bob_mgr.ssu2.port == port             # both transports on one port number
    bob = dual_stack("bob", clock, port)
    bob_mgr._router_info = bob.router_info.to_bytes
    bob_mgr.router_hash = bob.router_hash
    alice = dual_stack("alice", clock, 1)
    alice_mgr = make_manager(alice, infos, a_in, clock)
    await alice_mgr.start("127.0.0.1", 0)
    infos[alice.router_hash] = alice.router_info
    try:
        infos[bob.router_hash] = bob.router_info
        await send_and_wait(alice_mgr, bob.router_hash, b_in, 1)
        assert alice_mgr.sessions[bob.router_hash].transport_style == "NTCP2"
        await alice_mgr.sessions[bob.router_hash].close()
        # Bob's NTCP2 moves to a port where nothing listens: the dial falls back to SSU2 and remembers it
        closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        dead_port = closed.sockets[0].getsockname()[1]
        closed.close()
        await closed.wait_closed()
        infos[bob.router_hash] = dual_stack("bob", clock, port, ntcp2_port=dead_port).router_info
        async with asyncio.timeout(5):
            while bob.router_hash in alice_mgr.sessions:
                await asyncio.sleep(0.02)
        await send_and_wait(alice_mgr, bob.router_hash, b_in, 2)
        assert isinstance(alice_mgr.sessions[bob.router_hash], SSU2Connection)
        assert [s for s, _ in alice_mgr._dial_choices(infos[bob.router_hash])] == ["SSU2", "NTCP2"]
    finally:
        await alice_mgr.stop()
        await bob_mgr.stop()


async def test_a_session_of_the_other_transport_is_kept_beside_the_ntcp2_one_and_takes_over():
    """i2pd keeps an NTCP2 and an SSU2 session with a peer at once (it comes over SSU2 for peer tests): neither
    closes the other; we send on NTCP2, and the SSU2 session carries on when NTCP2 closes."""
    clock = SystemClock()
    infos, a_in, b_in = {}, [], []
    managers = []
    try:
        routers = []
        for name in ("alice", "bob"):
            probe = make_ssu2_router(name, clock)
            mgr = make_manager(probe, infos, a_in if name == "alice" else b_in, clock)
            await mgr.start("127.0.0.1", 0)
            managers.append(mgr)
            router = dual_stack(name, clock, mgr.listen_port)
            mgr._router_info = router.router_info.to_bytes
            mgr.router_hash = router.router_hash
            infos[router.router_hash] = router.router_info
            routers.append(router)
        (alice_mgr, bob_mgr), (alice, bob) = managers, routers
        await send_and_wait(alice_mgr, bob.router_hash, b_in, 1)
        ntcp2 = alice_mgr.sessions[bob.router_hash]
        assert ntcp2.transport_style == "NTCP2"
        # Bob comes over SSU2 as well (as i2pd does for a peer test)
        address = alice_mgr._dial_choices(alice.router_info)[1][1]
        ssu2 = await bob_mgr._dial_one("SSU2", address, alice.router_hash)
        bob_mgr._register(ssu2)
        async with asyncio.timeout(5):
            while alice_mgr._ssu2_session(bob.router_hash) is None:
                await asyncio.sleep(0.02)
        assert alice_mgr.sessions[bob.router_hash] is ntcp2 and not ntcp2.closed      # NTCP2 still sent on
        assert bob_mgr.sessions[alice.router_hash].transport_style == "NTCP2"
        assert bob_mgr._secondary[alice.router_hash] is ssu2
        await asyncio.sleep(0.2)
        assert not ntcp2.closed and not ssu2.closed
        await send_and_wait(alice_mgr, bob.router_hash, b_in, 2)
        assert alice_mgr.sessions[bob.router_hash] is ntcp2
        # NTCP2 closes: the SSU2 session carries the next message, no new dial
        await ntcp2.close()
        async with asyncio.timeout(5):
            while not isinstance(alice_mgr.sessions.get(bob.router_hash), SSU2Connection):
                await asyncio.sleep(0.02)
        await send_and_wait(alice_mgr, bob.router_hash, b_in, 3)
        assert isinstance(alice_mgr.sessions[bob.router_hash], SSU2Connection)
        assert not alice_mgr._secondary
    finally:
        for mgr in managers:
            await mgr.stop()
