"""Real routers over NTCP2 on loopback: one floodfill, routers that publish, a newcomer that explores and finds all."""
import asyncio
import shutil
import socket

from core.config import load_config
from core.router import Router


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def make_router(tmp_path, name, seed_dir, floodfill=False):
    return Router(load_config(tmp_path / name, {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                                "floodfill": floodfill, "control_port": 0,
                                                "reseed_file": str(seed_dir) if seed_dir else None}))


async def test_publish_explore_and_find_everyone(tmp_path):
    floodfill = make_router(tmp_path, "ff", None, floodfill=True)
    await floodfill.start()
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copy(tmp_path / "ff" / "router.info", seed / "routerInfo-ff.dat")
    routers = [make_router(tmp_path, f"r{i}", seed) for i in range(3)]
    newcomer = make_router(tmp_path, "new", seed)
    started = [floodfill]
    try:
        for r in routers:
            await r.start()
            started.append(r)
        # every router's RouterInfo reaches the floodfill, which confirms with a DeliveryStatus
        await wait_for(lambda: all(r.netdb_service.published_to == [floodfill.hash] for r in routers))
        assert all(floodfill.netdb.get_router_info(r.hash) is not None for r in routers)
        await newcomer.start()
        started.append(newcomer)
        await wait_for(lambda: all(newcomer.netdb.get_router_info(r.hash) is not None for r in routers))
        assert newcomer.netdb_service.stats["explorations"] >= 1
        assert floodfill.netdb_service.stats["lookups_answered_reply"] >= 1
        # a lookup through the floodfill for a router the newcomer just learned of, from scratch
        newcomer.netdb.remove_router_info(routers[0].hash)
        ri = await asyncio.wait_for(newcomer.netdb_service.lookup_router_info(routers[0].hash), 15)
        assert ri is not None and ri.hash == routers[0].hash
        snapshot = newcomer.snapshot()
        assert snapshot.known_routers == 4 and snapshot.floodfills == 1
        assert newcomer.profiles.get(floodfill.hash).lookup_successes > 0
    finally:
        for r in reversed(started):
            await r.stop()
    assert list((tmp_path / "new" / "peerProfiles").rglob("profile-*.json"))
