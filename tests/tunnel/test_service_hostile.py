"""Bad input to the tunnel service: foreign and replayed builds, junk data, lost fragments, floods; never a crash."""
from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.i2np import (Garlic, I2NPMessage, MessageType, OutboundTunnelBuildReply, ShortTunnelBuild, TunnelData,
                       TunnelGateway)
from core.tunnel.build import create_build
from core.tunnel.participant import TransitPolicy
from core.tunnel.pool import PoolConfig
from core.tunnel.service import TunnelSettings

from .test_service import NOW, MemoryNetwork, _multi_hop, _settle

EXPIRATION = int(NOW * 1000) + 60_000
TUNNEL_TYPES = [MessageType.TUNNEL_DATA, MessageType.TUNNEL_GATEWAY, MessageType.SHORT_TUNNEL_BUILD,
                MessageType.VARIABLE_TUNNEL_BUILD, MessageType.TUNNEL_BUILD, MessageType.OUTBOUND_TUNNEL_BUILD_REPLY,
                MessageType.VARIABLE_TUNNEL_BUILD_REPLY, MessageType.TUNNEL_BUILD_REPLY, MessageType.GARLIC]


def _message(kind: int, body: bytes, msg_id: int = 1) -> I2NPMessage:
    return I2NPMessage(kind, msg_id, EXPIRATION, body)


def _quiet_network(count: int = 5, **kwargs) -> MemoryNetwork:
    """Services that build nothing on their own (so counters show only what a test sends)."""
    net = MemoryNetwork(count, **kwargs)
    for node in net.nodes:
        for pool in node.service.pools:
            pool.retry_at = float("inf")
    return net


def test_build_records_not_for_us_are_dropped_and_counted():
    net = _quiet_network()
    hop = net.nodes[1].service
    junk = ShortTunnelBuild(tuple(random.randbytes(218) for _ in range(4))).to_bytes()
    assert hop.handle_message(net.nodes[0].hash, _message(MessageType.SHORT_TUNNEL_BUILD, junk))
    # a record that carries our hash prefix but garbage after it
    ours = hop.router_hash[:16] + random.randbytes(202)
    body = ShortTunnelBuild((ours,) + tuple(random.randbytes(218) for _ in range(3))).to_bytes()
    assert hop.handle_message(net.nodes[0].hash, _message(MessageType.SHORT_TUNNEL_BUILD, body))
    stats = hop.transit.stats
    assert stats.builds_not_for_us == 1 and stats.builds_undecryptable == 1 and hop.participating_tunnels == 0
    assert not net.queue  # nothing answered


def test_replayed_build_request_is_refused():
    net = _quiet_network()
    me, hop = net.nodes[0].service, net.nodes[2]
    seen = []
    net.drop = lambda s, t, m: t == hop.hash and m.type == MessageType.SHORT_TUNNEL_BUILD and seen.append((s, m))
    task_hops = [hop.hash, net.nodes[3].hash]
    me._start_build(me.exploratory_inbound, task_hops, net.clock.monotonic())
    net.run()
    assert len(seen) == 1 and hop.service.participating_tunnels == 1
    net.drop = None
    for _ in range(3):
        hop.receive(*seen[0])
    net.run()
    assert hop.service.transit.stats.builds_replayed == 3 and hop.service.participating_tunnels == 1


def test_bad_checksums_and_unknown_tunnels():
    net = MemoryNetwork(6)
    me_node = net.nodes[0]
    me = me_node.service
    _settle(net, 4)
    now = net.clock.monotonic()
    inbound = me.exploratory_inbound.inbound[_multi_hop(me.exploratory_inbound, now)[0].key]
    last_hop = inbound.hops[-1]
    junk = TunnelData(inbound.receive_tunnel_id, random.randbytes(1024)).to_bytes()
    assert me.handle_message(last_hop, _message(MessageType.TUNNEL_DATA, junk))
    assert inbound.dropped == 1 and not me_node.local
    # unknown tunnel ids, both message types
    assert me.handle_message(last_hop, _message(MessageType.TUNNEL_DATA, TunnelData(7, bytes(1024)).to_bytes()))
    gateway = TunnelGateway(8, _message(MessageType.DATA, b"\x00\x00\x00\x00"))
    assert me.handle_message(last_hop, _message(MessageType.TUNNEL_GATEWAY, gateway.to_bytes()))
    assert me.transit.stats.data_unknown_tunnel == 2
    # junk at a transit outbound endpoint: decrypted by its layer, then the checksum fails
    endpoint = next(node.service for node in net.nodes[1:] for t in node.service.transit.tunnels()
                    if t.role == 2)
    tunnel = next(t for t in endpoint.transit.tunnels() if t.role == 2)
    previous = tunnel.previous_hop or net.nodes[0].hash
    body = TunnelData(tunnel.receive_tunnel_id, random.randbytes(1024)).to_bytes()
    assert endpoint.handle_message(previous, _message(MessageType.TUNNEL_DATA, body))
    assert endpoint.transit.stats.data_malformed >= 1
    # a wrong-size body is malformed, still ours, still no crash
    assert me.handle_message(last_hop, _message(MessageType.TUNNEL_DATA, b"\x00" * 10))
    assert me.stats["malformed"] == 1


def test_fragments_that_never_complete_are_expired():
    net = MemoryNetwork(6)
    me_node = net.nodes[0]
    me = me_node.service
    _settle(net, 4)
    now = net.clock.monotonic()
    inbound = me.exploratory_inbound.inbound[_multi_hop(me.exploratory_inbound, now)[0].key]
    arrivals = []

    def lose_second(source, target, message):
        if target == me.router_hash and message.type == MessageType.TUNNEL_DATA:
            arrivals.append(message)
            return len(arrivals) == 2
        return False
    net.drop = lose_second
    message = _message(MessageType.DATA, (2996).to_bytes(4, "big") + bytes(2996), 42)
    assert me.send_via_outbound(None, message, to_router=inbound.gateway, to_tunnel=inbound.gateway_tunnel_id)
    net.run()
    net.drop = None
    assert len(arrivals) == 4 and message not in me_node.local
    assert inbound._reassembler.pending_count == 1
    net.clock.advance(60.0)
    me.tick()
    assert inbound._reassembler.pending_count == 0 and inbound._reassembler.expired_messages == 1


def test_build_request_flood_is_rate_limited_and_bounded():
    policy = TransitPolicy(max_requests_per_peer=20, max_tunnels=50)
    net = _quiet_network(4, policies={1: policy})
    hop = net.nodes[1]
    rng = random.Random(5).randbytes
    peers = [net.nodes[0], net.nodes[2], net.nodes[3]]
    for round_number in range(40):
        for peer in peers:
            request = create_build([hop.router_info.identity], inbound=True, our_hash=peer.hash, clock=net.clock,
                                   rng=rng)
            message = _message(MessageType.SHORT_TUNNEL_BUILD, request.message.to_bytes(), round_number + 1)
            assert hop.service.handle_message(peer.hash, message)
    net.queue.clear()
    stats = hop.service.transit.stats
    assert stats.builds_seen == 120
    assert hop.service.participating_tunnels == stats.builds_accepted == 50  # 3 x 20 allowed, 50 the cap
    assert stats.builds_rejected == 70
    net.clock.advance(700.0)
    hop.service.tick()
    assert hop.service.participating_tunnels == 0  # expired


def test_replies_that_are_not_ours():
    net = _quiet_network()
    me = net.nodes[0].service
    records = tuple(random.randbytes(218) for _ in range(4))
    reply = _message(MessageType.OUTBOUND_TUNNEL_BUILD_REPLY, OutboundTunnelBuildReply(records).to_bytes(), 99)
    assert me.handle_message(net.nodes[1].hash, reply)
    assert me.stats["build_replies_unknown"] == 1
    # a reply with our pending id but the wrong shape fails that build, nothing else
    build_id = me._start_build(me.exploratory_inbound, [net.nodes[1].hash, net.nodes[2].hash],
                               net.clock.monotonic())
    net.queue.clear()
    wrong = _message(MessageType.SHORT_TUNNEL_BUILD, ShortTunnelBuild(records[:2]).to_bytes(), build_id)
    assert me.handle_message(net.nodes[2].hash, wrong)
    assert me.stats["build_replies_malformed"] == 1 and me.exploratory_inbound.core.stats.builds_failed == 1
    # garlic we cannot open is not ours
    assert not me.handle_message(net.nodes[1].hash, _message(MessageType.GARLIC, Garlic(random.randbytes(120))
                                                             .to_bytes()))
    assert not me.handle_message(net.nodes[1].hash, _message(MessageType.DATA, b"\x00\x00\x00\x00"))


async def test_a_router_twice_in_one_tunnel_loops_through_itself():
    net = _quiet_network()
    me_node, hop = net.nodes[0], net.nodes[2]
    me = me_node.service
    task = asyncio.ensure_future(me.build_tunnel(me.exploratory_inbound, [hop.hash, hop.hash]))
    await asyncio.sleep(0)
    net.run()
    key = await asyncio.wait_for(task, 1)
    assert key is not None and hop.service.participating_tunnels == 2
    inbound = me.exploratory_inbound.inbound[key]
    message = _message(MessageType.DATA, (3000).to_bytes(4, "big") + bytes(3000), 5)
    net.sender(net.nodes[3].hash)(hop.hash, _message(MessageType.TUNNEL_GATEWAY,
                                                     TunnelGateway(inbound.gateway_tunnel_id, message).to_bytes()))
    net.run()
    assert me_node.local == [message]


def test_pool_removal_and_unknown_pools_are_harmless():
    net = _quiet_network()
    me = net.nodes[0].service
    me.remove_pool(me.exploratory_inbound)  # the exploratory pools stay
    assert me.pool("exploratory", True) is me.exploratory_inbound
    client = me.create_pool("c", PoolConfig(inbound=False, length=1))
    assert me._start_build(client, [net.nodes[1].hash], net.clock.monotonic()) is not None
    me.remove_pool(client)
    assert not me._pending  # its builds in flight are forgotten with it
    me.remove_pool(client)
    assert not me.send_via_outbound(client, _message(MessageType.DATA, b"\x00\x00\x00\x00"), to_router=b"\x01" * 32)


_FUZZ_NET = None


def _fuzz_net() -> MemoryNetwork:
    global _FUZZ_NET
    if _FUZZ_NET is None:
        _FUZZ_NET = MemoryNetwork(5, settings=TunnelSettings())
        _settle(_FUZZ_NET, 4)
    return _FUZZ_NET


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TUNNEL_TYPES + [MessageType.DATA, MessageType.DELIVERY_STATUS]), st.binary(max_size=2000),
       st.integers(0, 0xFFFFFFFF))
def test_random_bodies_never_raise(kind, body, msg_id):
    net = _fuzz_net()
    for node in net.nodes[:2]:
        result = node.service.handle_message(net.nodes[3].hash, I2NPMessage(kind, msg_id, EXPIRATION, body))
        assert isinstance(result, bool)
    net.queue.clear()


_CORPUS: list = []


def _corpus() -> list:
    """Real messages between the fuzz network's routers: tunnel data both ways, a build and its reply."""
    if not _CORPUS:
        net = _fuzz_net()
        net.drop = lambda s, t, m: _CORPUS.append((s, t, m)) and False
        me = net.nodes[0].service
        now = net.clock.monotonic()
        inbound = me.exploratory_inbound.inbound[_multi_hop(me.exploratory_inbound, now)[0].key]
        me.send_via_outbound(None, _message(MessageType.DATA, (1500).to_bytes(4, "big") + bytes(1500)),
                             to_router=inbound.gateway, to_tunnel=inbound.gateway_tunnel_id)
        me._start_build(me.exploratory_outbound, list(me.exploratory_outbound.core.tunnels[0].hops), now)
        net.run()
        net.drop = None
    return _CORPUS


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_messages_never_raise(data):
    corpus = _corpus()
    assert {m.type for _, _, m in corpus} >= {MessageType.TUNNEL_DATA, MessageType.SHORT_TUNNEL_BUILD,
                                              MessageType.TUNNEL_GATEWAY}
    net = _fuzz_net()
    source, target, message = corpus[data.draw(st.integers(0, len(corpus) - 1))]
    body = bytearray(message.body)
    for _ in range(data.draw(st.integers(1, 8))):
        body[data.draw(st.integers(0, len(body) - 1))] ^= data.draw(st.integers(1, 255))
    node = net.by_hash[target]
    assert isinstance(node.service.handle_message(source, I2NPMessage(message.type, message.msg_id,
                                                                      message.expiration_ms, bytes(body))), bool)
    net.run()


def test_nested_garlic_and_tunnel_messages_out_of_tunnels_are_dropped():
    from core.garlic.routers import encrypt_with_reply_key
    from core.i2np import GarlicCloveBlock, GarlicCloveDeliveryInstructions

    net = MemoryNetwork(6)
    me_node = net.nodes[0]
    me = me_node.service
    _settle(net, 4)
    key, tag = b"\x11" * 32, b"\x22" * 8
    me.garlic.add_reply_key(key, tag)
    inner = _message(MessageType.GARLIC, Garlic(random.randbytes(64)).to_bytes())
    data = encrypt_with_reply_key(key, tag, [GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), inner)])
    assert me.handle_message(net.nodes[1].hash, _message(MessageType.GARLIC, Garlic(data).to_bytes()))
    assert me.stats["nested_garlic_dropped"] == 1 and not me_node.local
    # a TunnelGateway sent into our inbound tunnel comes out of it and is not obeyed
    now = net.clock.monotonic()
    inbound = me.exploratory_inbound.inbound[_multi_hop(me.exploratory_inbound, now)[0].key]
    wrapped = _message(MessageType.TUNNEL_GATEWAY, TunnelGateway(inbound.gateway_tunnel_id,
                                                                 _message(MessageType.DATA, bytes(4))).to_bytes())
    assert me.send_via_outbound(None, wrapped, to_router=inbound.gateway, to_tunnel=inbound.gateway_tunnel_id)
    net.run()
    assert me.stats["tunnel_message_in_tunnel_dropped"] == 1 and not me_node.local
