"""Real pyi2p routers for client tests: the netDb and transports of core.router, a TunnelService attached
in front of the router's message dispatch, and a ClientAPI over both (RouterNetwork)."""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from core.client import ClientAPI, RouterNetwork
from core.config import load_config
from core.crypto.x25519 import X25519Keypair
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
    """A router, its tunnel service (once started) and its client API."""

    router: Router
    tunnels: TunnelService | None = None
    api: ClientAPI | None = None
    unclaimed: list = field(default_factory=list)

    @property
    def hash(self) -> bytes:
        return self.router.hash

    def attach(self) -> None:
        """Before Router.start(): offer every message to the tunnel service first."""
        dispatch = self.router.handle_message

        def handle_message(peer, message):
            if self.tunnels is None or not self.tunnels.handle_message(peer, message):
                dispatch(peer, message)
        self.router.handle_message = handle_message

    async def start_tunnels(self, settings: TunnelSettings = SETTINGS) -> None:
        """After Router.start(): the tunnel service, and the ClientAPI over it and the netDb service."""
        r = self.router
        self.tunnels = TunnelService(router_hash=r.hash, static_key=X25519Keypair(r.keys.keys.private_key),
                                     send=r.transports.send, netdb=r.netdb, clock=r.clock, rng=r.rng,
                                     profiles=r.profiles, settings=settings)
        self.tunnels.on_local_message = self._local_message
        await self.tunnels.start()
        self.api = ClientAPI(RouterNetwork(self.tunnels, r.netdb_service), clock=r.clock, rng=r.rng)

    def _local_message(self, message) -> None:
        """Router-level messages out of exploratory tunnels (netDb replies) go to the netDb service."""
        from core.i2np import parse_payload
        try:
            if self.router.netdb_service.handle(self.router.hash, parse_payload(message)):
                return
        except Exception:
            pass
        self.unclaimed.append(message)

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.close()
        if self.tunnels is not None:
            await self.tunnels.stop()
        await self.router.stop()


def make_router(tmp_path, name: str, floodfill: bool = False, host: str = "127.0.0.1") -> ClientRouter:
    router = Router(load_config(tmp_path / name, {"netid": 42, "host": host, "port": free_port(),
                                                  "floodfill": floodfill, "control_port": 0}))
    node = ClientRouter(router)
    node.attach()
    return node


async def start_network(nodes: list[ClientRouter]) -> None:
    """Start all, let every router know every other, connect each pair once, then start tunnels."""
    for node in nodes:
        await node.router.start()
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.router.netdb.add_router_info(other.router.router_info)
    for i, node in enumerate(nodes):
        for other in nodes[i + 1:]:
            assert await node.router.transports.connect(other.hash) is not None
    for node in nodes:
        await node.start_tunnels()


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
