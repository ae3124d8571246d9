"""The relay path (TunnelService.relay_tunnel_data, TransitManager.relay) against the general message path."""
from __future__ import annotations

from core.clock import FakeClock
from core.i2np import I2NPMessage, MessageType, TunnelData
from core.transport.ntcp2.blocks import DateTimeBlock
from core.tunnel.build import create_build
from core.tunnel.crypto import LayerCipher
from core.tunnel.service import TunnelService, TunnelSettings

from .helpers import reveal_for_second_hop, routers, seeded_rng

PREVIOUS = b"\x11" * 32


class NoNetDb:
    def get_router_info(self, router_hash: bytes):
        return None


def _hop_service(clock, hop, build_body: bytes, sent: list, raw_sent: list | None) -> TunnelService:
    """The second hop of a 2-hop inbound tunnel (a plain participant); sends go to `sent`, raw ones to `raw_sent`."""
    send_raw = None if raw_sent is None else (lambda peer, raw: raw_sent.append((peer, raw)) or True)
    service = TunnelService(router_hash=hop.hash, static_key=hop.static, netdb=NoNetDb(), clock=clock,
                            rng=seeded_rng(3), settings=TunnelSettings(ip_restriction=0),
                            send=lambda peer, message: sent.append((peer, message)) or True, send_raw=send_raw,
                            connected=lambda peer: True)
    service.transit.handle_build(I2NPMessage(MessageType.SHORT_TUNNEL_BUILD, 1, 0, build_body), PREVIOUS)
    return service


def _participant_pair():
    clock = FakeClock()
    first, hop, creator = routers(3)
    request = create_build([first.identity, hop.identity], inbound=True, our_hash=creator.hash, clock=clock,
                           rng=seeded_rng(8))
    body = reveal_for_second_hop(request)
    sent, raw_sent = [], []
    relaying = _hop_service(clock, hop, body, [], raw_sent)
    general = _hop_service(clock, hop, body, sent, None)
    keys = request.pending.hops[1]
    return clock, relaying, general, keys, sent, raw_sent


def _tunnel_data(tunnel_id: int, n: int) -> bytes:
    return tunnel_id.to_bytes(4, "big") + bytes([n]) * 16 + bytes(range(256)) * 3 + bytes(240)


def test_relay_path_sends_what_the_message_path_sends():
    clock, relaying, general, hop, sent, raw_sent = _participant_pair()
    tunnel = relaying.transit.tunnel(hop.receive_tunnel_id)
    bodies = [_tunnel_data(hop.receive_tunnel_id, n) for n in range(3)]
    assert relaying.relay_tunnel_data(PREVIOUS, [(MessageType.TUNNEL_DATA, n, 99, body)
                                                 for n, body in enumerate(bodies)]) == []
    for n, body in enumerate(bodies):
        assert general.handle_message(PREVIOUS, I2NPMessage(MessageType.TUNNEL_DATA, n, 99_000, body))
    assert len(raw_sent) == len(sent) == 3
    layer = LayerCipher(hop.keys.layer_key, hop.keys.iv_key)
    for (peer, raw), (general_peer, message), body in zip(raw_sent, sent, bodies):
        msg_type, _, expiration_s, out = raw
        assert peer == general_peer == tunnel.next_hash
        assert msg_type == message.type == MessageType.TUNNEL_DATA and out == message.body
        assert len(out) == TunnelData.SIZE and out[:4] == tunnel.next_tunnel_id.to_bytes(4, "big")
        assert layer.decrypt(out[4:]) == body[4:]                  # one layer on, the hop's own
        assert expiration_s == int(clock.time()) + 10              # a fresh expiration, not the sender's
    assert relaying.transit.stats == general.transit.stats
    assert tunnel.messages_in == tunnel.messages_out == 3


def test_relay_path_hands_back_what_is_not_a_transit_message_in_order():
    _, relaying, _, hop, _, raw_sent = _participant_pair()
    ours = 777
    relaying._inbound_ends[ours] = (None, None)   # a tunnel of our own ends here: the message path reads it
    relayed = (MessageType.TUNNEL_DATA, 1, 99, _tunnel_data(hop.receive_tunnel_id, 1))
    items = [DateTimeBlock(5), (MessageType.DATA, 2, 99, b"\x00\x00\x00\x01x"), relayed,
             (MessageType.TUNNEL_DATA, 3, 99, _tunnel_data(ours, 3)),
             (MessageType.TUNNEL_DATA, 4, 99, bytes(20)),            # malformed: the message path says why
             (MessageType.TUNNEL_DATA, 5, 99, _tunnel_data(0, 5))]
    assert relaying.relay_tunnel_data(PREVIOUS, items) == [item for item in items if item is not relayed]
    assert len(raw_sent) == 1


def test_relay_path_drops_replays_strangers_and_unknown_tunnels():
    _, relaying, _, hop, _, raw_sent = _participant_pair()
    body = _tunnel_data(hop.receive_tunnel_id, 1)
    items = [(MessageType.TUNNEL_DATA, 1, 99, body), (MessageType.TUNNEL_DATA, 2, 99, body),
             (MessageType.TUNNEL_DATA, 3, 99, _tunnel_data(4242, 2))]
    assert relaying.relay_tunnel_data(PREVIOUS, items) == []
    assert relaying.relay_tunnel_data(b"\x22" * 32, [(MessageType.TUNNEL_DATA, 4, 99,
                                                      _tunnel_data(hop.receive_tunnel_id, 9))]) == []
    stats = relaying.transit.stats
    assert len(raw_sent) == 1
    assert stats.data_replayed == stats.data_unknown_tunnel == stats.data_wrong_previous_hop == 1


def test_transit_load_counts_relayed_bytes():
    clock, relaying, _, hop, _, _ = _participant_pair()
    items = [(MessageType.TUNNEL_DATA, n, 99, _tunnel_data(hop.receive_tunnel_id, n)) for n in range(20)]
    relaying.relay_tunnel_data(PREVIOUS, items)
    clock.advance(5.0)
    assert relaying.transit.load().bytes_per_second == 20 * TunnelData.SIZE / 10.0
    clock.advance(10.0)    # the window read late: its bytes spread over the time it covered
    assert abs(relaying.transit.load().bytes_per_second - 20 * TunnelData.SIZE / 15.0) < 1e-6
    clock.advance(30.0)
    assert relaying.transit.load().bytes_per_second == 0.0
