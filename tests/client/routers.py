"""Real pyi2p routers for client tests, each running its tunnel service and client API."""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from core.client import ClientAPI
from core.config import load_config
from core.router import Router
from core.tunnel.service import TunnelService, TunnelSettings

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=5.0, tick_s=0.2)   # every router on one /16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


@dataclass
class ClientRouter:
    """A router with its own tunnel service and client API (started with the router)."""

    router: Router

    @property
    def hash(self) -> bytes:
        return self.router.hash

    @property
    def tunnels(self) -> TunnelService:
        return self.router.tunnel_service

    @property
    def api(self) -> ClientAPI:
        return self.router.client

    async def stop(self) -> None:
        await self.router.stop()


def make_router(tmp_path, name: str, floodfill: bool = False, host: str = "127.0.0.1") -> ClientRouter:
    return ClientRouter(Router(load_config(tmp_path / name, {"netid": 42, "host": host, "port": free_port(),
                                                             "floodfill": floodfill, "control_port": 0}),
                               tunnel_settings=SETTINGS))


async def start_network(nodes: list[ClientRouter]) -> None:
    """Start all and let every router know every other."""
    for node in nodes:
        await node.router.start()
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.router.netdb.add_router_info(other.router.router_info)


def two_hop_leases(session) -> bool:
    """The session's LeaseSet is published and every lease is the gateway of a 2-hop tunnel."""
    if session.leaseset is None or session.leaseset_published_at is None:
        return False
    pools = session._handle
    now = session.clock.monotonic()
    usable = {pools[0].inbound[t.key].gateway_tunnel_id for t in pools[0].core.usable(now)
              if len(t.hops) == 2 and t.key in pools[0].inbound}
    outbound = [t for t in pools[1].core.usable(now) if len(t.hops) == 2]
    return bool(outbound) and all(lease.tunnel_id in usable for lease in session.leaseset.leases)
