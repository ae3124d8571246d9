"""Whole tunnels in memory: built and answered by our own code, then carrying traffic both ways."""
import pytest

from core.clock import FakeClock
from core.i2np import I2NPMessage, MessageType
from core.tunnel.build import BuildStatus, create_build
from core.tunnel.endpoints import InboundTunnel, OutboundTunnel
from core.tunnel.events import SendToRouter
from core.tunnel.fragment import TunnelDelivery, max_message_size
from core.tunnel.participant import TransitPolicy, TransitRole

from .helpers import routers, seeded_rng
from .network import Network, Node


def _net(count=7, policies=None):
    clock = FakeClock()
    nodes = [Node(router, clock, seed, (policies or {}).get(seed)) for seed, router in enumerate(routers(count))]
    return Network(nodes, clock), nodes, clock


def _build_inbound(net, creator, hops, short=True):
    request = create_build([h.router.identity for h in hops], inbound=True, our_hash=creator.hash, clock=net.clock,
                           rng=creator.rng, short=short)
    creator.pending[request.pending.reply_msg_id] = request.pending
    message = I2NPMessage(request.message.TYPE, request.msg_id, 0, request.message.to_bytes())
    net.run(creator.hash, [SendToRouter(request.first_hop, message)])
    return request.pending, creator.results.get(request.pending.reply_msg_id)


def _build_outbound(net, creator, hops, reply_tunnel: InboundTunnel, short=True):
    request = create_build([h.router.identity for h in hops], inbound=False, our_hash=creator.hash, clock=net.clock,
                           rng=creator.rng, reply_gateway=reply_tunnel.gateway,
                           reply_tunnel_id=reply_tunnel.gateway_tunnel_id, short=short)
    creator.pending[request.pending.reply_msg_id] = request.pending
    message = I2NPMessage(request.message.TYPE, request.msg_id, 0, request.message.to_bytes())
    net.run(creator.hash, [SendToRouter(request.first_hop, message)])
    return request.pending, creator.results.get(request.pending.reply_msg_id)


def _message(size, msg_id, rng):
    return I2NPMessage(MessageType.DATA, msg_id, 1_750_000_000_000, (size - 4).to_bytes(4, "big") + rng(size - 4))


@pytest.mark.parametrize("short", [True, False])
def test_build_both_tunnels_and_carry_traffic(short):
    net, nodes, clock = _net()
    creator, a, b, c, d, e, f = nodes
    zero_hop = InboundTunnel.zero_hop(creator.hash, clock, creator.rng)
    creator.inbound[zero_hop.receive_tunnel_id] = zero_hop

    pending_in, result_in = _build_inbound(net, creator, [d, e, f], short)
    assert result_in is not None and result_in.success, result_in
    inbound = InboundTunnel.from_build(pending_in, clock)
    creator.inbound[inbound.receive_tunnel_id] = inbound
    assert [d.transit.tunnel(h.receive_tunnel_id).role for d, h in zip((d, e, f), pending_in.hops)] == [
        TransitRole.INBOUND_GATEWAY, TransitRole.PARTICIPANT, TransitRole.PARTICIPANT]

    pending_out, result_out = _build_outbound(net, creator, [a, b, c], zero_hop, short)
    assert result_out is not None and result_out.success, result_out
    outbound = OutboundTunnel.from_build(pending_out, clock, creator.rng)
    assert c.transit.tunnel(pending_out.hops[2].receive_tunnel_id).role == TransitRole.OUTBOUND_ENDPOINT

    # out through a-b-c, into the inbound tunnel at d, through e-f, to the creator
    rng = seeded_rng(50)
    sizes = [20, 100, 1000, 5000, 20_000, max_message_size(TunnelDelivery.to_tunnel(bytes(32), 1)) - 200]
    sent = [_message(size, 100 + i, rng) for i, size in enumerate(sizes)]
    delivery = TunnelDelivery.to_tunnel(inbound.gateway, inbound.gateway_tunnel_id)
    net.run(creator.hash, outbound.send([(m, delivery) for m in sent]))
    got = [event.message for event in creator.delivered if event.tunnel_id == inbound.receive_tunnel_id]
    assert sorted(got, key=lambda m: m.msg_id) == sent
    for node in (a, b, c, d, e, f):
        assert node.transit.stats.messages_forwarded > 0


def test_outbound_router_delivery_reaches_the_router():
    net, nodes, clock = _net()
    creator, a, b, c, x = nodes[:5]
    zero_hop = InboundTunnel.zero_hop(creator.hash, clock, creator.rng)
    creator.inbound[zero_hop.receive_tunnel_id] = zero_hop
    pending, result = _build_outbound(net, creator, [a, b, c], zero_hop)
    assert result.success
    outbound = OutboundTunnel.from_build(pending, clock, creator.rng)
    message = _message(3000, 7, seeded_rng(1))
    net.run(creator.hash, outbound.send([(message, TunnelDelivery.to_router(x.hash))]))
    assert x.received_direct == [(c.hash, message)]


@pytest.mark.parametrize("hop_count", [1, 2, 7])
def test_lengths_one_to_seven(hop_count):
    net, nodes, clock = _net(hop_count + 1)
    creator, hops = nodes[0], nodes[1:]
    pending, result = _build_inbound(net, creator, hops)
    assert result.success
    inbound = InboundTunnel.from_build(pending, clock)
    creator.inbound[inbound.receive_tunnel_id] = inbound
    gateway_node = net.nodes[inbound.gateway]
    message = _message(2500, 9, seeded_rng(2))
    from core.i2np import TunnelGateway
    net.run(creator.hash, gateway_node.transit.handle_tunnel_gateway(TunnelGateway(inbound.gateway_tunnel_id,
                                                                                   message)))
    assert [e.message for e in creator.delivered] == [message]


def test_rejecting_hop_fails_the_build_and_others_keep_their_tunnel():
    net, nodes, clock = _net(4, policies={2: TransitPolicy(accept_tunnels=False)})
    creator, a, b, c = nodes
    pending, result = _build_inbound(net, creator, [a, b, c])
    assert result.statuses == (BuildStatus.ACCEPT, BuildStatus.BANDWIDTH, BuildStatus.ACCEPT)
    assert not result.success
    assert len(a.transit) == 1 and len(b.transit) == 0 and len(c.transit) == 1


def test_rejection_reason_visible_when_not_hidden():
    net, nodes, clock = _net(4, policies={1: TransitPolicy(max_tunnels=0, hide_reason=False)})
    creator, a, b, c = nodes
    _, result = _build_inbound(net, creator, [a, b, c])
    assert result.statuses[0] == BuildStatus.TRANSIENT_OVERLOAD


def test_zero_hop_tunnels():
    clock = FakeClock()
    rng = seeded_rng(3)
    me = routers(1)[0]
    inbound = InboundTunnel.zero_hop(me.hash, clock, rng)
    from core.i2np import TunnelGateway
    message = _message(100, 1, rng)
    assert [e.message for e in inbound.receive_gateway(TunnelGateway(inbound.receive_tunnel_id, message))] == [message]
    outbound = OutboundTunnel.zero_hop(clock, rng)
    events = outbound.send([(message, TunnelDelivery.to_router(b"\x05" * 32))])
    assert events == [SendToRouter(b"\x05" * 32, message)]
    with pytest.raises(ValueError):
        outbound.send([(message, TunnelDelivery.local())])
