"""Transit hop processing: decisions, replays, stale requests, previous-hop checks, expiry, hostile input."""
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import FakeClock
from core.data.primitives import Mapping
from core.i2np import (I2NPMessage, MessageType, OutboundTunnelBuildReply, ShortTunnelBuild, TunnelData,
                       TunnelGateway, VariableTunnelBuildReply, decode_standard)
from core.bloom import DecayingBloomFilter
from core.tunnel.build import BuildStatus, ShortBuildRequestRecord, create_build
from core.tunnel.crypto import CreatorLayers
from core.tunnel.events import SendBuildReply, SendToRouter, SendToTunnel
from core.tunnel.fragment import TunnelDelivery, TunnelFragmenter, TunnelMessage, TunnelReassembler
from core.tunnel.participant import (TRANSIT_LIFETIME, ReplayFilter, TransitLoad,
                                     TransitManager, TransitPolicy, TransitRole)

from .helpers import routers, seeded_rng

PREVIOUS = b"\x11" * 32


def _setup(policy=None, clock=None):
    clock = clock or FakeClock()
    me, hop, creator = routers(3)
    manager = TransitManager(hop.hash, hop.static, clock, seeded_rng(1), policy)
    return clock, me, hop, creator, manager


def _one_hop_build(clock, creator, hop, *, inbound=True, short=True, options=None, seed=2):
    request = create_build([hop.identity], inbound=inbound, our_hash=creator.hash, clock=clock, rng=seeded_rng(seed),
                           reply_gateway=b"\x22" * 32, reply_tunnel_id=55, short=short,
                           options=[options] if options else None)
    message = I2NPMessage(request.message.TYPE, request.msg_id, 0, request.message.to_bytes())
    return request, message


def test_inbound_gateway_build_forwards_to_creator():
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop)
    events = manager.handle_build(message, PREVIOUS)
    assert len(events) == 1 and isinstance(events[0], SendToRouter)
    forwarded = events[0].message
    assert events[0].router_hash == creator.hash
    assert forwarded.type == MessageType.SHORT_TUNNEL_BUILD and forwarded.msg_id == request.pending.reply_msg_id
    result = request.pending.process_reply(ShortTunnelBuild.parse(forwarded.body).records)
    assert result.success
    tunnel = manager.tunnel(request.pending.hops[0].receive_tunnel_id)
    assert tunnel.role == TransitRole.INBOUND_GATEWAY and tunnel.next_hash == creator.hash
    assert manager.stats.builds_accepted == 1


@pytest.mark.parametrize("short", [True, False])
def test_outbound_endpoint_sends_reply_into_reply_tunnel(short):
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop, inbound=False, short=short)
    [event] = manager.handle_build(message, creator.hash)
    assert isinstance(event, SendBuildReply)
    assert event.gateway_hash == b"\x22" * 32 and event.tunnel_id == 55
    assert event.message.msg_id == request.pending.reply_msg_id
    if short:
        assert event.message.type == MessageType.OUTBOUND_TUNNEL_BUILD_REPLY
        assert len(event.garlic_key) == 32 and len(event.garlic_tag) == 8
        records = OutboundTunnelBuildReply.parse(event.message.body).records
    else:
        assert event.message.type == MessageType.VARIABLE_TUNNEL_BUILD_REPLY and event.garlic_key is None
        records = VariableTunnelBuildReply.parse(event.message.body).records
    assert request.pending.process_reply(records).success


def test_replayed_record_is_dropped():
    clock, _, hop, creator, manager = _setup()
    _, message = _one_hop_build(clock, creator, hop)
    assert manager.handle_build(message, PREVIOUS)
    assert manager.handle_build(message, PREVIOUS) == []
    assert manager.stats.builds_replayed == 1 and len(manager) == 1


@pytest.mark.parametrize("skew_minutes, accepted", [(-66, False), (-64, True), (4, True), (6, False)])
def test_request_time_window(skew_minutes, accepted):
    clock, _, hop, creator, manager = _setup()
    creator_clock = FakeClock(clock.time() + skew_minutes * 60)
    _, message = _one_hop_build(creator_clock, creator, hop)
    assert bool(manager.handle_build(message, PREVIOUS)) == accepted
    assert manager.stats.builds_stale == (0 if accepted else 1)


def test_build_not_for_us_and_garbage():
    clock, me, hop, creator, manager = _setup()
    _, message = _one_hop_build(clock, creator, me)  # addressed to another router
    assert manager.handle_build(message, PREVIOUS) == []
    assert manager.stats.builds_not_for_us == 1
    assert manager.handle_build(I2NPMessage(MessageType.SHORT_TUNNEL_BUILD, 1, 0, b"\x09" + bytes(10))) == []
    assert manager.handle_build(I2NPMessage(MessageType.DATA, 1, 0, b"")) == []
    _, message = _one_hop_build(clock, creator, hop)
    records = ShortTunnelBuild.parse(message.body).records
    index = next(i for i, r in enumerate(records) if r[:16] == hop.hash[:16])
    tampered = bytearray(message.body)
    tampered[1 + index * 218 + 100] ^= 1
    assert manager.handle_build(I2NPMessage(message.type, 1, 0, bytes(tampered)), PREVIOUS) == []
    assert manager.stats.builds_undecryptable >= 2


def test_policy_limits_tunnels():
    clock, _, hop, creator, manager = _setup(TransitPolicy(max_tunnels=2, hide_reason=False))
    statuses = []
    for seed in range(4):
        request, message = _one_hop_build(clock, creator, hop, seed=seed + 10)
        [event] = manager.handle_build(message, bytes([seed]) * 32)
        statuses.append(request.pending.process_reply(ShortTunnelBuild.parse(event.message.body).records).statuses[0])
    assert statuses == [0, 0, BuildStatus.TRANSIENT_OVERLOAD, BuildStatus.TRANSIENT_OVERLOAD]
    assert len(manager) == 2 and manager.stats.builds_rejected == 2


def test_policy_rate_per_previous_hop():
    policy = TransitPolicy(max_requests_per_peer=2, request_window=60.0)
    clock, _, hop, creator, manager = _setup(policy)
    accepted = []
    for seed in range(3):
        request, message = _one_hop_build(clock, creator, hop, seed=seed + 20)
        [event] = manager.handle_build(message, PREVIOUS)
        accepted.append(request.pending.process_reply(ShortTunnelBuild.parse(event.message.body).records).success)
    assert accepted == [True, True, False]
    clock.advance(61)
    request, message = _one_hop_build(clock, creator, hop, seed=30)
    [event] = manager.handle_build(message, PREVIOUS)
    assert request.pending.process_reply(ShortTunnelBuild.parse(event.message.body).records).success


def test_policy_bandwidth_share_and_options():
    policy = TransitPolicy(bandwidth_limit=100 * 1024, bandwidth_share=0.5, hide_reason=False)

    def request(options):
        return ShortBuildRequestRecord.create(receive_tunnel_id=1, next_tunnel_id=2, next_ident=bytes(32), flags=0,
                                              request_time_minutes=1, next_message_id=3, rng=seeded_rng(),
                                              options=Mapping.from_dict(options))
    idle = TransitLoad(0, 10 * 1024)
    busy = TransitLoad(0, 60 * 1024)
    assert policy.decide(request({}), None, idle, 0).status == 0
    assert policy.decide(request({}), None, busy, 0).status == BuildStatus.BANDWIDTH
    assert policy.decide(request({"m": "200"}), None, idle, 0).status == BuildStatus.BANDWIDTH
    decision = policy.decide(request({"m": "20", "r": "50"}), None, idle, 0)
    assert decision.status == 0 and decision.reply_options.as_dict() == {"b": "50"}
    decision = TransitPolicy().decide(request({"r": "70"}), None, idle, 0)
    assert decision.reply_options.as_dict() == {"b": "70"}
    for junk in ("\u00b2", "-5", "1e3", "9" * 12, ""):
        assert TransitPolicy().decide(request({"m": junk}), None, idle, 0) == TransitPolicy().decide(
            request({}), None, idle, 0)


def test_options_reach_the_policy_and_reply_options_reach_the_creator():
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop, options=Mapping.from_dict({"m": "5", "r": "8"}))
    [event] = manager.handle_build(message, PREVIOUS)
    result = request.pending.process_reply(ShortTunnelBuild.parse(event.message.body).records)
    assert result.success and result.reply_options[0].as_dict() == {"b": "8"}


def _participant(manager, clock, creator, hop):
    """A 1-hop outbound tunnel whose only hop is the endpoint; returns (pending, tunnel)."""
    request, message = _one_hop_build(clock, creator, hop, inbound=False, seed=40)
    manager.handle_build(message, creator.hash)
    return request.pending, manager.tunnel(request.pending.hops[0].receive_tunnel_id)


def _outbound_payloads(pending, messages, rng):
    fragmenter = TunnelFragmenter(rng)
    for message, delivery in messages:
        fragmenter.put_message(message, delivery)
    layers = CreatorLayers(pending.layer_keys)
    tunnel_id = pending.hops[0].receive_tunnel_id
    return [TunnelData(tunnel_id, layers.remove(p)) for p in fragmenter.flush()]


def test_endpoint_delivers_and_checks_previous_hop_and_replays():
    clock, _, hop, creator, manager = _setup()
    pending, tunnel = _participant(manager, clock, creator, hop)
    message = I2NPMessage(MessageType.DATA, 5, 0, b"\x00\x00\x00\x03abc")
    target = b"\x33" * 32
    [data] = _outbound_payloads(pending, [(message, TunnelDelivery.to_tunnel(target, 9))], seeded_rng(4))
    assert manager.handle_tunnel_data(data, creator.hash) == [SendToTunnel(target, 9, message)]
    assert manager.handle_tunnel_data(data, creator.hash) == []  # replay
    assert manager.stats.data_replayed == 1
    [other] = _outbound_payloads(pending, [(message, TunnelDelivery.to_router(target))], seeded_rng(5))
    assert manager.handle_tunnel_data(other, PREVIOUS) == []  # not the previous hop of the first message
    assert manager.stats.data_wrong_previous_hop == 1
    assert manager.handle_tunnel_data(other, creator.hash) == [SendToRouter(target, message)]
    assert tunnel.messages_in == 2 and tunnel.messages_out == 2


def test_a_message_with_iv_and_first_block_swapped_is_a_replay():
    clock, _, hop, creator, manager = _setup()
    pending, tunnel = _participant(manager, clock, creator, hop)
    message = I2NPMessage(MessageType.DATA, 5, 0, b"\x00\x00\x00\x03abc")
    [data] = _outbound_payloads(pending, [(message, TunnelDelivery.to_router(b"\x33" * 32))], seeded_rng(4))
    swapped = TunnelData(data.tunnel_id, data.data[16:32] + data.data[:16] + data.data[32:])
    assert manager.handle_tunnel_data(data, creator.hash) != []
    assert manager.handle_tunnel_data(swapped, creator.hash) == []   # tunnel-implementation.md
    assert manager.stats.data_replayed == 1


def test_decaying_bloom_filter_pairs_are_unordered():
    bloom = DecayingBloomFilter(FakeClock(), period=10.0, capacity=1000, salt=b"s" * 16)
    assert not bloom.seen_pair(b"a" * 16, b"b" * 16)
    assert bloom.seen_pair(b"b" * 16, b"a" * 16)
    assert bloom.seen_pair(b"a" * 16, b"b" * 16)
    fresh = sum(not bloom.seen_pair(i.to_bytes(16, "big"), b"b" * 16) for i in range(500))
    assert fresh >= 495 and not bloom.seen_pair(b"c" * 16, b"c" * 16) and bloom.seen_pair(b"c" * 16, b"c" * 16)


def test_endpoint_drops_local_delivery_and_garbage():
    clock, _, hop, creator, manager = _setup()
    pending, tunnel = _participant(manager, clock, creator, hop)
    message = I2NPMessage(MessageType.DATA, 5, 0, b"\x00\x00\x00\x00")
    [data] = _outbound_payloads(pending, [(message, TunnelDelivery.local())], seeded_rng(6))
    assert manager.handle_tunnel_data(data) == []
    assert manager.handle_tunnel_data(TunnelData(data.tunnel_id, bytes(1024))) == []
    assert manager.stats.data_malformed == 1 and tunnel.dropped == 2


def test_unknown_tunnel_and_wrong_role():
    clock, _, hop, creator, manager = _setup()
    assert manager.handle_tunnel_data(TunnelData(12345, bytes(1024))) == []
    request, message = _one_hop_build(clock, creator, hop)  # inbound gateway
    manager.handle_build(message)
    gateway_id = request.pending.hops[0].receive_tunnel_id
    assert manager.handle_tunnel_data(TunnelData(gateway_id, bytes(1024))) == []
    assert manager.handle_tunnel_gateway(TunnelGateway(999, I2NPMessage(20, 1, 0, bytes(4)))) == []
    assert manager.stats.data_unknown_tunnel == 3


def test_gateway_fragments_and_encrypts_for_the_next_hop():
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop)
    manager.handle_build(message)
    pending = request.pending
    inner = I2NPMessage(MessageType.DATA, 77, 0, (3000).to_bytes(4, "big") + bytes(3000))
    events = manager.handle_tunnel_gateway(TunnelGateway(pending.hops[0].receive_tunnel_id, inner))
    assert len(events) == 4 and all(e.router_hash == creator.hash for e in events)
    layers = CreatorLayers(pending.layer_keys)
    for event in events:
        data = TunnelData.parse(event.message.body)
        assert data.tunnel_id == pending.own_tunnel_id
        TunnelMessage.parse(layers.remove(data.data))  # checksum verifies after the creator removes the layer
    too_big = I2NPMessage(MessageType.DATA, 78, 0, bytes(65_000))
    assert manager.handle_tunnel_gateway(TunnelGateway(pending.hops[0].receive_tunnel_id, too_big)) == []


def test_gateway_packs_a_burst_into_shared_tunnel_messages_in_order():
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop)
    manager.handle_build(message)
    pending = request.pending
    gateway_id = pending.hops[0].receive_tunnel_id
    sizes = [100, 1700, 60, 1700, 900, 30, 300]   # streaming packets and acks, as a burst brings them
    messages = [I2NPMessage(MessageType.DATA, 1 + i, 0, (size - 4).to_bytes(4, "big") + bytes([i]) * (size - 4))
                for i, size in enumerate(sizes)]
    events = []
    for inner in messages:
        events += manager.handle_tunnel_gateway(TunnelGateway(gateway_id, inner), flush=False)
        assert manager.gateways_unflushed
    events += manager.flush_gateways()
    assert not manager.gateways_unflushed and manager.flush_gateways() == []
    # 4864 bytes of messages (with 16-byte headers, 3 bytes of instructions each) fill 5 tunnel messages,
    # where one flush per message took 9
    assert len(events) == 5
    layers = CreatorLayers(pending.layer_keys)
    reassembler = TunnelReassembler(clock)
    out = []
    for event in events:
        data = TunnelData.parse(event.message.body)
        out += [decode_standard(m.data) for m in reassembler.receive(layers.remove(data.data))]
    assert [(m.msg_id, m.body) for m in out] == [(m.msg_id, m.body) for m in messages]


def test_gateway_flushes_at_once_by_default():
    clock, _, hop, creator, manager = _setup()
    request, message = _one_hop_build(clock, creator, hop)
    manager.handle_build(message)
    gateway_id = request.pending.hops[0].receive_tunnel_id
    small = I2NPMessage(MessageType.DATA, 5, 0, (20).to_bytes(4, "big") + bytes(20))
    assert len(manager.handle_tunnel_gateway(TunnelGateway(gateway_id, small))) == 1
    assert not manager.gateways_unflushed
    # a held payload is forgotten with its expired tunnel
    assert manager.handle_tunnel_gateway(TunnelGateway(gateway_id, small), flush=False) == []
    clock.advance(TRANSIT_LIFETIME + 1)
    manager.expire()
    assert not manager.gateways_unflushed and manager.flush_gateways() == []


def test_tunnels_expire():
    clock, _, hop, creator, manager = _setup()
    _, message = _one_hop_build(clock, creator, hop)
    manager.handle_build(message)
    clock.advance(TRANSIT_LIFETIME - 1)
    assert manager.expire() == 0 and len(manager) == 1
    clock.advance(2)
    assert manager.expire() == 1 and len(manager) == 0


@pytest.mark.parametrize("make", [lambda clock: ReplayFilter(clock, period=10.0, capacity=3),
                                  lambda clock: DecayingBloomFilter(clock, period=10.0, capacity=3, salt=b"s" * 16)])
def test_replay_filters_remember_a_key_one_to_two_periods(make):
    clock = FakeClock()
    replay = make(clock)
    assert not replay.seen(b"a")
    assert replay.seen(b"a")
    clock.advance(10)
    assert replay.seen(b"a")  # still in the previous generation
    clock.advance(10)
    assert not replay.seen(b"a")  # forgotten after two periods


def test_replay_filter_capacity():
    clock = FakeClock()
    replay = ReplayFilter(clock, period=10.0, capacity=3)
    for key in range(10):
        replay.seen(key)
    assert len(replay) <= 6 and replay.early_rotations >= 2
    clock.advance(25)
    assert not replay.seen(9)  # both generations dropped after a long idle time


@given(st.integers(1, 0xFFFFFFFF), st.binary(min_size=1024, max_size=1024))
def test_random_tunnel_data_into_endpoint(tunnel_id, payload):
    clock, _, hop, creator, manager = _setup()
    pending, tunnel = _participant(manager, clock, creator, hop)
    manager.handle_tunnel_data(TunnelData(tunnel_id, payload))
    manager.handle_tunnel_data(TunnelData(tunnel.receive_tunnel_id, payload))


@given(st.sampled_from([MessageType.SHORT_TUNNEL_BUILD, MessageType.VARIABLE_TUNNEL_BUILD, MessageType.TUNNEL_BUILD]),
       st.binary(max_size=2200))
def test_random_build_bodies(msg_type, body):
    _, _, hop, _, manager = _setup()
    assert manager.handle_build(I2NPMessage(msg_type, 1, 0, body)) == []


@given(st.binary(min_size=218 - 16, max_size=218 - 16), st.integers(1, 8))
def test_random_records_addressed_to_us(rest, count):
    _, _, hop, _, manager = _setup()
    record = hop.hash[:16] + rest
    body = bytes([count]) + record * count
    assert manager.handle_build(I2NPMessage(MessageType.SHORT_TUNNEL_BUILD, 1, 0, body)) == []


def test_decaying_bloom_filter_capacity_and_error_rate():
    clock = FakeClock()
    bloom = DecayingBloomFilter(clock, period=10.0, capacity=1000, salt=b"s" * 16)
    keys = [i.to_bytes(16, "big") for i in range(1, 3001)]
    fresh = sum(not bloom.seen(key) for key in keys)
    assert fresh >= 2990  # a few false positives at most while generations fill
    assert len(bloom) <= 2000 and bloom.early_rotations >= 2
    assert all(bloom.seen(key) for key in keys[-1000:])  # no false negatives for what it holds
    clock.advance(25)
    assert not bloom.seen(keys[-1])  # both generations dropped after a long idle time


def test_decaying_bloom_filter_add_and_contains():
    bloom = DecayingBloomFilter(FakeClock(), period=10.0, capacity=100, salt=b"s" * 16)
    assert b"tag" not in bloom and b"tag" not in bloom  # asking does not remember
    bloom.add(b"tag")
    bloom.add(b"tag")
    assert b"tag" in bloom and len(bloom) == 1 and bloom.seen(b"tag")


def test_decaying_bloom_filter_rotates_in_its_own_memory():
    import tracemalloc
    clock = FakeClock()
    bloom = DecayingBloomFilter(clock, period=10.0, capacity=16384, salt=b"s" * 16)   # 128 KiB a generation
    bloom.add(b"old")
    tracemalloc.start()
    try:
        for i in range(3):
            clock.advance(10)
            bloom.add(bytes([i]))
        clock.advance(25)        # idle: both generations cleared
        bloom.add(b"new")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024, peak
    assert b"old" not in bloom and b"new" in bloom and bytes([2]) not in bloom and len(bloom) == 1


def _resident_kb(words) -> int:
    """Resident KiB of the anonymous mapping behind a filter generation (mincore(2))."""
    import ctypes
    import mmap
    area = words.obj
    start = ctypes.addressof(ctypes.c_char.from_buffer(area))
    pages = (len(area) + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(len(area)), vec) == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec) * mmap.PAGESIZE // 1024


@pytest.mark.skipif(sys.platform != "linux", reason="mincore(2) of Linux")
def test_decaying_bloom_filter_holds_pages_only_for_what_it_holds():
    clock = FakeClock()
    bloom = DecayingBloomFilter(clock, period=10.0, capacity=250_000, salt=b"s" * 16)   # 2 MiB a generation
    generation = bloom._current
    for i in range(20):
        bloom.add(i.to_bytes(4, "big"))
    assert _resident_kb(generation) <= 20 * 4      # a page per key at most, not 2 MiB
    for i in range(200_000):
        bloom.add(i.to_bytes(4, "big"))
    assert _resident_kb(generation) > 1900         # a busy generation is resident
    clock.advance(25)                              # idle two periods: both generations cleared
    assert b"x" not in bloom                       # the lookup rotates, then reads a page of each generation
    assert _resident_kb(bloom._current) <= 4 and _resident_kb(bloom._previous) <= 4
    assert 5 .to_bytes(4, "big") not in bloom and len(bloom) == 0
