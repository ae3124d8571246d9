"""Our own tunnels' ends: the outbound gateway and the inbound endpoint (tunnel-implementation.md).

Both come from a successful build (`from_build`) or are zero-hop (no remote hops: we are gateway and endpoint).
"""
from __future__ import annotations

from core.clock import BufferedRng, Clock, Rng
from core.data.errors import ProtocolError
from core.i2np import I2NPMessage, MessageType, TunnelData, TunnelGateway, decode_standard

from .build import PendingBuild, random_tunnel_id
from .crypto import CreatorLayers
from .events import DeliverLocally, SendToRouter, SendToTunnel, TunnelEvent
from .fragment import LOCAL, TunnelDelivery, TunnelDeliveryType, TunnelFragmenter, TunnelReassembler

TUNNEL_LIFETIME = 600.0  # tunnel-implementation.md: tunnels live 10 minutes
TUNNEL_MESSAGE_EXPIRATION_MS = 10_000


class OutboundTunnel:
    """We are the gateway: fragment, pre-decrypt with every hop's layer, send to the first hop."""

    __slots__ = ("hops", "first_hop", "first_tunnel_id", "created_at", "expires_at", "_layers", "_fragmenter",
                 "_clock", "_rng", "messages_sent", "bytes_sent")

    def __init__(self, hops: tuple[bytes, ...], first_tunnel_id: int | None, layer_keys, clock: Clock, rng: Rng):
        self.hops = hops
        self.first_hop = hops[0] if hops else None
        self.first_tunnel_id = first_tunnel_id
        self._layers = CreatorLayers(layer_keys)
        rng = BufferedRng(rng)   # IVs, padding and message ids: several per message, all seen by the hops
        self._fragmenter = TunnelFragmenter(rng)
        self._clock = clock
        self._rng = rng
        self.created_at = clock.monotonic()
        self.expires_at = self.created_at + TUNNEL_LIFETIME
        self.messages_sent = self.bytes_sent = 0

    @classmethod
    def from_build(cls, pending: PendingBuild, clock: Clock, rng: Rng) -> "OutboundTunnel":
        if pending.inbound:
            raise ValueError("an inbound build makes an InboundTunnel")
        first = pending.hops[0]
        return cls(tuple(h.router_hash for h in pending.hops), first.receive_tunnel_id, pending.layer_keys, clock, rng)

    @classmethod
    def zero_hop(cls, clock: Clock, rng: Rng) -> "OutboundTunnel":
        return cls((), None, (), clock, rng)

    @property
    def is_zero_hop(self) -> bool:
        return not self.hops

    def send(self, messages: list[tuple[I2NPMessage, TunnelDelivery]]) -> list[TunnelEvent]:
        """Messages with where the endpoint should take them (ROUTER or TUNNEL); one batch, packed together."""
        if self.is_zero_hop:
            return [_direct(message, delivery) for message, delivery in messages]
        for message, delivery in messages:
            if delivery.delivery_type == TunnelDeliveryType.LOCAL:
                raise ValueError("LOCAL delivery is not for outbound tunnels")
            self._fragmenter.put_message(message, delivery)
            self.messages_sent += 1
        events: list[TunnelEvent] = []
        expiration = int(self._clock.time() * 1000) + TUNNEL_MESSAGE_EXPIRATION_MS
        for payload in self._fragmenter.flush():
            body = TunnelData(self.first_tunnel_id, self._layers.remove(payload)).to_bytes()  # type: ignore[arg-type]
            msg_id = int.from_bytes(self._rng(4), "big")
            events.append(SendToRouter(self.first_hop, I2NPMessage(MessageType.TUNNEL_DATA, msg_id, expiration,
                                                                   body)))  # type: ignore[arg-type]
            self.bytes_sent += TunnelData.SIZE
        return events


def _direct(message: I2NPMessage, delivery: TunnelDelivery) -> TunnelEvent:
    if delivery.delivery_type == TunnelDeliveryType.ROUTER:
        return SendToRouter(delivery.to_hash, message)  # type: ignore[arg-type]
    if delivery.delivery_type == TunnelDeliveryType.TUNNEL:
        return SendToTunnel(delivery.to_hash, delivery.tunnel_id, message)  # type: ignore[arg-type]
    raise ValueError("LOCAL delivery is not for outbound tunnels")


class InboundTunnel:
    """We are the endpoint: remove every hop's layer, reassemble, deliver locally.

    `gateway`/`gateway_tunnel_id` are what a Lease names. Zero-hop: we are also the gateway and take
    TunnelGateway messages for `receive_tunnel_id` directly.
    """

    __slots__ = ("hops", "receive_tunnel_id", "gateway", "gateway_tunnel_id", "created_at", "expires_at",
                 "_layers", "_reassembler", "messages_received", "dropped")

    def __init__(self, hops: tuple[bytes, ...], receive_tunnel_id: int, gateway: bytes, gateway_tunnel_id: int,
                 layer_keys, clock: Clock):
        self.hops = hops
        self.receive_tunnel_id = receive_tunnel_id
        self.gateway = gateway
        self.gateway_tunnel_id = gateway_tunnel_id
        self._layers = CreatorLayers(layer_keys)
        self._reassembler = TunnelReassembler(clock)
        self.created_at = clock.monotonic()
        self.expires_at = self.created_at + TUNNEL_LIFETIME
        self.messages_received = self.dropped = 0

    @classmethod
    def from_build(cls, pending: PendingBuild, clock: Clock) -> "InboundTunnel":
        if not pending.inbound or pending.own_tunnel_id is None:
            raise ValueError("an outbound build makes an OutboundTunnel")
        gateway = pending.hops[0]
        return cls(tuple(h.router_hash for h in pending.hops), pending.own_tunnel_id, gateway.router_hash,
                   gateway.receive_tunnel_id, pending.layer_keys, clock)

    @classmethod
    def zero_hop(cls, our_hash: bytes, clock: Clock, rng: Rng) -> "InboundTunnel":
        tunnel_id = random_tunnel_id(rng)
        return cls((), tunnel_id, our_hash, tunnel_id, (), clock)

    @property
    def is_zero_hop(self) -> bool:
        return not self.hops

    def receive(self, data: TunnelData) -> list[DeliverLocally]:
        """A TunnelData message for our receive tunnel id; malformed or incomplete ones give nothing."""
        if data.tunnel_id != self.receive_tunnel_id or self.is_zero_hop:
            self.dropped += 1
            return []
        try:
            complete = self._reassembler.receive(self._layers.remove(data.data))
        except ProtocolError:
            self.dropped += 1
            return []
        out = []
        for item in complete:
            if item.delivery != LOCAL:
                self.dropped += 1  # an inbound endpoint only delivers to itself
                continue
            try:
                message = decode_standard(item.data)
            except ProtocolError:
                self.dropped += 1
                continue
            self.messages_received += 1
            out.append(DeliverLocally(self.receive_tunnel_id, message))
        return out

    def receive_gateway(self, gateway: TunnelGateway) -> list[DeliverLocally]:
        """Zero-hop inbound tunnels: a TunnelGateway addressed to us is already at its endpoint."""
        if not self.is_zero_hop or gateway.tunnel_id != self.receive_tunnel_id:
            self.dropped += 1
            return []
        self.messages_received += 1
        return [DeliverLocally(self.receive_tunnel_id, gateway.message)]

    def expire_fragments(self) -> int:
        return self._reassembler.expire()
