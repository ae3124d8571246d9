"""A tiny in-memory network of routers running the tunnel cores, for whole-tunnel tests."""
from __future__ import annotations

from core.clock import FakeClock
from core.i2np import (I2NPMessage, MessageType, OutboundTunnelBuildReply, ShortTunnelBuild, TunnelData,
                       TunnelGateway, VariableTunnelBuild, VariableTunnelBuildReply)
from core.tunnel.build import BuildResult, PendingBuild
from core.tunnel.endpoints import InboundTunnel
from core.tunnel.events import DeliverLocally, SendBuildReply, SendToRouter, SendToTunnel
from core.tunnel.participant import TransitManager, TransitPolicy

from .helpers import TestRouter, seeded_rng

_REPLY_CLASSES = {
    MessageType.SHORT_TUNNEL_BUILD: ShortTunnelBuild,
    MessageType.VARIABLE_TUNNEL_BUILD: VariableTunnelBuild,
    MessageType.OUTBOUND_TUNNEL_BUILD_REPLY: OutboundTunnelBuildReply,
    MessageType.VARIABLE_TUNNEL_BUILD_REPLY: VariableTunnelBuildReply,
}


class Node:
    def __init__(self, router: TestRouter, clock: FakeClock, seed: int, policy: TransitPolicy | None = None):
        self.router = router
        self.hash = router.hash
        self.rng = seeded_rng(seed)
        self.transit = TransitManager(router.hash, router.static, clock, self.rng, policy)
        self.pending: dict[int, PendingBuild] = {}
        self.results: dict[int, BuildResult] = {}
        self.inbound: dict[int, InboundTunnel] = {}
        self.delivered: list[DeliverLocally] = []
        self.received_direct: list[tuple[bytes, I2NPMessage]] = []

    def receive(self, from_hash: bytes, message: I2NPMessage):
        pending = self.pending.get(message.msg_id)
        if pending is not None and message.type == pending.reply_type:
            return self._finish_build(message)
        if message.type == MessageType.TUNNEL_DATA:
            data = TunnelData.parse(message.body)
            tunnel = self.inbound.get(data.tunnel_id)
            if tunnel is not None:
                return self._local(tunnel.receive(data))
            return self.transit.handle_tunnel_data(data, from_hash)
        if message.type == MessageType.TUNNEL_GATEWAY:
            gateway = TunnelGateway.parse(message.body)
            tunnel = self.inbound.get(gateway.tunnel_id)
            if tunnel is not None:
                return self._local(tunnel.receive_gateway(gateway))
            return self.transit.handle_tunnel_gateway(gateway, from_hash)
        if message.type in (MessageType.SHORT_TUNNEL_BUILD, MessageType.VARIABLE_TUNNEL_BUILD,
                            MessageType.TUNNEL_BUILD):
            return self.transit.handle_build(message, from_hash)
        self.received_direct.append((from_hash, message))
        return []

    def _local(self, deliveries):
        events = []
        for delivery in deliveries:
            pending = self.pending.get(delivery.message.msg_id)
            if pending is not None and delivery.message.type == pending.reply_type:
                events += self._finish_build(delivery.message)
            else:
                self.delivered.append(delivery)
        return events

    def _finish_build(self, message: I2NPMessage):
        pending = self.pending.pop(message.msg_id)
        records = _REPLY_CLASSES[message.type].parse(message.body).records
        self.results[message.msg_id] = pending.process_reply(records)
        return []


class Network:
    """Routes events between nodes; every run is bounded in steps."""

    def __init__(self, nodes: list[Node], clock: FakeClock):
        self.nodes = {node.hash: node for node in nodes}
        self.clock = clock
        self.hops_travelled = 0

    def run(self, source: bytes, events, max_steps: int = 10_000) -> None:
        queue = [(source, event) for event in events]
        steps = 0
        while queue:
            steps += 1
            assert steps <= max_steps, "network did not settle"
            sender, event = queue.pop(0)
            if isinstance(event, DeliverLocally):
                node = self.nodes[sender]
                queue += [(sender, e) for e in node._local([event])]
                continue
            if isinstance(event, SendToRouter):
                target, message = event.router_hash, event.message
            elif isinstance(event, (SendToTunnel, SendBuildReply)):
                body = TunnelGateway(event.tunnel_id, event.message).to_bytes()
                target = event.gateway_hash
                message = I2NPMessage(MessageType.TUNNEL_GATEWAY, 1, event.message.expiration_ms, body)
            else:
                raise AssertionError(f"unexpected event {event!r}")
            node = self.nodes.get(target)
            if node is None:
                continue  # a router outside the test network
            self.hops_travelled += 1
            queue += [(target, e) for e in node.receive(sender, message)]
