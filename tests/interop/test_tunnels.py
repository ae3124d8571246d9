"""Tunnels with real i2pd 2.45.1 on the private testnet: our builds through i2pd hops, mixed (i2pd's through ours,
with each i2pd version: test_i2pd_uses_pyi2p.py)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import random

import pytest

from core.config import load_config
from core.data.encoding import b64decode
from core.i2np import I2NPMessage, MessageType
from core.router import Router
from core.tunnel.service import TunnelService, TunnelSettings

pytestmark = [pytest.mark.interop,
              pytest.mark.i2pd_defect('i2pd builds tunnels only when its pools run short, so a build through us may come late')]

# every testnet router shares 198.18.0.0/16, so no IP restriction; short test intervals to see results soon
SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=5.0, build_timeout_s=15.0, tick_s=0.5)


async def wait_for(predicate, timeout: float, step: float = 0.2, state=lambda: None) -> None:
    """Poll `predicate`; on timeout fail with what `state()` tells of the router at that moment."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(step)
    except TimeoutError:
        raise AssertionError(f"not reached in {timeout} s: {state()}") from None


def i2pd_hashes(testnet) -> dict[bytes, str]:
    return {b64decode(r.ident_hash): r.name for r in testnet.i2pd_routers}


class PyRouter:
    """A pyi2p router in the testnet namespace with a tunnel service wired as the router will wire it."""

    def __init__(self, testnet, tmp_path, name: str, port: int, settings: TunnelSettings = SETTINGS):
        self.address = testnet.add_pyi2p_address()
        # caps X: i2pd's client pools prefer high-bandwidth peers
        config = load_config(tmp_path / name, {"netid": testnet.netid, "host": self.address, "port": port,
                                               "reseed_file": str(testnet.seed_file), "control_port": 0,
                                               "sam_port": 0, "bandwidth": "X"})
        self.router = Router(config, tunnel_settings=settings)
        self.service: TunnelService | None = None
        self.local: list[I2NPMessage] = []

    async def start(self) -> TunnelService:
        await self.router.start()
        self.service = self.router.tunnel_service
        deliver = self.service.on_local_message
        self.service.on_local_message = lambda message: (self.local.append(message), deliver(message))
        return self.service

    async def stop(self) -> None:
        await self.router.stop()


@contextlib.asynccontextmanager
async def running(*routers: PyRouter):
    started = []
    try:
        for r in routers:
            await r.start()
            started.append(r)
        yield
    finally:
        for r in reversed(started):
            await r.stop()


async def connect(router: Router, peer: bytes, attempts: int = 5) -> bool:
    """Dial with retries: our dials leave from the address they go to (all on the namespace's lo), and i2pd
    refuses a second handshake from one IP while another is pending, so two of our routers can collide."""
    for _ in range(attempts):
        if await router.transports.connect(peer) is not None:
            return True
        await asyncio.sleep(1.0)
    return False


@contextlib.asynccontextmanager
async def client_pools(testnet, nickname: str):
    """A transient SAM STREAM destination on every i2pd router, 3 hops each way, alive while the block runs.
    The SESSION CREATE reply (sent when the tunnels are up) is not awaited: only the builds it starts count."""
    writers = []
    try:
        for r in testnet.i2pd_routers:
            reader, writer = await asyncio.open_connection("127.0.0.1", testnet.sam_port(r))
            writers.append(writer)
            writer.write(b"HELLO VERSION MIN=3.0 MAX=3.1\n")
            await writer.drain()
            assert b"RESULT=OK" in await asyncio.wait_for(reader.readline(), 10)
            writer.write(f"SESSION CREATE STYLE=STREAM ID={nickname}-{os.urandom(3).hex()} DESTINATION=TRANSIENT "
                         "SIGNATURE_TYPE=7 inbound.length=3 outbound.length=3 inbound.quantity=3 "
                         "outbound.quantity=3\n".encode())
            await writer.drain()
        yield
    finally:
        for writer in writers:
            writer.close()


def multi_hop(pool, now: float, length: int | None = None) -> list:
    return [t for t in pool.core.usable(now) if t.hops and (length is None or len(t.hops) == length)]


def data_message(service: TunnelService, msg_id: int, size: int) -> I2NPMessage:
    return I2NPMessage(MessageType.DATA, msg_id, int(service.clock.time() * 1000) + 60_000,
                       (size - 4).to_bytes(4, "big") + random.randbytes(size - 4))


async def test_pyi2p_builds_and_tests_exploratory_tunnels_through_i2pd(testnet, tmp_path):
    """(a) 2-hop exploratory tunnels through i2pd hops (ShortTunnelBuild), tested, at >= 90% build success."""
    i2pd = i2pd_hashes(testnet)
    me = PyRouter(testnet, tmp_path, "a", 24100)
    with testnet.in_netns():
        async with running(me):
            service = me.service
            assert service is not None

            def ready() -> bool:
                now = service.clock.monotonic()
                return all(len(multi_hop(pool, now, 2)) >= 2
                           for pool in (service.exploratory_inbound, service.exploratory_outbound))
            await wait_for(ready, 45)
            now = service.clock.monotonic()
            for pool in (service.exploratory_inbound, service.exploratory_outbound):
                assert all(set(t.hops) <= set(i2pd) for t in multi_hop(pool, now))
            # both directions tested: a DeliveryStatus out through an i2pd OBEP, in through an i2pd IBGW
            await wait_for(lambda: all(p.core.stats.tests_passed >= 2 for p in
                                       (service.exploratory_inbound, service.exploratory_outbound)), 30)
            # more builds through every ordered pair of i2pd hops, both directions, for a meaningful ratio
            # (the first builds race the first NTCP2 sessions; the ratio is counted once the router has met them)
            pairs = [(a, b) for a in i2pd for b in i2pd if a != b]
            random.shuffle(pairs)
            before = service.summary()
            keys = await asyncio.gather(*(service.build_tunnel(pool, pair) for pair, pool in zip(
                pairs[:16], [service.exploratory_inbound, service.exploratory_outbound] * 8)))
            after = service.summary()
            sent = after["builds_sent"] - before["builds_sent"]
            succeeded = after["builds_succeeded"] - before["builds_succeeded"]
            assert sent >= 16 and succeeded / sent >= 0.9, (keys, after)
            assert sum(k is not None for k in keys) >= 15, keys
            assert service.stats["tests_failed"] <= 1, service.summary()
            # inbound builds left through our outbound tunnels: i2pd endpoints handed them to the gateways (a build
            # goes direct when every outbound tunnel ends at its gateway, with 2 tunnels among 5 i2pd: a few do)
            assert service.stats["builds_via_outbound"] >= 4, service.stats
            assert service.stats["garlic_opened"] >= 1  # outbound build replies came garlic-wrapped from i2pd


async def test_mixed_tunnels_of_pyi2p_and_i2pd_hops(testnet, tmp_path):
    """(c) pyi2p and i2pd hops next to each other in both orders, in inbound and outbound tunnels."""
    i2pd = list(i2pd_hashes(testnet))
    me = PyRouter(testnet, tmp_path, "c1", 24120)
    hop = PyRouter(testnet, tmp_path, "c2", 24130)
    with testnet.in_netns():
        async with running(hop):
            # the pyi2p hop meets every i2pd (its RouterInfo travels in the session) before we start
            for peer in i2pd:
                assert await connect(hop.router, peer)
            async with running(me):
                for peer in i2pd:  # so the last hop of an inbound tunnel can reach us without a lookup
                    assert await connect(me.router, peer)
                await mixed_tunnels(me, hop, i2pd)


async def mixed_tunnels(me: PyRouter, hop: PyRouter, i2pd: list[bytes]) -> None:
    service = me.service
    assert service is not None and hop.service is not None
    me.router.netdb.add_router_info(hop.router.router_info)
    await wait_for(lambda: multi_hop(service.exploratory_inbound, service.clock.monotonic()), 45)
    x, y = random.sample(i2pd, 2)
    b = hop.router.hash
    inbound_pool, outbound_pool = service.exploratory_inbound, service.exploratory_outbound
    orders = [(inbound_pool, [b, x]), (inbound_pool, [y, b]), (outbound_pool, [b, y]), (outbound_pool, [x, b])]

    async def build(pool, hops):
        # a build may be lost on the way (I2P expects a few percent); a path that works builds on a second try
        return await service.build_tunnel(pool, hops) or await service.build_tunnel(pool, hops)
    built = await asyncio.gather(*(build(pool, hops) for pool, hops in orders))
    assert all(k is not None for k in built), (built, service.summary(), hop.service.transit.stats)
    inbound_keys, outbound_keys = built[:2], built[2:]
    msg_id = 1000
    expected = []
    for out_key in outbound_keys:
        for in_key in inbound_keys:
            inbound = inbound_pool.inbound[in_key]
            for size in (200, 3000):  # one fragment and several
                msg_id += 1
                message = data_message(service, msg_id, size)
                expected.append(message)
                assert service.send_via_outbound(outbound_pool, message, to_router=inbound.gateway,
                                                 to_tunnel=inbound.gateway_tunnel_id, tunnel_key=out_key)
    await wait_for(lambda: all(m in me.local for m in expected), 20)
    assert hop.service.participating_tunnels >= 4
    assert hop.service.transit.stats.messages_forwarded >= len(expected)
