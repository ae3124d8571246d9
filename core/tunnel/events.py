"""What the tunnel cores ask the router to do; the router turns each into transport sends or local delivery."""
from __future__ import annotations

from dataclasses import dataclass

from core.i2np import I2NPMessage


@dataclass(frozen=True, slots=True)
class SendToRouter:
    """Send `message` to router `router_hash` (which may be ourselves)."""

    router_hash: bytes
    message: I2NPMessage


@dataclass(frozen=True, slots=True)
class SendToTunnel:
    """Send `message` into tunnel `tunnel_id` whose gateway is `gateway_hash`: a TunnelGateway message to it."""

    gateway_hash: bytes
    tunnel_id: int
    message: I2NPMessage


@dataclass(frozen=True, slots=True)
class SendBuildReply:
    """An outbound endpoint's build reply for tunnel `tunnel_id` at `gateway_hash`.

    With `garlic_key`/`garlic_tag` (short builds) it should go garlic-wrapped as an ECIES existing-session
    message under that key and tag (tunnel-creation-ecies.rst "Garlic Encryption"), unless the gateway is us.
    """

    gateway_hash: bytes
    tunnel_id: int
    message: I2NPMessage
    garlic_key: bytes | None = None
    garlic_tag: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeliverLocally:
    """A message that came out of one of our inbound tunnels (`tunnel_id` is our receive id)."""

    tunnel_id: int
    message: I2NPMessage


TunnelEvent = SendToRouter | SendToTunnel | SendBuildReply | DeliverLocally
