"""Connection and manager on a simulated clock: transfers under loss, handshakes, closes, limits, abuse."""
import random
import struct
from dataclasses import replace

import pytest

from core.clock import FakeClock
from core.streaming import packet as pk
from core.streaming.config import ConnectionLimits, StreamConfig
from core.streaming.connection import State
from core.streaming.link import Datagram, Impairments, SimulatedNetwork
from core.streaming.manager import StreamManager
from core.streaming.packet import Packet, hash_to_nacks

from .conftest import seeded_rng


class Pair:
    def __init__(self, alice, bob, *, impairments=Impairments(delay=0.05), seed=1, config=StreamConfig(),
                 server_config=None, limits=ConnectionLimits(), listen=True):
        self.clock = FakeClock()
        self.rnd = random.Random(seed)
        self.a = StreamManager(alice, clock=self.clock, rng=seeded_rng(seed), config=config)
        self.b = StreamManager(bob, clock=self.clock, rng=seeded_rng(seed + 1000), config=server_config or config,
                               limits=limits)
        if listen:
            self.b.listen()
        self.net = SimulatedNetwork(self.clock, impairments, seed=seed)
        self.net.add(self.a)
        self.net.add(self.b)
        self.wire: list[tuple[bytes, Packet]] = []
        self.net.tap = self._tap

    def _tap(self, to, datagram):
        try:
            self.wire.append((to, Packet.parse(datagram.payload, peer=None)))
        except Exception:
            pass
        return datagram

    def run(self, condition, timeout=120.0):
        return self.net.run_until(condition, timeout=timeout)

    def accept(self, timeout=30.0):
        box = []
        assert self.run(lambda: box.append(self.b.accept()) or box[-1] is not None, timeout)
        return box[-1]


def exchange(pair, client, size_up, size_down, timeout=600.0):
    """Both sides send `size` random bytes at once, close when done, read to EOF."""
    up, down = pair.rnd.randbytes(size_up), pair.rnd.randbytes(size_down)
    client.send(up)
    client.close()
    got_up, got_down = bytearray(), bytearray()
    box = []

    def done():
        if not box:
            server = pair.b.accept()
            if server is None:
                return False
            box.append(server)
            server.send(down)
            server.close()
        got_up.extend(box[0].read())
        got_down.extend(client.read())
        return client.is_terminated and box[0].is_terminated
    assert pair.run(done, timeout), (client, box, dict(pair.a.stats), dict(pair.b.stats))
    assert bytes(got_up) == up and bytes(got_down) == down
    return box[0]


IMPAIRED = [
    Impairments(delay=0.05),
    Impairments(delay=0.1, jitter=0.05, loss=0.05, duplicate=0.03, reorder=0.05),
    Impairments(delay=0.3, jitter=0.1, loss=0.10, duplicate=0.05, reorder=0.1),
    Impairments(delay=0.02, bandwidth=500_000, queue_delay=0.2, loss=0.01),
]


@pytest.mark.parametrize("impairments", IMPAIRED, ids=["clean", "lossy", "very-lossy", "bottleneck"])
def test_megabytes_both_ways_intact(alice, bob, impairments):
    pair = Pair(alice, bob, impairments=impairments, seed=3)
    client = pair.a.connect(bob.destination)
    server = exchange(pair, client, 1_500_000, 1_000_000)
    assert client.state is State.CLOSED and server.state is State.CLOSED
    if impairments.loss:
        assert pair.net.dropped > 0
        assert pair.a.stats["fast_retransmits"] + pair.a.stats["timeouts"] > 0
        assert pair.b.stats["fast_retransmits"] + pair.b.stats["timeouts"] > 0
    if impairments.duplicate:
        assert pair.a.stats["duplicates_received"] + pair.b.stats["duplicates_received"] > 0
    assert pair.net.run_until(lambda: not pair.a.connections and not pair.b.connections, timeout=30)


def test_rto_follows_rfc6298(alice, bob):
    pair = Pair(alice, bob, impairments=Impairments(delay=0.2))
    client = pair.a.connect(bob.destination)
    assert client.rto == 9.0   # INITIAL_TIMEOUT until the first sample
    exchange(pair, client, 300_000, 0)
    assert 0.4 <= client.srtt <= 0.6   # 0.4 s path plus the peer's delayed acks
    assert client.rto >= client.srtt and client.config.min_rto <= client.rto <= client.config.max_rto


def test_retransmissions_back_off_then_give_up(alice, bob, caplog):
    caplog.set_level("INFO", logger="core.streaming.connection")
    pair = Pair(alice, bob, config=StreamConfig(max_timeout_backoff=0))
    client = pair.a.connect(bob.destination)
    pair.accept()
    assert pair.run(lambda: client.is_established)
    pair.net.tap = lambda to, d: None    # the path dies
    client.send(b"x" * 5000)
    rtos = []
    assert pair.run(lambda: rtos.append(client.rto) or client.is_terminated, timeout=3600)
    assert client.state is State.RESET and client.error == "too many retransmissions"
    [record] = [r for r in caplog.records if r.name == "core.streaming.connection"]
    assert f"packet 1 sent {client.config.max_resends + 1} times without an ack" in record.getMessage()
    distinct = sorted(set(rtos))
    assert max(rtos) == client.config.max_rto
    assert sum(1 for low, high in zip(distinct, distinct[1:]) if high == pytest.approx(2 * low)) >= 3  # doubling
    assert pair.a.stats["timeouts"] == client.config.max_resends


def test_a_timed_out_packet_is_retried_within_max_timeout_backoff_while_the_path_mends(alice, bob):
    """Each timeout sends the packet another way (the link's path_failed): the waits between tries stop
    doubling at max_timeout_backoff, so a path mended 40 s after it broke carries the next try within 9 s."""
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    pair.accept()
    assert pair.run(lambda: client.is_established)
    pair.net.tap = lambda to, d: None    # a hop of the path restarted
    client.send(b"x" * 5000)
    broke = pair.clock.monotonic()
    rtos = []
    pair.run(lambda: rtos.append(client.rto) or pair.clock.monotonic() - broke >= 40, timeout=60)
    assert max(rtos) == client.config.max_timeout_backoff == 9.0 and pair.a.stats["timeouts"] >= 5
    pair.net.tap = pair._tap              # mended
    mended = pair.clock.monotonic()
    waiting = len(client._unacked)
    assert pair.run(lambda: len(client._unacked) < waiting, timeout=60)
    assert pair.clock.monotonic() - mended <= 9.5
    assert pair.run(lambda: not client._unacked, timeout=60) and client.state is State.OPEN


def test_after_a_timeout_the_window_lost_with_a_broken_path_goes_again_as_acks_come(alice, bob):
    """A hop restarted with a window of packets in flight: once the path is mended, the first retransmission's
    ack lets the rest go again at once (slow start), not one packet per retransmission timeout."""
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    assert pair.run(lambda: client.is_established)
    pair.net.tap = lambda to, d: None    # every packet of the window is lost
    client.send(b"y" * 40_000)
    pair.run(lambda: client.timeouts >= 5, timeout=120)
    lost = len(client._unacked)
    assert lost >= 6
    pair.net.tap = pair._tap
    mended = pair.clock.monotonic()
    assert pair.run(lambda: not client._unacked, timeout=120)
    assert pair.clock.monotonic() - mended <= 10.0   # the next timeout (<= 9 s) and a few round trips
    received = []
    assert pair.run(lambda: received.append(server.read()) or sum(map(len, received)) >= 40_000, timeout=10)


def test_zero_rtt_request_and_reply_bundle_syn_and_close(alice, bob):
    config = StreamConfig(connect_delay=1.0)
    pair = Pair(alice, bob, config=config, server_config=StreamConfig(syn_reply_delay=0.5))
    client = pair.a.connect(bob.destination)
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    client.close()
    server = pair.accept()
    request = bytearray()
    assert pair.run(lambda: request.extend(server.read()) or server.at_eof)
    assert request == b"GET / HTTP/1.0\r\n\r\n"
    server.send(b"HTTP/1.0 200 OK\r\n\r\nhello")
    server.close()
    reply = bytearray()
    assert pair.run(lambda: reply.extend(client.read()) or (client.is_terminated and server.is_terminated))
    assert bytes(reply) == b"HTTP/1.0 200 OK\r\n\r\nhello"
    first, second = pair.wire[0][1], pair.wire[1][1]
    syn_close = pk.SYNCHRONIZE | pk.CLOSE | pk.SIGNATURE_INCLUDED | pk.FROM_INCLUDED
    assert first.flags & syn_close == syn_close and first.payload.startswith(b"GET")
    assert first.replay_hash == bob.destination.hash
    assert second.flags & syn_close == syn_close and second.payload.startswith(b"HTTP")
    assert not second.nacks
    assert len(pair.wire) <= 4   # SYN+CLOSE, SYN+CLOSE+reply, the final ACK (and no more)


def test_data_sent_before_the_syn_reply_is_held_and_delivered(alice, bob):
    # the first data packets overtake the SYN: the receiver holds them (streaming-api.md "0-RTT Issues")
    pair = Pair(alice, bob)
    held = []

    def delay_syn(to, datagram):
        packet = Packet.parse(datagram.payload)
        if packet.is_syn and packet.send_stream_id == 0 and not held:
            held.append(datagram)
            pair.net.inject(to, datagram, delay=0.2)
            return None
        return datagram
    pair.net.tap = delay_syn
    client = pair.a.connect(bob.destination)
    server = exchange(pair, client, 10_000, 10)
    assert pair.b.stats["held_before_syn"] >= 1 and server.state is State.CLOSED


def test_half_close_keeps_the_other_direction(alice, bob):
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    client.send(b"request")
    client.close()
    server = pair.accept()
    request = bytearray()
    assert pair.run(lambda: request.extend(server.read()) or server.at_eof)
    assert request == b"request" and server.state is State.CLOSING and not client.is_terminated
    server.send(b"late reply " * 1000)
    server.close()
    got = bytearray()
    assert pair.run(lambda: got.extend(client.read()) or client.is_terminated)
    assert bytes(got) == b"late reply " * 1000 and client.state is State.CLOSED


def test_reset_reaches_the_peer(alice, bob):
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    client.send(b"hi")
    server = pair.accept()
    assert pair.run(lambda: server.readable)
    client.reset()
    assert pair.run(lambda: server.is_terminated)
    assert server.state is State.RESET and server.error == "reset by peer" and not server.readable


def test_refused_without_listener(alice, bob):
    pair = Pair(alice, bob, listen=False)
    client = pair.a.connect(bob.destination)
    assert pair.run(lambda: client.is_terminated)
    assert client.state is State.RESET and pair.b.stats["refused_not_listening"] == 1


def test_forged_close_and_reset_are_ignored(alice, bob, carol):
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    assert pair.run(lambda: client.is_established)
    for flags in (pk.RESET, pk.CLOSE):
        forged = Packet(server.receive_stream_id, client.receive_stream_id, 5, 0, flags=flags).signed(carol)
        pair.net.inject(bob.destination.hash, Datagram(forged.to_bytes(), None))
    unsigned = Packet(server.receive_stream_id, client.receive_stream_id, 6, 0, flags=pk.RESET)
    pair.net.inject(bob.destination.hash, Datagram(unsigned.to_bytes(), None))
    pair.net.run_for(1.0)
    assert server.state is State.OPEN and pair.b.stats["dropped_bad_signature"] == 3
    # the same unsigned RESET passes when the lower layer vouches for the sender
    pair.net.inject(bob.destination.hash, Datagram(unsigned.to_bytes(), alice.destination.hash))
    pair.net.run_for(1.0)
    assert server.state is State.RESET


def test_syn_checks(alice, bob, carol):
    pair = Pair(alice, bob)

    def syn(keys, *, to=bob, stream_id=77, nacks=None):
        packet = Packet(0, stream_id, 0, 0, hash_to_nacks(to.destination.hash) if nacks is None else nacks,
                        flags=pk.SYNCHRONIZE | pk.FROM_INCLUDED | pk.NO_ACK, from_destination=keys.destination)
        return packet.signed(keys).to_bytes()
    pair.b.receive(syn(alice, to=carol))                       # replayed from carol
    assert pair.b.stats["dropped_syn_replay"] == 1
    forged = bytearray(syn(alice))
    forged[-1] ^= 1
    pair.b.receive(bytes(forged))                               # bad signature
    assert pair.b.stats["dropped_bad_signature"] == 1
    pair.b.receive(syn(alice, nacks=()))                        # pre-0.9.58 SYN without the hash
    pair.b.receive(syn(alice, nacks=()))                        # retransmitted: same connection
    assert pair.b.stats["connections_accepted"] == 1 and len(pair.b.connections) == 1
    assert pair.b.accept().remote == alice.destination


def test_syn_flood_is_bounded(alice, bob):
    limits = ConnectionLimits(max_concurrent_streams=20, syn_rate=10, syn_burst=30, accept_backlog=1000)
    pair = Pair(alice, bob, limits=limits)
    syn = Packet(0, 1, 0, 0, flags=pk.SYNCHRONIZE | pk.FROM_INCLUDED | pk.NO_ACK,
                 from_destination=alice.destination).signed(alice)
    for stream_id in range(1, 1001):
        pair.b.receive(replace(syn, receive_stream_id=stream_id).signed(alice).to_bytes())
    stats = pair.b.stats
    assert len(pair.b.connections) == 20
    assert stats["dropped_syn_rate"] == 1000 - 30 and stats["refused_concurrent_limit"] == 10
    assert len(pair.b.datagrams_to_send()) == 10    # the refused ones got a RESET


def test_rate_limits_per_peer_and_http_reply(alice, bob):
    limits = ConnectionLimits(max_conns_per_minute=2, limit_action="http")
    pair = Pair(alice, bob, limits=limits)
    clients = [pair.a.connect(bob.destination) for _ in range(3)]
    assert pair.run(lambda: all(c.is_established for c in clients))
    assert pair.b.stats["refused_peer_rate"] == 1
    refused = [c for c in clients if c.readable or c.at_eof]
    assert len(refused) == 1 and refused[0].read().startswith(b"HTTP/1.1 429")
    pair.net.run_for(61)
    late = pair.a.connect(bob.destination)
    assert pair.run(lambda: late.is_established) and pair.b.stats["refused_peer_rate"] == 1


def test_access_list(alice, bob, carol):
    limits = ConnectionLimits(access_list=frozenset({carol.destination.hash}), access_mode="allow")
    pair = Pair(alice, bob, limits=limits)
    client = pair.a.connect(bob.destination)
    assert pair.run(lambda: client.is_terminated) and pair.b.stats["refused_access_list"] == 1


def test_choke_when_the_reader_stalls(alice, bob):
    config = StreamConfig(receive_buffer_size=40_000)
    pair = Pair(alice, bob, config=config)
    client = pair.a.connect(bob.destination)
    data = pair.rnd.randbytes(400_000)
    client.send(data)
    client.close()
    server = pair.accept()
    pair.net.run_for(30)
    assert server.readable <= 40_000 and not client.is_terminated
    assert pair.b.stats["chokes_sent"] >= 1 and client.peer_choked
    got = bytearray()
    assert pair.run(lambda: got.extend(server.read()) or server.at_eof, timeout=300)
    assert bytes(got) == data


def test_packets_beyond_the_window_and_before_syn_are_bounded(alice, bob):
    limits = ConnectionLimits(max_pending_packets=50, pending_timeout=10)
    pair = Pair(alice, bob, limits=limits)
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    assert pair.run(lambda: client.is_established)
    for seq in range(600, 2600):
        pair.b.receive(Packet(server.receive_stream_id, client.receive_stream_id, seq, 0,
                              payload=b"z" * 1000).to_bytes())
    assert pair.b.stats["dropped_beyond_window"] >= 1400
    assert server._ooo_bytes <= server.config.inbound_buffer_size
    for remote_id in range(1, 500):     # data "before its SYN" that never comes
        pair.b.receive(Packet(0, 10_000 + remote_id, 1, 0, payload=b"q" * 100).to_bytes())
    assert pair.b.stats["held_before_syn"] == 50 and pair.b.stats["dropped_pending_full"] == 449
    pair.net.run_for(11)
    assert pair.b.stats["dropped_pending_expired"] == 50 and not pair.b._pending


def test_bogus_acks_and_unknown_streams_are_counted(alice, bob):
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    assert pair.run(lambda: client.is_established)
    pair.a.receive(Packet(client.receive_stream_id, server.receive_stream_id, 0, 10_000).to_bytes())
    pair.a.receive(Packet(12345, 1, 1, 0).to_bytes())
    pair.a.receive(b"\x00" * 10)
    assert pair.a.stats["dropped_bogus_ack"] == 1 and pair.a.stats["dropped_unknown_stream"] == 1
    assert pair.a.stats["dropped_malformed"] == 1


def test_mtu_is_the_lower_of_both(alice, bob):
    pair = Pair(alice, bob, server_config=StreamConfig(max_message_size=1000))
    client = pair.a.connect(bob.destination)
    exchange(pair, client, 50_000, 50_000)
    assert client.mtu == 1000
    to_alice = [len(p.payload) for to, p in pair.wire if to == alice.destination.hash]
    # only what alice sent before bob's SYN reply may be larger (streaming-api.md "Future Work")
    to_bob_later = [len(p.payload) for to, p in pair.wire if to == bob.destination.hash and p.sequence_num > 6]
    assert max(to_alice) == 1000 and max(to_bob_later) == 1000


def test_offline_signed_destination_connects(alice, bob):
    offline = alice.with_offline_key(expires=2_000_000_000, rng=seeded_rng(5))
    pair = Pair(offline, bob)
    client = pair.a.connect(bob.destination)
    server = exchange(pair, client, 20_000, 20_000)
    assert server.remote == alice.destination
    assert any(p.offline_signature is not None for to, p in pair.wire if p.is_syn)


def test_inactivity_sends_a_keepalive(alice, bob):
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    pair.accept()
    assert pair.run(lambda: client.is_established)
    pair.net.run_for(5)
    before = len(pair.wire)
    pair.net.run_for(100)
    assert len(pair.wire) > before and not client.is_terminated


def test_peer_that_never_closes_times_out(alice, bob):
    pair = Pair(alice, bob, config=StreamConfig(close_timeout=60))
    client = pair.a.connect(bob.destination)
    client.close()
    server = pair.accept()
    assert pair.run(lambda: server.at_eof)
    pair.net.run_for(61)
    assert client.state is State.CLOSED and client.error == "peer never closed"


def test_ping(alice, bob):
    pair = Pair(alice, bob, listen=False)
    ping_id = pair.a.ping(bob.destination, b"p" * 40)
    assert pair.run(lambda: bool(pair.a.pongs))
    pong = pair.a.pongs.popleft()
    assert pong.ping_id == ping_id and pong.payload == b"p" * 32 and pong.rtt == pytest.approx(0.1)


def test_random_and_mutated_input_never_raises(alice, bob):
    pair = Pair(alice, bob, impairments=Impairments(delay=0.01))
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    assert pair.run(lambda: client.is_established)
    rnd = random.Random(9)
    samples = [p.to_bytes() for _, p in pair.wire]
    ids = struct.pack(">II", server.receive_stream_id, client.receive_stream_id)
    for i in range(3000):
        data = bytearray(rnd.choice(samples))
        if i % 3 == 0:
            data = bytearray(rnd.randbytes(rnd.randrange(0, 300)))
        for _ in range(rnd.randrange(1, 6)):
            if data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        if i % 2 and len(data) >= 8:
            data[:8] = ids    # aimed at the live connection
        pair.b.receive(bytes(data))
        pair.b.datagrams_to_send()
    assert pair.b.stats["dropped_malformed"] > 0
    assert len(pair.b.connections) <= pair.b.limits.max_concurrent_streams


def test_a_lost_unchoke_is_repeated(alice, bob):
    """The first unchoke is lost: later packets repeat it, so the sender resumes instead of probing forever."""
    pair = Pair(alice, bob, config=StreamConfig(receive_buffer_size=40_000))
    dropped = []

    def lose_first_unchoke(to, datagram):
        packet = Packet.parse(datagram.payload)
        if to == alice.destination.hash and packet.delay_requested == 0 and not dropped:
            dropped.append(packet)
            return None
        return datagram
    client = pair.a.connect(bob.destination)
    client.send(pair.rnd.randbytes(400_000))
    server = pair.accept()
    assert pair.run(lambda: client.peer_choked, timeout=30)
    pair.net.tap = lose_first_unchoke
    server.read()
    assert pair.run(lambda: not client.peer_choked, timeout=5) and dropped


def test_a_choke_older_than_the_unchoke_is_ignored(alice, bob):
    """A choke overtaken by a later unchoke (another tunnel was faster) must not stop the sender."""
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    client.send(pair.rnd.randbytes(20_000))
    server = pair.accept()
    assert pair.run(lambda: client.all_sent_acked and server.readable == 20_000)
    last = client._next_seq - 1

    def ack(ack_through, delay):
        pair.a.receive(Packet(client.receive_stream_id, server.receive_stream_id, 0, ack_through,
                              flags=pk.DELAY_REQUESTED, delay_requested=delay).to_bytes())
    window = client.cwnd
    ack(last, pk.CHOKE_DELAY)
    assert client.peer_choked and client.cwnd == max(window / 2, 2.0)   # its buffer is smaller than our window
    ack(last, 0)
    assert not client.peer_choked
    ack(last - 1, pk.CHOKE_DELAY)   # sent before the unchoke
    assert not client.peer_choked
    ack(last, pk.CHOKE_DELAY)
    assert client.peer_choked
    ack(last - 2, 0)                # sent before the choke
    assert client.peer_choked


def test_a_reader_that_keeps_up_is_not_choked_by_a_burst(alice, bob):
    """A whole window arriving between two reads fills more than half the buffer; the reader reads every
    50 ms, so the sender is not choked (an idle reader is: test_choke_when_the_reader_stalls)."""
    pair = Pair(alice, bob)
    client = pair.a.connect(bob.destination)
    data = pair.rnd.randbytes(1_500_000)
    client.send(data)
    client.close()
    server = pair.accept()
    got = bytearray()
    next_read = [0.0]

    def read_every_50ms():
        if pair.clock.monotonic() >= next_read[0]:
            next_read[0] = pair.clock.monotonic() + 0.05
            got.extend(server.read())
        return server.at_eof
    assert pair.run(read_every_50ms, timeout=120)
    assert bytes(got) == data
    assert client.cwnd >= 64 and pair.b.stats["chokes_sent"] == 0


def test_a_spurious_timeout_restores_the_window_instead_of_resending_it(alice, bob):
    """The path slows down (its queue grew) past the RTO: the first transmissions' acks still come, so F-RTO
    calls the timeout spurious; the window is not sent twice and is restored."""
    pair = Pair(alice, bob, impairments=Impairments(delay=0.02))
    client = pair.a.connect(bob.destination)
    server = pair.accept()
    data = pair.rnd.randbytes(3_000_000)
    client.send(data)
    got = bytearray()
    assert pair.run(lambda: got.extend(server.read()) or client.cwnd >= 100, timeout=60)
    assert client.timeouts == 0
    pair.net._impairer.impairments = Impairments(delay=0.4)   # a hop's queue: RTT 40 ms -> 800 ms
    assert pair.run(lambda: got.extend(server.read()) or client.timeouts >= 1, timeout=30)
    in_flight = client.in_flight
    assert pair.run(lambda: got.extend(server.read()) or len(got) == len(data), timeout=300)
    assert bytes(got) == data
    assert pair.a.stats["spurious_timeouts"] >= 1
    assert client.packets_resent <= 2 * client.timeouts < in_flight // 4   # not the whole window again
