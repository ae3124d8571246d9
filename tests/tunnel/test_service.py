"""The tunnel service over an in-memory network: exploratory pools built, tested, used, expired and rebuilt."""
from __future__ import annotations

import asyncio
from collections import defaultdict, deque

import pytest

from core.clock import FakeClock
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterAddress, RouterInfo
from core.i2np import DeliveryStatus, I2NPMessage, MessageType, TunnelGateway
from core.tunnel.events import SendToRouter
from core.tunnel.participant import TransitPolicy
from core.tunnel.pool import PoolConfig
from core.tunnel.service import EXPLORATORY, TunnelService, TunnelSettings

from .helpers import seeded_rng

NOW = 1_750_000_000.0
_KEYS: list[PrivateKeys] = []
_KEY_RNG = seeded_rng(4242)


def router_keys(count: int) -> list[PrivateKeys]:
    """The same keys every call (key generation dominates these tests otherwise)."""
    while len(_KEYS) < count:
        _KEYS.append(PrivateKeys.generate(rng=_KEY_RNG))
    return _KEYS[:count]


class MemoryNetDb:
    def __init__(self):
        self.router_infos: dict[bytes, RouterInfo] = {}

    def get_router_info(self, router_hash: bytes) -> RouterInfo | None:
        return self.router_infos.get(router_hash)


class RecordingProfiles:
    """Duck-typed profile store: remembers what the service reported."""

    def __init__(self):
        self.calls: list[tuple[str, bytes]] = []

    def __getattr__(self, name):
        if not name.startswith("record_tunnel_"):
            raise AttributeError(name)
        return lambda peer, *args: self.calls.append((name, peer))

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)


class Node:
    def __init__(self, network: "MemoryNetwork", index: int, keys: PrivateKeys, *, version: str = "0.9.57",
                 policy: TransitPolicy | None = None, settings: TunnelSettings | None = None, profiles=None):
        identity = keys.router_identity
        self.hash = identity.hash
        self.index = index
        address = RouterAddress.create("NTCP2", {"host": f"10.{index}.0.1", "port": str(9000 + index),
                                                 "s": b64encode(bytes([index]) * 32), "v": "2"})
        self.router_info = RouterInfo.create(identity, keys.signing_private_key, int(NOW * 1000), [address],
                                             {"caps": "OR", "netId": "42", "router.version": version})
        self.received: list[tuple[bytes, I2NPMessage]] = []  # messages no service handler took
        self.local: list[I2NPMessage] = []  # what came out of our exploratory tunnels or garlic
        self.profiles = profiles
        self.service = TunnelService(router_hash=self.hash, static_key=X25519Keypair(keys.private_key),
                                     send=network.sender(self.hash), netdb=network.netdb, clock=network.clock,
                                     rng=seeded_rng(1000 + index), profiles=profiles,
                                     settings=settings or network.settings, transit_policy=policy)
        self.service.on_local_message = self.local.append

    def receive(self, sender: bytes, message: I2NPMessage) -> None:
        if not self.service.handle_message(sender, message):
            self.received.append((sender, message))


class MemoryNetwork:
    """Routers that reach each other through a queue; every run is bounded in steps."""

    def __init__(self, count: int, *, settings: TunnelSettings | None = None, versions=None, policies=None,
                 profiles=None):
        self.clock = FakeClock(NOW)
        self.netdb = MemoryNetDb()
        self.settings = settings or TunnelSettings()
        self.queue: deque = deque()
        self.down: set[bytes] = set()
        self.drop = None  # optional filter(sender, target, message) -> True to lose a message
        self.traffic: defaultdict[bytes, int] = defaultdict(int)
        self.nodes: list[Node] = []
        self.by_hash: dict[bytes, Node] = {}
        for index, keys in enumerate(router_keys(count)):
            node = Node(self, index + 1, keys, version=(versions or {}).get(index, "0.9.57"),
                        policy=(policies or {}).get(index), profiles=(profiles or {}).get(index))
            self.nodes.append(node)
            self.by_hash[node.hash] = node
            self.netdb.router_infos[node.hash] = node.router_info

    def sender(self, source: bytes):
        def send(target: bytes, message: I2NPMessage) -> bool:
            if target not in self.by_hash or target in self.down:
                return False
            self.queue.append((source, target, message))
            return True
        return send

    def run(self, max_steps: int = 20_000) -> int:
        """Deliver until nothing moves; an empty queue ends an event-loop turn: gateways flush what they hold."""
        steps = 0
        while True:
            while self.queue:
                steps += 1
                assert steps <= max_steps, "network did not settle"
                source, target, message = self.queue.popleft()
                if target in self.down or (self.drop is not None and self.drop(source, target, message)):
                    continue
                self.traffic[target] += 1
                self.by_hash[target].receive(source, message)
            for node in self.nodes:
                node.service.flush_gateways()
            if not self.queue:
                return steps

    def tick(self, seconds: float = 0.0, nodes=None) -> None:
        if seconds:
            self.clock.advance(seconds)
        for node in nodes or self.nodes:
            node.service.tick()
            self.run()


def _multi_hop(pool, now):
    return [t for t in pool.core.usable(now) if t.hops]


def _settle(net: MemoryNetwork, rounds: int = 6, step: float = 1.0) -> None:
    for _ in range(rounds):
        net.tick(step)


def test_exploratory_pools_build_through_peers_and_pass_tests():
    net = MemoryNetwork(6)
    me = net.nodes[0].service
    net.tick()
    _settle(net)
    now = net.clock.monotonic()
    for pool in (me.exploratory_inbound, me.exploratory_outbound):
        tunnels = _multi_hop(pool, now)
        assert len(tunnels) >= 2, pool
        for tunnel in tunnels:
            assert len(tunnel.hops) == 2 and me.router_hash not in tunnel.hops
    assert me.build_success_ratio() == 1.0
    assert sum(node.service.participating_tunnels for node in net.nodes[1:]) >= 8
    # tests run every 30 s: a DeliveryStatus out one tunnel and back in through another
    net.tick(31.0)
    _settle(net, 2)
    assert me.stats["tests_passed"] >= 4 and me.stats["tests_failed"] == 0
    assert not net.nodes[0].local  # test replies are consumed, never handed to the router


def test_messages_both_directions_and_fragmented():
    net = MemoryNetwork(6)
    me_node = net.nodes[0]
    me = me_node.service
    _settle(net, 6)
    now = net.clock.monotonic()
    inbound = me.exploratory_inbound.inbound[_multi_hop(me.exploratory_inbound, now)[0].key]
    # out through an outbound tunnel to a router (ROUTER delivery at the endpoint)
    target = net.nodes[5]
    sizes = [30, 900, 3000, 20_000]
    sent = [I2NPMessage(MessageType.DATA, 500 + i, int(NOW * 1000) + 60_000,
                        (size - 4).to_bytes(4, "big") + bytes([i]) * (size - 4)) for i, size in enumerate(sizes)]
    for message in sent:
        assert me.send_via_outbound(None, message, to_router=target.hash)
    net.run()
    assert sorted((m for _, m in target.received if m.type == MessageType.DATA), key=lambda m: m.msg_id) == sent
    # out through an outbound tunnel into our own inbound tunnel (TUNNEL delivery), back to the router
    for message in sent:
        assert me.send_via_outbound(None, message, to_router=inbound.gateway, to_tunnel=inbound.gateway_tunnel_id)
    net.run()
    assert sorted((m for m in me_node.local if m.type == MessageType.DATA), key=lambda m: m.msg_id) == sent
    # inbound from a stranger: a TunnelGateway to our inbound gateway
    me_node.local.clear()
    stranger = net.nodes[5]
    gateway_message = I2NPMessage(MessageType.TUNNEL_GATEWAY, 77, int(NOW * 1000) + 60_000,
                                  TunnelGateway(inbound.gateway_tunnel_id, sent[3]).to_bytes())
    net.sender(stranger.hash)(inbound.gateway, gateway_message)
    net.run()
    assert me_node.local == [sent[3]]
    assert me.transit_bytes_per_tunnel() == 0.0  # we are no hop of our own tunnels
    assert any(node.service.transit_bytes_per_tunnel() > 0 for node in net.nodes[1:])


def test_tunnels_expire_and_are_rebuilt_before_expiry():
    net = MemoryNetwork(6)
    me = net.nodes[0].service
    _settle(net, 4)
    first = {t.key for pool in (me.exploratory_inbound, me.exploratory_outbound) for t in pool.core.tunnels}
    gaps = 0
    for _ in range(50):  # 25 minutes in 30 s steps: every tunnel expires at least twice
        net.tick(30.0)
        _settle(net, 2)
        now = net.clock.monotonic()
        for pool in (me.exploratory_inbound, me.exploratory_outbound):
            if len(_multi_hop(pool, now)) < 2:
                gaps += 1
    assert gaps == 0  # replacements were built before the old tunnels expired
    now = net.clock.monotonic()
    current = {t.key for pool in (me.exploratory_inbound, me.exploratory_outbound) for t in pool.core.tunnels}
    assert not current & first
    assert me.stats["builds_succeeded"] >= 4 * 3
    assert me.stats["tests_failed"] == 0 and me.stats["tests_passed"] > 50
    # transit tunnels expire too: at most the hops of every node's live tunnels and of those they replaced
    hops_in_use = sum(len(t.hops) for node in net.nodes for pool in node.service.pools for t in pool.core.tunnels)
    assert sum(node.service.participating_tunnels for node in net.nodes) <= 2 * hops_in_use
    assert all(node.service.stats["transit_expired"] > 0 for node in net.nodes)
    assert len(me._inbound_ends) <= 4 + 2  # our tunnel ends and a zero-hop reply tunnel or two


def test_dead_hop_fails_tests_retires_tunnels_and_builds_around_it():
    profiles = RecordingProfiles()
    net = MemoryNetwork(7, profiles={0: profiles})
    me = net.nodes[0].service
    _settle(net, 4)
    now = net.clock.monotonic()
    used = {hop for pool in (me.exploratory_inbound, me.exploratory_outbound) for t in _multi_hop(pool, now)
            for hop in t.hops}
    victim = sorted(used)[0]
    net.down.add(victim)
    for _ in range(12):   # builds through the dead hop time out and back off: a pool can wait ~3 minutes
        net.tick(31.0)
        _settle(net, 3)
    assert me.stats["tests_failed"] >= 1 and me.stats["tunnels_retired"] >= 1
    assert profiles.count("record_tunnel_drop") >= 1 and profiles.count("record_tunnel_accept") >= 8
    now = net.clock.monotonic()
    for pool in (me.exploratory_inbound, me.exploratory_outbound):
        # the pool's live tunnels, those between a failed test and its retest too (usable() leaves them out)
        tunnels = [t for t in pool.core.tunnels if t.hops and t.expires_at > now]
        assert len(tunnels) >= 2
        # every tunnel that still routes through the dead hop is young (built before the test caught it)
        assert all(victim not in t.hops or now - t.created_at < 90 for t in tunnels)


def test_rejecting_hops_lower_the_success_ratio_and_are_reported():
    profiles = RecordingProfiles()
    net = MemoryNetwork(5, policies={1: TransitPolicy(accept_tunnels=False)}, profiles={0: profiles})
    me = net.nodes[0].service
    _settle(net, 20, step=2.0)
    assert 0.0 < me.build_success_ratio() < 1.0
    assert me.stats["builds_rejected"] >= 1
    assert profiles.count("record_tunnel_reject") >= 1
    assert net.nodes[1].service.participating_tunnels == 0
    assert net.nodes[1].service.transit.stats.builds_rejected >= 1
    now = net.clock.monotonic()
    for pool in (me.exploratory_inbound, me.exploratory_outbound):
        assert all(net.nodes[1].hash not in t.hops for t in _multi_hop(pool, now))


def test_long_records_for_routers_before_short_builds():
    net = MemoryNetwork(4, versions={1: "0.9.48", 2: "0.9.48", 3: "0.9.48"})
    me = net.nodes[0].service
    long_builds = []
    net.drop = lambda s, t, m: long_builds.append(m.type) and False
    _settle(net, 4)
    assert MessageType.VARIABLE_TUNNEL_BUILD in long_builds and MessageType.SHORT_TUNNEL_BUILD not in long_builds
    assert len(_multi_hop(me.exploratory_outbound, net.clock.monotonic())) >= 2


def test_no_peers_gives_zero_hop_tunnels_then_real_ones():
    net = MemoryNetwork(4)
    me = net.nodes[0].service
    saved = dict(net.netdb.router_infos)
    net.netdb.router_infos.clear()
    net.tick()
    now = net.clock.monotonic()
    assert [t.hops for t in me.exploratory_inbound.core.usable(now)] == [()]
    assert [t.hops for t in me.exploratory_outbound.core.usable(now)] == [()]
    assert me.stats["builds_no_peers"] >= 2
    net.netdb.router_infos.update(saved)
    for _ in range(4):
        net.tick(11.0)  # the candidate list refreshes every 10 s
    now = net.clock.monotonic()
    assert len(_multi_hop(me.exploratory_inbound, now)) == 2 and len(_multi_hop(me.exploratory_outbound, now)) == 2
    # the zero-hop fallback still works for sending
    status = I2NPMessage.build(DeliveryStatus(1, 2), 3, int(NOW * 1000) + 10_000)
    assert me.send_via_outbound(None, status, to_router=net.nodes[1].hash)


def test_client_pools_pair_and_deliver_to_their_handler():
    net = MemoryNetwork(6)
    me_node = net.nodes[0]
    me = me_node.service
    inbound_pool = me.create_pool("client", PoolConfig(inbound=True, length=1, quantity=1))
    outbound_pool = me.create_pool("client", PoolConfig(inbound=False, length=3, quantity=1))
    assert inbound_pool.paired is outbound_pool and outbound_pool.paired is inbound_pool
    with pytest.raises(ValueError):
        me.create_pool("client", PoolConfig(inbound=True))
    got = []
    inbound_pool.on_message = lambda tunnel_id, message: got.append((tunnel_id, message))
    _settle(net, 6)
    now = net.clock.monotonic()
    assert [len(t.hops) for t in inbound_pool.core.usable(now)] == [1]
    assert [len(t.hops) for t in outbound_pool.core.usable(now)] == [3]
    leases = me.leases(inbound_pool)
    assert len(leases) == 1 and leases[0][0] in net.by_hash and leases[0][2] > NOW
    message = I2NPMessage(MessageType.DATA, 9, int(NOW * 1000) + 60_000, b"\x00\x00\x00\x02hi")
    assert me.send_via_outbound(outbound_pool, message, to_router=leases[0][0], to_tunnel=leases[0][1])
    net.run()
    assert [m for _, m in got] == [message] and not me_node.local
    with pytest.raises(ValueError):
        me.send_via_outbound(inbound_pool, message, to_router=leases[0][0])
    records = me.tunnel_records()
    assert {(r.pool, r.direction) for r in records} >= {("client", "inbound"), ("client", "outbound"),
                                                          (EXPLORATORY, "inbound"), (EXPLORATORY, "outbound")}
    assert all(r.state in ("established", "building", "expiring") for r in records)
    me.remove_pool(inbound_pool)
    assert me.pool("client", True) is None and outbound_pool.paired is None
    assert not me.leases(inbound_pool)


async def test_build_tunnel_through_chosen_hops():
    net = MemoryNetwork(5)
    me = net.nodes[0].service
    hops = [net.nodes[3].hash, net.nodes[1].hash]
    task = asyncio.ensure_future(me.build_tunnel(me.exploratory_inbound, hops))
    await asyncio.sleep(0)
    net.run()
    assert await asyncio.wait_for(task, 1)
    assert [t.hops for t in me.exploratory_inbound.core.tunnels] == [tuple(hops)]
    # a hop we know nothing of: refused at once
    assert not await me.build_tunnel(me.exploratory_outbound, [b"\x09" * 32])
    # an unanswered build resolves False on timeout
    net.down.add(net.nodes[2].hash)
    task = asyncio.ensure_future(me.build_tunnel(me.exploratory_outbound, [net.nodes[2].hash]))
    await asyncio.sleep(0)
    net.run()
    net.clock.advance(31.0)
    me.tick()
    assert not await asyncio.wait_for(task, 1)
    assert me.stats["builds_timed_out"] == 1


async def test_a_gateway_sends_what_one_loop_turn_brought_in_shared_tunnel_messages_in_order():
    net = MemoryNetwork(4)
    me, gateway = net.nodes[0], net.nodes[1]
    task = asyncio.ensure_future(me.service.build_tunnel(me.service.exploratory_inbound, [gateway.hash]))
    await asyncio.sleep(0)
    net.run()
    receive_id = await asyncio.wait_for(task, 1)
    tunnel_id = me.service.exploratory_inbound.inbound[receive_id].gateway_tunnel_id
    expiration = int(net.clock.time() * 1000) + 60_000
    burst = [I2NPMessage(MessageType.DATA, 100 + i, expiration, (96).to_bytes(4, "big") + bytes([i]) * 96)
             for i in range(20)]
    for message in burst:   # 20 small messages arrive in one turn of the event loop, as from one NTCP2 read
        assert gateway.service.handle_message(net.nodes[2].hash, I2NPMessage(
            MessageType.TUNNEL_GATEWAY, message.msg_id, expiration, TunnelGateway(tunnel_id, message).to_bytes()))
    held = len(net.queue)
    await asyncio.sleep(0)          # the turn ends: the begun payload goes out
    sent = [m for _, target, m in net.queue if target == me.hash and m.type == MessageType.TUNNEL_DATA]
    assert held == 2 and len(sent) == 3    # 20 x 121 bytes: two full TunnelData at once, a third at the end
    me.local.clear()
    net.run()
    assert [m.msg_id for m in me.local if m.type == MessageType.DATA] == [m.msg_id for m in burst]


async def test_a_hop_ending_one_tunnel_and_starting_the_next_passes_messages_whole_and_in_order():
    net = MemoryNetwork(4)
    sender, hop, receiver = net.nodes[0], net.nodes[1], net.nodes[2]
    tasks = [asyncio.ensure_future(sender.service.build_tunnel(sender.service.exploratory_outbound, [hop.hash])),
             asyncio.ensure_future(receiver.service.build_tunnel(receiver.service.exploratory_inbound, [hop.hash]))]
    await asyncio.sleep(0)
    net.run()
    out_key, in_key = [await asyncio.wait_for(t, 1) for t in tasks]
    gateway_id = receiver.service.exploratory_inbound.inbound[in_key].gateway_tunnel_id
    kinds = []
    net.drop = lambda source, target, message: kinds.append((source, message.type)) and False
    expiration = int(net.clock.time() * 1000) + 60_000
    messages = [I2NPMessage(MessageType.DATA, 500 + i, expiration, (1800).to_bytes(4, "big") + bytes([i]) * 1800)
                for i in range(5)]
    receiver.local.clear()
    for message in messages:
        assert sender.service.send_via_outbound(sender.service.exploratory_outbound, message, to_router=hop.hash,
                                                to_tunnel=gateway_id, tunnel_key=out_key)
    net.run()
    assert [(m.msg_id, m.body) for m in receiver.local if m.type == MessageType.DATA] == \
        [(m.msg_id, m.body) for m in messages]
    # the hop (outbound endpoint of one tunnel, inbound gateway of the other) put only TunnelData on the wire
    assert {kind for source, kind in kinds if source == hop.hash} == {MessageType.TUNNEL_DATA}
    assert hop.service.stats["malformed"] == 0


async def test_inbound_builds_leave_through_an_outbound_tunnel_once_there_is_one():
    net = MemoryNetwork(6)
    me = net.nodes[0]
    net.tick()
    _settle(net)
    service = me.service
    assert _multi_hop(service.exploratory_outbound, net.clock.monotonic())
    via_outbound = service.stats["builds_via_outbound"]
    builds = (MessageType.SHORT_TUNNEL_BUILD, MessageType.TUNNEL_BUILD, MessageType.VARIABLE_TUNNEL_BUILD)
    sent_directly = []   # first hops that got a build request straight from us
    to_gateway = []      # what reached the new tunnel's gateway from others
    gateway = net.nodes[4].hash

    def watch(source: bytes, target: bytes, message: I2NPMessage) -> bool:
        if source == me.hash and message.type in builds:
            sent_directly.append(target)
        elif target == gateway and source != me.hash:
            to_gateway.append(message.type)
        return False
    net.drop = watch
    hops = [gateway, net.nodes[2].hash]
    task = asyncio.ensure_future(service.build_tunnel(service.exploratory_inbound, hops))
    await asyncio.sleep(0)
    net.run()
    assert await asyncio.wait_for(task, 1)
    assert sent_directly == []                       # the gateway got it from an outbound endpoint, not from us,
    assert MessageType.GARLIC in to_gateway and not set(builds) & set(to_gateway)   # wrapped to the gateway
    assert service.stats["builds_via_outbound"] == via_outbound + 1
    # outbound builds still go to their first hop directly (we are their gateway anyway)
    task = asyncio.ensure_future(service.build_tunnel(service.exploratory_outbound, hops))
    await asyncio.sleep(0)
    net.run()
    assert await asyncio.wait_for(task, 1)
    assert sent_directly == [gateway]


async def test_start_and_stop_run_the_schedule():
    net = MemoryNetwork(4, settings=TunnelSettings(tick_s=0.01))
    me = net.nodes[0].service
    await me.start()
    try:
        async with asyncio.timeout(5):
            while not me.stats["builds_sent"]:
                await asyncio.sleep(0.01)
    finally:
        await me.stop()
    assert me._task is None


def test_figures_for_the_control_api():
    net = MemoryNetwork(5)
    me = net.nodes[0].service
    me.tick()
    building = [r for r in me.tunnel_records() if r.state == "building"]
    assert len(building) == 4 and all(len(r.hops) == 2 for r in building)
    net.run()
    _settle(net, 2)
    records = me.tunnel_records()
    assert len(records) == 4 and {r.state for r in records} == {"established"}
    assert all(NOW + 500 < r.expires <= NOW + 610 for r in records)
    hop = net.nodes[1].service
    assert hop.participating_tunnels == len(hop.transit_records()) > 0
    summary = me.summary()
    assert summary["build_success_ratio"] == 1.0 and summary["builds_succeeded"] == 4


class HidingNetDb(MemoryNetDb):
    """A netDb that lacks some routers until they are looked up."""

    def __init__(self, full: MemoryNetDb, hidden: set[bytes]):
        self.full, self.hidden = full, hidden

    @property
    def router_infos(self):
        return {h: ri for h, ri in self.full.router_infos.items() if h not in self.hidden}

    def get_router_info(self, router_hash):
        return None if router_hash in self.hidden else self.full.get_router_info(router_hash)


async def test_unknown_next_hops_are_looked_up_before_forwarding():
    net = MemoryNetwork(5)
    me, hop = net.nodes[0].service, net.nodes[1].service
    known, unknown = net.nodes[2].hash, b"\x07" * 32
    hop._netdb = HidingNetDb(net.netdb, {known, unknown})
    looked_up = []

    async def lookup(router_hash):
        looked_up.append(router_hash)
        await asyncio.sleep(0)
        hop._netdb.hidden.discard(router_hash)
        return net.netdb.get_router_info(router_hash)
    hop._lookup = lookup
    task = asyncio.ensure_future(me.build_tunnel(me.exploratory_inbound, [hop.router_hash, known]))
    for _ in range(50):
        await asyncio.sleep(0)
        net.run()
        if task.done():
            break
    assert await asyncio.wait_for(task, 1) is not None
    assert looked_up == [known] and hop.stats["next_hops_looked_up"] == 1
    # a next hop nobody knows: the messages held for it are dropped and counted
    hop._netdb.hidden.add(unknown)
    status = I2NPMessage.build(DeliveryStatus(1, 2), 3, int(NOW * 1000) + 10_000)
    hop._dispatch([SendToRouter(unknown, status), SendToRouter(unknown, status)])
    for _ in range(20):
        await asyncio.sleep(0)
    assert hop.stats["next_hop_unknown_drops"] == 2 and not hop._waiting


async def test_a_next_hop_we_have_a_session_with_is_not_looked_up():
    net = MemoryNetwork(3)
    node = net.nodes[0]
    peer = net.nodes[1].hash
    node.service._netdb = HidingNetDb(net.netdb, {peer})     # its RouterInfo left our netDb meanwhile
    looked_up = []

    async def lookup(router_hash):
        looked_up.append(router_hash)
        return None
    node.service._lookup = lookup
    node.service._connected = lambda h: h == peer
    status = I2NPMessage.build(DeliveryStatus(1, 2), 3, int(NOW * 1000) + 10_000)
    node.service._dispatch([SendToRouter(peer, status)])
    for _ in range(5):
        await asyncio.sleep(0)
    assert looked_up == [] and not node.service._waiting
    assert [(s, t) for s, t, _ in net.queue] == [(node.hash, peer)]   # sent at once on the session


async def test_a_lookup_that_fails_oddly_ends_its_wait():
    net = MemoryNetwork(3)
    node = net.nodes[0]
    target = b"\x09" * 32
    node.service._netdb = HidingNetDb(net.netdb, {target})
    calls = []

    async def lookup(router_hash):
        calls.append(router_hash)
        raise KeyError("a lookup bug")
    node.service._lookup = lookup
    status = I2NPMessage.build(DeliveryStatus(1, 2), 3, int(NOW * 1000) + 10_000)
    for round_ in (1, 2):
        node.service._dispatch([SendToRouter(target, status)])
        for _ in range(5):
            await asyncio.sleep(0)
        assert not node.service._waiting and len(calls) == round_   # a later message starts a new lookup
    assert node.service.stats["next_hop_unknown_drops"] == 2


def test_one_route_keeps_one_outbound_tunnel_until_it_fails_a_test():
    """Messages to one remote lease leave through one tunnel (in order, not shuffled over tunnels of different
    delays); when that tunnel fails a test, the route moves to another."""
    net = MemoryNetwork(8)
    me = net.nodes[0].service
    me.create_pool("client", PoolConfig(inbound=True, length=1, quantity=1))
    outbound = me.create_pool("client", PoolConfig(inbound=False, length=2, quantity=2, ip_restriction=0))
    _settle(net, 6)
    now = net.clock.monotonic()
    tunnels = _multi_hop(outbound, now)
    assert len(tunnels) == 2 and tunnels[0].hops[0] != tunnels[1].hops[0]

    def first_hops(route, count=12):
        hops = set()
        for n in range(count):
            message = I2NPMessage(MessageType.DATA, n, int(NOW * 1000) + 60_000, b"\x00\x00\x00\x01x")
            assert me.send_via_outbound(outbound, message, to_router=net.nodes[1].hash, to_tunnel=7, route=route)
            hops.add(net.queue[-1][1])
            net.run()
        return hops
    kept = first_hops("lease")
    assert len(kept) == 1 and len(first_hops(None)) == 2
    key = next(t.key for t in tunnels if t.hops[0] in kept)
    outbound.core.test_result(key, False, net.clock.monotonic())
    moved = first_hops("lease")
    assert len(moved) == 1 and moved != kept
