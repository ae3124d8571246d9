"""An in-memory stand-in for tunnels and the netDb: each 'router' has fake inbound tunnels whose
gateway is itself; a send goes straight to the session owning the (gateway, tunnel id) lease."""
from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from core.data.leaseset import AnyLeaseSet, LeaseSet2
from core.i2np import I2NPMessage, decode_standard, encode_standard


@dataclass
class FakePools:
    name: str
    on_message: Callable[[I2NPMessage], None]
    leases: list[tuple[bytes, int, float]] = field(default_factory=list)
    closed: bool = False


class FakeWorld:
    def __init__(self, clock, *, lease_count: int = 2):
        self.clock = clock
        self.lease_count = lease_count
        self.tunnels: dict[tuple[bytes, int], FakePools] = {}
        self.netdb: dict[bytes, AnyLeaseSet] = {}
        self.lookups: Counter[bytes] = Counter()
        self.publications: list[LeaseSet2] = []
        self.delivered = 0
        self.tap: Callable[[I2NPMessage], I2NPMessage | None] | None = None
        """Sees every message in flight; may replace it, or drop it by returning None."""

    def network(self, name: str) -> "FakeNetwork":
        return FakeNetwork(self, os.urandom(32), name)

    def deliver(self, gateway: bytes, tunnel_id: int, message: I2NPMessage) -> bool:
        pools = self.tunnels.get((gateway, tunnel_id))
        if pools is None or pools.closed:
            return True   # lost in the network, as a real send would be
        message = decode_standard(encode_standard(message))
        if self.tap is not None:
            message = self.tap(message)
            if message is None:
                return True
        self.delivered += 1
        asyncio.get_running_loop().call_soon(pools.on_message, message)
        return True


class FakeNetwork:
    def __init__(self, world: FakeWorld, router_hash: bytes, name: str):
        self.world = world
        self.router_hash = router_hash
        self.name = name
        self.publish_confirmations = 1

    def open_pools(self, name, options, on_message):
        pools = FakePools(name, on_message)
        for _ in range(self.world.lease_count):
            self.add_lease(pools)
        return pools

    def add_lease(self, pools: FakePools, lifetime: float = 600.0) -> tuple[bytes, int, float]:
        tunnel_id = int.from_bytes(os.urandom(4), "big") or 1
        lease = (self.router_hash, tunnel_id, self.world.clock.time() + lifetime)
        pools.leases.append(lease)
        self.world.tunnels[(self.router_hash, tunnel_id)] = pools
        return lease

    def close_pools(self, handle: FakePools) -> None:
        handle.closed = True

    def leases(self, handle: FakePools):
        return list(handle.leases)

    def send(self, handle: FakePools, message: I2NPMessage, gateway: bytes, tunnel_id: int) -> bool:
        return self.world.deliver(gateway, tunnel_id, message)

    async def lookup_leaseset(self, handle, dest_hash: bytes, *, fresh: bool = False):
        self.world.lookups[dest_hash] += 1
        await asyncio.sleep(0)
        return self.world.netdb.get(dest_hash)

    async def publish_leaseset(self, handle, leaseset: LeaseSet2) -> int:
        await asyncio.sleep(0)
        self.world.publications.append(leaseset)
        if self.publish_confirmations:
            self.world.netdb[leaseset.hash] = leaseset
        return self.publish_confirmations
