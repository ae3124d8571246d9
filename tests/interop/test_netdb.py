"""The netDb against real i2pd 2.45.1 on the private testnet: exploration, pyi2p as the floodfill (publication to
i2pd's floodfills, with each i2pd version: test_i2pd_uses_pyi2p.py)."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from core.config import load_config
from core.data.encoding import b64decode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.router import Router
from core.tunnel.service import TunnelSettings
from pyi2p.testnet import Testnet, netdb_file, private_netns_name

pytestmark = pytest.mark.interop


async def wait_for(predicate, timeout: float, step: float = 0.2):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def i2pd_hashes(testnet) -> dict[bytes, str]:
    return {b64decode(r.ident_hash): r.name for r in testnet.i2pd_routers}


def one_router_seed(testnet, tmp_path: Path, name: str) -> Path:
    """A reseed folder holding one router's RouterInfo only."""
    seed = tmp_path / f"seed-{name}"
    seed.mkdir()
    router = testnet.router(name)
    shutil.copy(router.router_info_path, seed / f"routerInfo-{router.ident_hash}.dat")
    return seed


def new_router(testnet, datadir: Path, address: str, port: int, seed: Path, floodfill: bool = False,
               tunnels: bool = True) -> Router:
    """A router of the testnet; without `tunnels` its exploratory tunnels are zero-hop, so it dials nobody
    on its own beyond its netDb work."""
    settings = None if tunnels else TunnelSettings(exploratory_length=0, exploratory_quantity=1, ip_restriction=0)
    return Router(load_config(datadir, {"netid": testnet.netid, "host": address, "port": port,
                                        "reseed_file": str(seed), "floodfill": floodfill, "control_port": 0}),
                  tunnel_settings=settings)


async def test_exploration_from_one_floodfill_finds_every_router(testnet, tmp_path):
    """Seeded with r1 alone, exploration (and searches that meet floodfills) finds every i2pd router."""
    i2pd = i2pd_hashes(testnet)
    address = testnet.add_pyi2p_address()
    with testnet.in_netns():
        router = new_router(testnet, tmp_path / "explorer", address, 24100, one_router_seed(testnet, tmp_path, "r1"))
        started = time.monotonic()
        await router.start()
        try:
            assert set(router.netdb.router_infos) == {b64decode(testnet.router("r1").ident_hash)}
            seen: dict[str, float] = {}

            def progress() -> bool:
                for h in router.netdb.router_infos:
                    if h in i2pd:
                        seen.setdefault(i2pd[h], round(time.monotonic() - started, 1))
                return set(i2pd) <= set(router.netdb.router_infos)
            await wait_for(progress, 50)
            elapsed = time.monotonic() - started
            print(f"\nknew all {len(i2pd)} i2pd routers {elapsed:.1f} s after start "
                  f"({router.netdb_service.stats['explorations']} explorations; {seen})")
            assert router.netdb_service.stats["explorations"] >= 1
            assert all(ri.verify() for ri in router.netdb.router_infos.values())
        finally:
            await router.stop()


def floodfill_config(datadir: Path, port: int, netid: int) -> None:
    """`pyi2p run` reads config.toml from its data dir: this makes the harness's p1 a floodfill."""
    datadir.mkdir(parents=True, exist_ok=True)
    (datadir / "config.toml").write_text(f"port = {port}\nnetid = {netid}\nfloodfill = true\n")


@pytest.fixture(scope="module")
def pyi2p_floodfill_net(testnet_requirements, tmp_path_factory):
    """3 i2pd routers and one pyi2p router, the only floodfill; the i2pd routers restart once it runs,
    so their first publication (i2pd publishes at start, and does not retry with a single floodfill) finds it."""
    base = tmp_path_factory.mktemp("ffnet")
    net = Testnet(base, i2pd_count=3, pyi2p_count=1, floodfills=0, netns=private_netns_name("f"),
                  first_port=21000, address_prefix="198.18.1", die_with_parent=True)
    p1 = net.router("p1")
    floodfill_config(Path(p1.datadir), p1.port, net.netid)
    try:
        net.up(wait=0)
        for r in net.i2pd_routers:
            if r.running:
                os.kill(r.pid, 15)
        deadline = time.monotonic() + 20
        while any(r.running for r in net.i2pd_routers) and time.monotonic() < deadline:
            time.sleep(0.1)
        net.up(wait=100)
    except BaseException:
        net.down()
        raise
    yield net
    net.down()


def seeded_published(net: Testnet, name: str) -> int:
    with zipfile.ZipFile(net.seed_file) as z:
        return RouterInfo.parse(z.read(f"routerInfo-{net.router(name).ident_hash}.dat")).published


def p1_has_newer_copy(net: Testnet, name: str, seeded: int) -> bool:
    """p1 stored a newer RouterInfo of `name` than the harness seeded: the router published it to p1."""
    path = netdb_file(net.router("p1").datadir, net.router(name).ident_hash)
    try:
        return RouterInfo.parse(path.read_bytes()).published > seeded
    except (OSError, ProtocolError):
        return False


async def test_i2pd_publishes_to_and_looks_up_through_a_pyi2p_floodfill(pyi2p_floodfill_net, tmp_path):
    net = pyi2p_floodfill_net
    names = [r.name for r in net.i2pd_routers]
    seeded = {name: seeded_published(net, name) for name in names}
    # every i2pd router published its RouterInfo to p1 (a newer copy than the seed) and got the DeliveryStatus
    await wait_for(lambda: all(p1_has_newer_copy(net, name, seeded[name]) for name in names), 40, step=1.0)
    def confirmed(r) -> bool:
        return "Publishing confirmed" in (Path(r.datadir) / "i2pd.log").read_text(errors="replace")
    await wait_for(lambda: all(confirmed(r) for r in net.i2pd_routers), 45, step=1.0)
    # a second floodfill that only p1 knows: i2pd's periodic searches (direct, as it is connected to p1) get
    # its hash in p1's search replies, and i2pd looks its RouterInfo up at p1
    before = {name: net.known_routers(name) for name in names}
    address = net.add_pyi2p_address()
    p1_hash = b64decode(net.router("p1").ident_hash)
    with net.in_netns():
        newcomer = new_router(net, tmp_path / "newcomer", address, 21500, one_router_seed(net, tmp_path, "p1"),
                              floodfill=True, tunnels=False)
        await newcomer.start()
        try:
            await wait_for(lambda: newcomer.netdb_service.published_to == [p1_hash], 20)
            dialled_first: set[str] = set()

            def learned() -> bool:
                # an i2pd router the newcomer dialled before it knew the newcomer proves nothing about p1
                for h, c in newcomer.transports.sessions.items():
                    if not c.inbound and h in names_by_hash and net.known_routers(names_by_hash[h]) <= before[
                            names_by_hash[h]]:
                        dialled_first.add(names_by_hash[h])
                return all(net.known_routers(name) > before[name] for name in names)
            names_by_hash = {b64decode(net.router(name).ident_hash): name for name in names}
            await wait_for(learned, 75, step=2.0)
            # at least one i2pd router learned of the newcomer without being dialled by it: through p1
            assert set(names) - dialled_first
            # and lookups from pyi2p through p1 find the i2pd routers
            for r in net.i2pd_routers:
                key = b64decode(r.ident_hash)
                newcomer.netdb.remove_router_info(key)
                ri = await asyncio.wait_for(newcomer.netdb_service.lookup_router_info(key), 20)
                assert ri is not None and ri.hash == key
        finally:
            await newcomer.stop()
