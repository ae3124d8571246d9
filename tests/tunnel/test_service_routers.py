"""Real routers on 127.0.0.1 over NTCP2, each with a tunnel service wired the way the router will wire it."""
from __future__ import annotations

import asyncio
import socket

from core.config import load_config
from core.i2np import I2NPMessage, MessageType
from core.router import Router
from core.tunnel.service import TunnelService, TunnelSettings

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=2.0, tick_s=0.2)  # every router is on 127.0.0.1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_routers_build_test_and_use_exploratory_tunnels(tmp_path):
    routers = [Router(load_config(tmp_path / f"r{i}", {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                                       "control_port": 0}), tunnel_settings=SETTINGS)
               for i in range(5)]
    started: list[Router] = []
    local: list[I2NPMessage] = []
    try:
        for router in routers:
            await router.start()
            started.append(router)
        for router in routers:
            for other in routers:
                if other is not router:
                    router.netdb.add_router_info(other.router_info)
        services = [router.tunnel_service for router in routers]
        me = services[0]
        deliver = me.on_local_message
        me.on_local_message = lambda message: (local.append(message), deliver(message))

        def ready(service: TunnelService) -> bool:
            now = service.clock.monotonic()
            return all(sum(1 for t in pool.core.usable(now) if len(t.hops) == 2) >= 2
                       for pool in (service.exploratory_inbound, service.exploratory_outbound))
        await wait_for(lambda: ready(me), 30)
        await wait_for(lambda: me.stats["tests_passed"] >= 4, 20)
        assert me.stats["tests_failed"] == 0
        assert me.build_success_ratio() >= 0.9
        assert sum(s.participating_tunnels for s in services[1:]) >= 8
        # an I2NP message out of an outbound tunnel, into an inbound tunnel, back to the router
        now = me.clock.monotonic()
        inbound = me.exploratory_inbound.inbound[me.exploratory_inbound.core.pick(now).key]
        message = I2NPMessage(MessageType.DATA, 4242, int(me.clock.time() * 1000) + 60_000,
                              (5000).to_bytes(4, "big") + bytes(range(250)) * 20)
        assert me.send_via_outbound(None, message, to_router=inbound.gateway, to_tunnel=inbound.gateway_tunnel_id)
        await wait_for(lambda: message in local, 10)
    finally:
        for router in reversed(started):
            await router.stop()
