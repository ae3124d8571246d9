"""Two transport managers whose routers publish only SSU2: the manager dials over SSU2 and I2NP flows both ways."""
import asyncio

from core.clock import SystemClock
from core.crypto.x25519 import X25519Keypair
from core.i2np.header import I2NPMessage
from core.transport.manager import TransportManager
from core.transport.ssu2.driver import dialable_ssu2

from .ssu2_support import make_ssu2_router

NETID = 42


def make_manager(router, infos, inbox):
    return TransportManager(
        router_hash=router.router_hash, static_key=X25519Keypair(bytes(32)), iv=bytes(16), netid=NETID,
        router_info=router.router_info.to_bytes, lookup_router_info=infos.get,
        on_message=lambda peer, m: inbox.append((peer, m)), on_router_info=lambda *a: None, clock=SystemClock(),
        ssu2_keys=(router.static_key, router.intro_key))


async def test_managers_talk_over_ssu2_when_only_ssu2_is_published():
    clock = SystemClock()
    infos, a_in, b_in = {}, [], []
    # Bob first: his RouterInfo names the port his manager got
    probe = make_ssu2_router("bob", clock)
    bob_mgr = make_manager(probe, infos, b_in)
    await bob_mgr.start("127.0.0.1", 0)
    bob = make_ssu2_router("bob", clock, port=bob_mgr.ssu2.port)
    bob_mgr._router_info = bob.router_info.to_bytes
    bob_mgr.router_hash = bob.router_hash
    alice = make_ssu2_router("alice", clock, port=1)
    alice_mgr = make_manager(alice, infos, a_in)
    await alice_mgr.start(None, 0)           # no published host: SSU2 only dials out
    infos[bob.router_hash] = bob.router_info
    infos[alice.router_hash] = alice.router_info
    assert dialable_ssu2(bob.router_info) is not None
    try:
        expires = int(clock.time() * 1000) + 60_000
        for i in range(20):
            assert alice_mgr.send(bob.router_hash, I2NPMessage(20, 500 + i, expires, bytes(100 * i + 1)))
        async with asyncio.timeout(10):
            while len(b_in) < 20:
                await asyncio.sleep(0.02)
        assert sorted(m.msg_id for _, m in b_in) == list(range(500, 520))
        assert all(peer == alice.router_hash for peer, _ in b_in)
        conn = alice_mgr.sessions[bob.router_hash]
        assert conn.transport_style == "SSU2" and not conn.inbound
        # Bob answers over the session Alice made
        assert bob_mgr.send(alice.router_hash, I2NPMessage(20, 9, expires, b"x" * 9000))
        async with asyncio.timeout(10):
            while not a_in:
                await asyncio.sleep(0.02)
        assert a_in[0][1].body == b"x" * 9000
        assert bob_mgr.sessions[alice.router_hash].inbound
    finally:
        await alice_mgr.stop()
        await bob_mgr.stop()
