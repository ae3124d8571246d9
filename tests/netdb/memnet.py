"""An in-memory network of NetDbServices under one FakeClock: messages go through a queue, with optional loss."""
from __future__ import annotations

from collections import deque

from core.i2np.registry import parse_payload
from core.netdb.profiles import ProfileStore
from core.netdb.service import NetDbService, NetDbSettings
from core.netdb.store import NetDb

from .factories import NETID, make_router, new_clock, seeded_rng


class Node:
    def __init__(self, net: "MemNet", seed: int, floodfill: bool):
        self.keys, self.router_info = make_router(seed, floodfill=floodfill, clock=net.clock)
        self.hash = self.router_info.hash
        self.db = NetDb(None, NETID, net.clock, own_hash=self.hash)
        self.profiles = ProfileStore(None, net.clock, seeded_rng(seed + 7))
        self.service = NetDbService(self.db, self.profiles, own_hash=self.hash,
                                    own_router_info=lambda: self.router_info,
                                    send=lambda peer, msg: net.send(self.hash, peer, msg), clock=net.clock,
                                    rng=seeded_rng(seed + 9), floodfill=floodfill, uptime=lambda: 0.0,
                                    settings=net.settings)
        self.received: list = []

    def knows(self, other: "Node") -> None:
        assert self.db.add_router_info(other.router_info) is not None


class MemNet:
    def __init__(self, settings: NetDbSettings = NetDbSettings()):
        self.clock = new_clock()
        self.settings = settings
        self.nodes: dict[bytes, Node] = {}
        self.queue: deque = deque()
        self.lost: set[bytes] = set()       # messages to these nodes vanish
        self.delivered = 0

    def add(self, seed: int, floodfill: bool = False) -> Node:
        node = Node(self, seed, floodfill)
        self.nodes[node.hash] = node
        return node

    def send(self, sender: bytes, peer: bytes, message) -> bool:
        if peer not in self.nodes:
            return False            # no RouterInfo/address: the transport refuses at once
        self.queue.append((sender, peer, message))
        return True

    def run(self, max_messages: int = 10_000) -> int:
        """Deliver until the queue is empty; returns how many were delivered."""
        count = 0
        while self.queue and count < max_messages:
            sender, peer, message = self.queue.popleft()
            count += 1
            if peer in self.lost:
                continue
            payload = parse_payload(message)
            node = self.nodes[peer]
            node.received.append((sender, payload))
            node.service.handle(sender, payload)
        self.delivered += count
        assert not self.queue, "message storm"
        return count

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move time on, letting every service time out and run its periodic work."""
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            for node in list(self.nodes.values()):
                node.service.periodic()
            self.run()
