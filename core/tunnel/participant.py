"""Transit tunnels (sans-I/O): build requests we answer, then gateway, participant and endpoint processing.

`TransitManager` takes build messages, TunnelData and TunnelGateway messages and returns events
(core.tunnel.events); the accept/reject decision is a `TransitPolicy`. State is bounded: tunnel count,
per-tunnel lifetime, a replay filter for build records and one for tunnel messages.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable, Hashable

from core.bloom import DecayingBloomFilter
from core.clock import Clock, Rng
from core.crypto.hashes import sha256
from core.crypto.x25519 import X25519Keypair
from core.data.errors import ProtocolError
from core.data.primitives import Mapping
from core.i2np import (STANDARD_HEADER_SIZE, I2NPMessage, MessageType, OutboundTunnelBuildReply, RawI2NP,
                       ShortTunnelBuild, TunnelBuild, TunnelBuildReply, TunnelData, TunnelGateway, VariableTunnelBuild,
                       VariableTunnelBuildReply, decode_standard)

from .build import (LAYER_ENCRYPTION_AES, AnyBuildRequestRecord, BuildRecordDecryptor, BuildStatus,
                    DecryptedBuildRequest)
from .crypto import LayerCipher
from .events import SendBuildReply, SendToRouter, SendToTunnel, TunnelEvent
from .fragment import LOCAL, TunnelDeliveryType, TunnelFragmenter, TunnelReassembler

_MSG_IDS = struct.Struct(">256I")
TRANSIT_LIFETIME = 660.0  # 10 minutes plus a minute for the creator's later start and clock skew
MAX_REQUEST_AGE_MINUTES = 65  # legacy/tunnel-creation.rst: older requests are invalid ...
MAX_REQUEST_AHEAD_MINUTES = 5  # ... and so are ones more than 5 minutes ahead
TUNNEL_MESSAGE_EXPIRATION_MS = 10_000
BUILD_MESSAGE_EXPIRATION_MS = 60_000


class ReplayFilter:
    """Keys seen recently, in two generations that rotate every `period` seconds (or early when one is full).

    A key is remembered at least `period` seconds unless a flood fills a generation first; memory stays
    within 2 x `capacity` keys either way.
    """

    __slots__ = ("_clock", "period", "capacity", "_current", "_previous", "_rotated_at", "early_rotations")

    def __init__(self, clock: Clock, period: float, capacity: int):
        self._clock = clock
        self.period = period
        self.capacity = capacity
        self._current: set[Hashable] = set()
        self._previous: set[Hashable] = set()
        self._rotated_at = clock.monotonic()
        self.early_rotations = 0

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def _rotate(self) -> None:
        self._previous = self._current
        self._current = set()

    def seen(self, key: Hashable) -> bool:
        """True if `key` was seen before; otherwise remembers it and returns False."""
        now = self._clock.monotonic()
        if now - self._rotated_at >= self.period:
            self._rotate()
            if now - self._rotated_at >= 2 * self.period:
                self._previous = set()
            self._rotated_at = now
        if key in self._current or key in self._previous:
            return True
        if len(self._current) >= self.capacity:
            self._rotate()
            self._rotated_at = now
            self.early_rotations += 1
        self._current.add(key)
        return False


class _RateMeter:
    """Bytes per second over the last one or two windows, from a running byte total read at window ends (the
    relay path only adds to the total)."""

    __slots__ = ("window", "_start", "_start_total", "_previous")

    def __init__(self, now: float, window: float = 10.0):
        self.window = window
        self._start = now
        self._start_total = 0
        self._previous = 0.0  # bytes in the window before the current one

    def roll(self, now: float, total: int) -> None:
        elapsed = now - self._start
        if elapsed >= self.window:
            # a window read late spreads its bytes over the time it covered
            self._previous = (total - self._start_total) * self.window / elapsed
            self._start, self._start_total = now, total

    def rate(self, now: float, total: int) -> float:
        self.roll(now, total)
        fraction = min(max((now - self._start) / self.window, 0.0), 1.0)
        return (self._previous * (1.0 - fraction) + total - self._start_total) / self.window


@dataclass(frozen=True, slots=True)
class TransitLoad:
    """What the policy sees of our current load."""

    participating: int
    bytes_per_second: float


@dataclass(frozen=True, slots=True)
class BuildDecision:
    status: int
    reason: str = ""
    reply_options: Mapping | None = None


@dataclass
class TransitPolicy:
    """Whether to join a tunnel: tunnel count, per-previous-hop request rate, transit bandwidth share.

    Rejections go out as TUNNEL_REJECT_BANDWIDTH unless `hide_reason` is off, as Java and i2pd do to hide
    other causes (legacy/tunnel-creation.rst "Reply Record Specification").
    """

    accept_tunnels: bool = True
    max_tunnels: int = 2500
    max_requests_per_peer: int = 60  # per request_window seconds, per previous hop
    request_window: float = 60.0
    max_tracked_peers: int = 4096
    bandwidth_limit: float | None = None  # transit bytes per second; None: unlimited
    bandwidth_share: float = 0.9  # reject once transit traffic reaches this share of the limit
    hide_reason: bool = True
    _requests: dict[bytes, list[float]] = field(default_factory=dict, repr=False)

    def decide(self, record: AnyBuildRequestRecord, previous_hop: bytes | None, load: TransitLoad,
               now: float) -> BuildDecision:
        decision = self._decide(record, previous_hop, load, now)
        if decision.status and self.hide_reason:
            return BuildDecision(BuildStatus.BANDWIDTH, decision.reason)
        return decision

    def _decide(self, record: AnyBuildRequestRecord, previous_hop: bytes | None, load: TransitLoad,
                now: float) -> BuildDecision:
        if not self.accept_tunnels:
            return BuildDecision(BuildStatus.CRITICAL, "not accepting tunnels")
        if load.participating >= self.max_tunnels:
            return BuildDecision(BuildStatus.TRANSIENT_OVERLOAD, "participating tunnel limit")
        if previous_hop is not None and not self._count_request(previous_hop, now):
            return BuildDecision(BuildStatus.PROBABILISTIC_REJECT, "request rate of the previous hop")
        available_kbps = None
        if self.bandwidth_limit is not None:
            if load.bytes_per_second >= self.bandwidth_share * self.bandwidth_limit:
                return BuildDecision(BuildStatus.BANDWIDTH, "transit bandwidth share used up")
            available_kbps = int((self.bandwidth_limit - load.bytes_per_second) // 1024)
        minimum = _kbps_option(record.options, "m")
        requested = _kbps_option(record.options, "r")
        if minimum is not None and available_kbps is not None and minimum > available_kbps:
            return BuildDecision(BuildStatus.BANDWIDTH, "requested minimum bandwidth not available")
        reply = None
        if minimum is not None or requested is not None:  # tunnel-creation-ecies.rst "Build Reply Option"
            offer = requested or minimum or 0
            if available_kbps is not None:
                offer = min(offer, available_kbps) if requested else available_kbps
            reply = Mapping.from_dict({"b": str(max(offer, minimum or 0, 1))})
        return BuildDecision(BuildStatus.ACCEPT, reply_options=reply)

    def _count_request(self, peer: bytes, now: float) -> bool:
        times = self._requests.get(peer)
        if times is None:
            if len(self._requests) >= self.max_tracked_peers:
                cutoff = now - self.request_window
                for stale in [p for p, t in self._requests.items() if not t or t[-1] < cutoff]:
                    del self._requests[stale]
                if len(self._requests) >= self.max_tracked_peers:
                    return False
            times = self._requests[peer] = []
        cutoff = now - self.request_window
        while times and times[0] < cutoff:
            times.pop(0)
        if len(times) >= self.max_requests_per_peer:
            return False
        times.append(now)
        return True


def _kbps_option(options: Mapping, key: str) -> int | None:
    value = options.get(key)
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    return int(value)


class TransitRole(IntEnum):
    PARTICIPANT = 0
    INBOUND_GATEWAY = 1
    OUTBOUND_ENDPOINT = 2


class TransitTunnel:
    """One tunnel we take part in; its layer cipher and (by role) fragmenter or reassembler built once."""

    __slots__ = ("receive_tunnel_id", "next_hash", "next_tunnel_id", "next_tunnel_id_bytes", "role", "layer",
                 "created_at", "expires_at", "previous_hop", "messages_in", "bytes_in", "messages_out", "dropped",
                 "fragmenter", "reassembler")

    def __init__(self, record: AnyBuildRequestRecord, layer: LayerCipher, now: float, clock: Clock, rng: Rng):
        self.receive_tunnel_id = record.receive_tunnel_id
        self.next_hash = record.next_ident
        self.next_tunnel_id = record.next_tunnel_id
        self.next_tunnel_id_bytes = record.next_tunnel_id.to_bytes(4, "big")  # the TunnelData body's first field
        if record.is_inbound_gateway:
            self.role = TransitRole.INBOUND_GATEWAY
        elif record.is_outbound_endpoint:
            self.role = TransitRole.OUTBOUND_ENDPOINT
        else:
            self.role = TransitRole.PARTICIPANT
        self.layer = layer
        self.created_at = now
        self.expires_at = now + TRANSIT_LIFETIME
        self.previous_hop: bytes | None = None
        self.messages_in = self.bytes_in = self.messages_out = self.dropped = 0
        self.fragmenter = TunnelFragmenter(rng) if self.role == TransitRole.INBOUND_GATEWAY else None
        self.reassembler = TunnelReassembler(clock) if self.role == TransitRole.OUTBOUND_ENDPOINT else None


# module constants for the relay path: an enum member read through its class costs as much as the compare
_PARTICIPANT, _INBOUND_GATEWAY = TransitRole.PARTICIPANT, TransitRole.INBOUND_GATEWAY
_TUNNEL_DATA, _TUNNEL_DATA_SIZE = MessageType.TUNNEL_DATA, TunnelData.SIZE

_BUILD_TYPES = {
    MessageType.SHORT_TUNNEL_BUILD: (ShortTunnelBuild, OutboundTunnelBuildReply),
    MessageType.VARIABLE_TUNNEL_BUILD: (VariableTunnelBuild, VariableTunnelBuildReply),
    MessageType.TUNNEL_BUILD: (TunnelBuild, TunnelBuildReply),
}


@dataclass
class TransitStats:
    builds_seen: int = 0
    builds_not_for_us: int = 0
    builds_undecryptable: int = 0
    builds_replayed: int = 0
    builds_stale: int = 0
    builds_accepted: int = 0
    builds_rejected: int = 0
    data_unknown_tunnel: int = 0
    data_wrong_previous_hop: int = 0
    data_replayed: int = 0
    data_malformed: int = 0
    messages_forwarded: int = 0
    bytes_forwarded: int = 0


class TransitManager:
    """All our transit tunnels; build, TunnelData and TunnelGateway handling; expiry on the injected clock."""

    def __init__(self, router_hash: bytes, static_key: X25519Keypair, clock: Clock, rng: Rng,
                 policy: TransitPolicy | None = None, *, build_replay_capacity: int = 50_000,
                 data_replay_capacity: int = 250_000):
        self.router_hash = router_hash
        self._decryptor = BuildRecordDecryptor(router_hash, static_key)
        self._clock = clock
        self._rng = rng
        self.policy = policy or TransitPolicy()
        self._tunnels: dict[int, TransitTunnel] = {}
        self._unflushed: dict[int, TransitTunnel] = {}  # gateways holding a begun payload (at most every tunnel)
        # a record stays refusable for as long as its request time is acceptable
        self._build_replays = ReplayFilter(clock, (MAX_REQUEST_AGE_MINUTES + MAX_REQUEST_AHEAD_MINUTES) * 60.0,
                                           build_replay_capacity)
        # a secret salt that draws nothing from the RNG (seeded simulations keep their sequences)
        salt = sha256(b"tunnel IV filter" + static_key.private_bytes)[:16]
        self._data_replays = DecayingBloomFilter(clock, TRANSIT_LIFETIME, data_replay_capacity, salt)
        self._meter = _RateMeter(clock.monotonic())
        self.stats = TransitStats()
        self._msg_ids: list[int] = []
        self.on_decision: Callable[[DecryptedBuildRequest, BuildDecision], None] | None = None

    def __len__(self) -> int:
        return len(self._tunnels)

    def tunnel(self, receive_tunnel_id: int) -> TransitTunnel | None:
        return self._tunnels.get(receive_tunnel_id)

    def tunnels(self) -> list[TransitTunnel]:
        return list(self._tunnels.values())

    def load(self) -> TransitLoad:
        return TransitLoad(len(self._tunnels), self._meter.rate(self._clock.monotonic(), self.stats.bytes_forwarded))

    def _expiration(self, lifetime_ms: int) -> int:
        return int(self._clock.time() * 1000) + lifetime_ms

    def expiration_s(self) -> int:
        """A relayed TunnelData message's expiration, in the short header's seconds."""
        return int(self._clock.time()) + TUNNEL_MESSAGE_EXPIRATION_MS // 1000

    def _new_msg_id(self) -> int:
        # one RNG call per 256 messages: ids drawn in advance
        if not self._msg_ids:
            self._msg_ids = list(_MSG_IDS.unpack(self._rng(_MSG_IDS.size)))
        return self._msg_ids.pop()

    # --- builds

    def handle_build(self, message: I2NPMessage, from_hash: bytes | None = None) -> list[TunnelEvent]:
        """A ShortTunnelBuild, VariableTunnelBuild or TunnelBuild that is not a reply to one of our own builds."""
        types = _BUILD_TYPES.get(message.type)
        if types is None:
            return []
        request_cls, reply_cls = types
        self.stats.builds_seen += 1
        try:
            records = request_cls.parse(message.body).records
        except ProtocolError:
            self.stats.builds_undecryptable += 1
            return []
        index = self._decryptor.find_record(records)
        if index is None:
            self.stats.builds_not_for_us += 1
            return []
        try:
            request = self._decryptor.decrypt(records, index)
        except ProtocolError:
            self.stats.builds_undecryptable += 1
            return []
        if request.short and message.type != MessageType.SHORT_TUNNEL_BUILD:
            self.stats.builds_undecryptable += 1
            return []
        if self._build_replays.seen(request.ephemeral_key):
            self.stats.builds_replayed += 1
            return []
        record = request.record
        now_minutes = int(self._clock.time() // 60)
        age = now_minutes - record.request_time_minutes
        if age > MAX_REQUEST_AGE_MINUTES or -age > MAX_REQUEST_AHEAD_MINUTES:
            self.stats.builds_stale += 1
            return []
        if request.short and record.layer_encryption != LAYER_ENCRYPTION_AES:  # type: ignore[union-attr]
            self.stats.builds_undecryptable += 1
            return []

        now = self._clock.monotonic()
        decision = self.policy.decide(record, from_hash, self.load(), now)
        if decision.status == BuildStatus.ACCEPT and record.receive_tunnel_id in self._tunnels:
            decision = BuildDecision(BuildStatus.BANDWIDTH, "receive tunnel id in use")
        if self.on_decision is not None:
            self.on_decision(request, decision)
        if decision.status == BuildStatus.ACCEPT:
            layer = LayerCipher(request.keys.layer_key, request.keys.iv_key)
            self._tunnels[record.receive_tunnel_id] = TransitTunnel(record, layer, now, self._clock, self._rng)
            self.stats.builds_accepted += 1
        else:
            self.stats.builds_rejected += 1
        replied = self._decryptor.reply(records, request, decision.status, self._rng, decision.reply_options)

        if record.is_outbound_endpoint:
            reply = I2NPMessage(reply_cls.TYPE, record.next_message_id,
                                self._expiration(BUILD_MESSAGE_EXPIRATION_MS), reply_cls(replied).to_bytes())
            return [SendBuildReply(record.next_ident, record.next_tunnel_id, reply, request.keys.garlic_reply_key,
                                   request.keys.garlic_reply_tag)]
        forward = I2NPMessage(message.type, record.next_message_id, self._expiration(BUILD_MESSAGE_EXPIRATION_MS),
                              request_cls(replied).to_bytes())
        return [SendToRouter(record.next_ident, forward)]

    # --- tunnel traffic

    def handle_tunnel_data(self, data: TunnelData, from_hash: bytes | None = None) -> list[TunnelEvent]:
        return self.handle_tunnel_payload(data.tunnel_id, data.data, from_hash)

    def handle_tunnel_payload(self, tunnel_id: int, payload: bytes, from_hash: bytes | None = None
                              ) -> list[TunnelEvent]:
        """A TunnelData message's fields: relay()'s outcome as events."""
        out = self.relay(tunnel_id, payload, from_hash)
        if type(out) is tuple:
            return [SendToRouter(out[0], I2NPMessage.from_raw(out[1]))]
        return out

    def relay(self, tunnel_id: int, payload: bytes, from_hash: bytes | None = None, now: float | None = None,
              expiration_s: int | None = None) -> tuple[bytes, RawI2NP] | list[TunnelEvent]:
        """A TunnelData message's fields, read without a TunnelData object. At a participant the answer is the
        next hop and the TunnelData to send it, in short-header terms (no object per message: the relay path);
        at an outbound endpoint, events; for a message dropped, []. A caller relaying a batch reads the clock
        once: `now` (monotonic) and the `expiration_s` of the messages relayed (expiration_s())."""
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is None or tunnel.role is _INBOUND_GATEWAY:
            self.stats.data_unknown_tunnel += 1
            return []
        if from_hash is not None:
            previous = tunnel.previous_hop
            if previous is None:
                tunnel.previous_hop = from_hash  # tunnel-implementation.md: fixed by the first message
            elif previous != from_hash:
                self.stats.data_wrong_previous_hop += 1
                tunnel.dropped += 1
                return []
        # the IV and the first block as an unordered pair, so swapping them does not pass (tunnel-implementation.md)
        if self._data_replays.seen_pair(payload[:16], payload[16:32], now):
            self.stats.data_replayed += 1
            tunnel.dropped += 1
            return []
        tunnel.messages_in += 1
        tunnel.bytes_in += _TUNNEL_DATA_SIZE
        if tunnel.role is _PARTICIPANT:
            return self._forward_raw(tunnel, tunnel.layer.encrypt(payload, tunnel.next_tunnel_id_bytes), expiration_s)
        return self._endpoint_deliver(tunnel, tunnel.layer.encrypt(payload))

    def _forward_raw(self, tunnel: TransitTunnel, body: bytes, expiration_s: int | None = None
                     ) -> tuple[bytes, RawI2NP]:
        """The TunnelData `body` (next tunnel id included) to the next hop, counted."""
        tunnel.messages_out += 1
        stats = self.stats
        stats.messages_forwarded += 1
        stats.bytes_forwarded += _TUNNEL_DATA_SIZE
        if expiration_s is None:
            expiration_s = self.expiration_s()
        return tunnel.next_hash, (_TUNNEL_DATA, self._new_msg_id(), expiration_s, body)

    def _forward(self, tunnel: TransitTunnel, body: bytes) -> SendToRouter:
        next_hash, raw = self._forward_raw(tunnel, body)
        return SendToRouter(next_hash, I2NPMessage.from_raw(raw))

    def _endpoint_deliver(self, tunnel: TransitTunnel, payload: bytes) -> list[TunnelEvent]:
        assert tunnel.reassembler is not None
        try:
            complete = tunnel.reassembler.receive(payload)
        except ProtocolError:
            self.stats.data_malformed += 1
            tunnel.dropped += 1
            return []
        events: list[TunnelEvent] = []
        for item in complete:
            try:
                message = decode_standard(item.data)
            except ProtocolError:
                self.stats.data_malformed += 1
                continue
            delivery = item.delivery
            size = len(item.data)
            if delivery.delivery_type == TunnelDeliveryType.ROUTER:
                events.append(SendToRouter(delivery.to_hash, message))  # type: ignore[arg-type]
            elif delivery.delivery_type == TunnelDeliveryType.TUNNEL:
                events.append(SendToTunnel(delivery.to_hash, delivery.tunnel_id, message))  # type: ignore[arg-type]
            else:
                tunnel.dropped += 1  # LOCAL at an outbound endpoint: unimplemented in the network (tunnel-message.rst)
                continue
            tunnel.messages_out += 1
            self.stats.messages_forwarded += 1
            self.stats.bytes_forwarded += size
        return events

    def handle_tunnel_gateway(self, gateway: TunnelGateway, from_hash: bytes | None = None, *,
                              flush: bool = True) -> list[TunnelEvent]:
        """A message for an inbound tunnel we are the gateway of: fragment, encrypt, send to the next hop.

        Without `flush`, a last payload with room left waits for the next message to this tunnel or for
        flush_gateways(), so a burst of small messages shares TunnelData messages (as i2pd's gateways do).
        """
        tunnel = self._tunnels.get(gateway.tunnel_id)
        if tunnel is None or tunnel.fragmenter is None:
            self.stats.data_unknown_tunnel += 1
            return []
        tunnel.messages_in += 1
        tunnel.bytes_in += STANDARD_HEADER_SIZE + len(gateway.message.body)
        try:
            tunnel.fragmenter.put_message(gateway.message, LOCAL)
        except ValueError:
            tunnel.dropped += 1  # too big for one fragment chain
            return []
        if not flush and tunnel.fragmenter.partial:
            self._unflushed[gateway.tunnel_id] = tunnel
        return self._gateway_payloads(tunnel, flush)

    @property
    def gateways_unflushed(self) -> bool:
        return bool(self._unflushed)

    def flush_gateways(self) -> list[TunnelEvent]:
        """Send the begun payloads of gateways that handle_tunnel_gateway(flush=False) left open, padded."""
        unflushed, self._unflushed = self._unflushed, {}
        return [event for tunnel in unflushed.values() for event in self._gateway_payloads(tunnel, True)]

    def _gateway_payloads(self, tunnel: TransitTunnel, partial: bool) -> list[TunnelEvent]:
        assert tunnel.fragmenter is not None
        prefix = tunnel.next_tunnel_id_bytes
        return [self._forward(tunnel, tunnel.layer.encrypt(payload, prefix))
                for payload in tunnel.fragmenter.flush(partial=partial)]

    def expire(self) -> int:
        """Drop tunnels past their lifetime and stale partial messages at our endpoints; returns tunnels dropped."""
        now = self._clock.monotonic()
        self._meter.roll(now, self.stats.bytes_forwarded)
        stale = [tid for tid, tunnel in self._tunnels.items() if tunnel.expires_at <= now]
        for tid in stale:
            del self._tunnels[tid]
            self._unflushed.pop(tid, None)
        for tunnel in self._tunnels.values():
            if tunnel.reassembler is not None:
                tunnel.reassembler.expire()
        return len(stale)
