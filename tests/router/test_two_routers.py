"""Two pyi2p routers on loopback: one dials the other from a reseed, both learn each other's RouterInfo."""
import asyncio
import shutil
import socket

from core.config import load_config
from core.router import Router


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate, timeout=15.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_dial_publish_and_learn(tmp_path):
    a = Router(load_config(tmp_path / "a", {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                            "floodfill": True, "control_port": 0}))
    await a.start()
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copy(tmp_path / "a" / "router.info", seed / "routerInfo-a.dat")
    b = Router(load_config(tmp_path / "b", {"netid": 42, "reseed_file": str(seed), "control_port": 0}))
    try:
        await b.start()
        assert b.netdb.get_router_info(a.hash) is not None
        await wait_for(lambda: b.hash in a.transports.sessions and a.netdb.get_router_info(b.hash) is not None)
        assert a.hash in b.transports.sessions
        assert a.netdb.get_router_info(b.hash).to_bytes() == b.router_info.to_bytes()
        (peer,) = a.peers()
        # b publishes no host: short of introducers, it dials a (which introduces, "C") over SSU2 for a relay tag
        assert peer.router_hash == b.hash and peer.inbound and peer.transport == "SSU2"
        snapshot = b.snapshot()
        assert snapshot.active_peers == 1 and snapshot.known_routers == 1 and snapshot.floodfills == 1
    finally:
        await b.stop()
        await a.stop()
    assert not a.transports.sessions and not b.transports.sessions


async def test_failed_dial_is_recorded_in_the_peer_profile(tmp_path):
    a = Router(load_config(tmp_path / "a", {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                            "floodfill": True, "control_port": 0}))
    await a.start()
    await a.stop()                       # a's RouterInfo names a port nobody listens on any more
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copy(tmp_path / "a" / "router.info", seed / "routerInfo-a.dat")
    b = Router(load_config(tmp_path / "b", {"netid": 42, "reseed_file": str(seed), "control_port": 0}))
    await b.start()
    try:
        # b (no host) tries SSU2 first for a relay tag: its handshake gives up after 20 s, then NTCP2 fails at once
        await wait_for(lambda: b.profiles.get(a.hash) is not None
                       and b.profiles.get(a.hash).connect_failures >= 1, timeout=35)
        assert a.hash not in b.transports.sessions
    finally:
        await b.stop()


async def test_simultaneous_dials_lose_no_message(tmp_path):
    """Both routers dial each other at once; every message sent on either session arrives."""
    from core.i2np.messages import DeliveryStatus
    routers = {}
    for name in ("a", "b"):
        routers[name] = Router(load_config(tmp_path / name, {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                                             "control_port": 0}))
        await routers[name].start()
    a, b = routers["a"], routers["b"]
    got = {"a": [], "b": []}
    for name, router in routers.items():
        original = router.handle_message

        def record(peer, message, name=name, original=original):
            if message.type == DeliveryStatus.TYPE:
                got[name].append(message.msg_id)
            else:
                original(peer, message)
        router.handle_message = record
        router.transports._on_message = record
    try:
        a.netdb.add_router_info(b.router_info)
        b.netdb.add_router_info(a.router_info)
        for i in range(1, 21):
            a.transports.send(b.hash, a.new_message(DeliveryStatus(i, 0)))
            b.transports.send(a.hash, b.new_message(DeliveryStatus(i, 0)))
        await wait_for(lambda: len(got["a"]) == 20 and len(got["b"]) == 20, timeout=15)
    finally:
        await a.stop()
        await b.stop()
