"""SSU2 data phase under a fake clock: received runs and ACK blocks, ACK frequency and the immediate-ACK flag,
the congestion window (slow start, loss, RTO), the Congestion block, several I2NP blocks per packet."""
import random

import pytest

from core.clock import FakeClock
from core.i2np.header import I2NPMessage
from core.transport.ssu2 import header as h
from core.transport.ssu2.blocks import AckBlock, CongestionBlock, I2NPBlock, parse_blocks
from core.transport.ssu2.session import ReceivedPackets

from .ssu2_support import handshake, make_ssu2_router


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def pair(clock):
    alice, bob, _ = handshake(make_ssu2_router("alice", clock, port=20001), make_ssu2_router("bob", clock, port=20002),
                              clock)
    bob._remember(0)             # Session Confirmed, packet 0, as the endpoint does
    return alice, bob


def msg(clock, i, size=100):
    return I2NPMessage(20, 1000 + i, int(clock.time() * 1000) + 60_000, bytes([i % 256]) * size)


def exchange(a, b, clock, steps=50, dt=0.02):
    """Deliver everything both ways until nothing is left to send (bounded)."""
    for _ in range(steps):
        out_a, out_b = a.poll(), b.poll()
        for p in out_a:
            b.receive(p)
        for p in out_b:
            a.receive(p)
        if not out_a and not out_b and not a.in_flight and not b.in_flight and not a.queued and not b.queued:
            return
        clock.advance(dt)


def flags_and_blocks(phase, packet):
    """Decrypt one of our packets with the peer's keys: (immediate-ack flag, blocks)."""
    plain = h.unprotect_short(packet, phase._intro_mask, phase._receive_header_mask)
    header = h.ShortHeader.parse(plain)
    payload = phase._rx.decrypt(header.packet_number, packet[16:], plain)
    return header.immediate_ack, parse_blocks(payload, "test")


def test_received_runs_merge_and_answer_duplicates():
    rnd = random.Random(3)
    received = ReceivedPackets(max_runs=1000)
    seen = set()
    for pn in rnd.sample(range(2000), 1500):
        assert received.add(pn) == (pn not in seen)
        seen.add(pn)
        assert not received.add(pn)               # a duplicate
    for pn in range(2000):
        assert (pn in received) == (pn in seen)
    runs = received.runs
    assert all(runs[k][1] > runs[k + 1][0] + 1 for k in range(len(runs) - 1))    # sorted, never touching
    ack = received.ack_block(max_ranges=10_000, span=10_000)
    assert set(ack.acked()) == seen
    assert ack == AckBlock.from_packets(seen, 10_000)


def test_received_runs_are_bounded_and_acks_cover_a_span():
    received = ReceivedPackets(max_runs=8)
    for pn in range(0, 100, 2):                     # 50 separate runs
        received.add(pn)
    assert len(received.runs) == 8 and received.highest == 98
    contiguous = ReceivedPackets(max_runs=8)
    for pn in range(100_000):
        contiguous.add(pn)
    assert contiguous.runs == [[99_999, 0]]
    ack = contiguous.ack_block(max_ranges=32, span=1024)
    assert ack.ack_through == 99_999 and min(ack.acked()) == 99_999 - 1023
    assert len(ack.to_bytes()) < 30                 # not 32 ranges for packets long acknowledged


def test_in_order_packets_are_acknowledged_every_eighth_or_after_the_delay(pair, clock):
    alice, bob = pair
    exchange(alice, bob, clock)
    for i in range(6):
        alice.send_message(msg(clock, i, 1200))     # one per packet
    packets = alice.poll()
    assert len(packets) == 6
    flags = [flags_and_blocks(bob, p)[0] for p in packets]
    assert flags == [False] * 5 + [True]            # the burst's last packet asks for an immediate ACK
    for p in packets[:5]:
        bob.receive(p)
    assert bob.poll() == []                         # five in order, none asked: the ACK waits
    clock.advance(bob.settings.ack_delay)
    (ack_packet,) = bob.poll()
    _, blocks = flags_and_blocks(alice, ack_packet)
    assert isinstance(blocks[0], AckBlock) and blocks[0].ack_through == bob._received.highest
    bob.receive(packets[5])                         # immediate ACK asked
    assert len(bob.poll()) == 1
    for i in range(bob.settings.ack_every):         # eight unflagged in a row make an ACK due at once
        alice.send_message(msg(clock, 10 + i, 1200))
    burst = alice.poll()
    for p in burst[:bob.settings.ack_every - 1]:
        bob.receive(p)
    assert bob.poll() == []
    bob.receive(burst[bob.settings.ack_every - 1])
    assert len(bob.poll()) == 1


def test_a_gap_is_acknowledged_at_once(pair, clock):
    alice, bob = pair
    exchange(alice, bob, clock)
    for i in range(3):
        alice.send_message(msg(clock, i, 1200))
    first, _, third = alice.poll()
    bob.receive(first)
    assert bob.poll() == []
    bob.receive(third)                              # packet 2 missing: ssu2.rst "Generating ACKs"
    (ack_packet,) = bob.poll()
    ack = flags_and_blocks(alice, ack_packet)[1][0]
    assert ack.ack_through == bob._received.highest and ack.ranges


def test_small_messages_share_a_packet(pair, clock):
    alice, bob = pair
    exchange(alice, bob, clock)
    for i in range(20):
        alice.send_message(msg(clock, i, 50))
    packets = alice.poll()
    assert len(packets) == 1
    got = [b for p in packets for b in bob.receive(p) if isinstance(b, I2NPBlock)]
    assert [b.msg_id for b in got] == [1000 + i for i in range(20)]


def test_window_grows_in_slow_start_halves_on_loss_and_restarts_after_a_timeout(pair, clock):
    alice, bob = pair
    exchange(alice, bob, clock)
    start = alice.cwnd
    for i in range(int(start)):
        alice.send_message(msg(clock, i, 1200))
    exchange(alice, bob, clock)
    assert alice.cwnd == 2 * start                  # +1 per acknowledged packet below ssthresh
    # one packet of a burst lost: the window halves once, the packet goes again
    for i in range(10):
        alice.send_message(msg(clock, 100 + i, 1200))
    burst = alice.poll()
    before = alice.cwnd
    for p in burst[1:]:
        bob.receive(p)
    for p in bob.poll():
        alice.receive(p)
    # the ACK's 9 packets count first (slow start), then the loss halves the window
    assert alice.congestion_events == 1 and alice.cwnd == (before + 9) / 2 and alice.retransmissions == 1
    assert alice.ssthresh == alice.cwnd
    exchange(alice, bob, clock)
    assert alice.in_flight == 0
    # nothing answers: the RTO fires, the window restarts from the minimum and the RTO backs off
    for i in range(5):
        alice.send_message(msg(clock, 200 + i, 1200))
    assert len(alice.poll()) == 5
    rto = alice.rto
    clock.advance(rto)
    resent = alice.poll()
    assert resent and alice.timeouts == 1 and alice.cwnd == alice.settings.min_window
    assert alice.rto == min(alice.settings.max_rto, 2 * rto)
    assert all(flags_and_blocks(bob, p)[0] for p in resent)      # retransmissions ask for an immediate ACK
    # in congestion avoidance the window grows by about one packet per window acknowledged
    exchange(alice, bob, clock)
    alice.cwnd = alice.ssthresh = 20.0
    for i in range(20):
        alice.send_message(msg(clock, 300 + i, 1200))
    exchange(alice, bob, clock)
    assert 20.5 < alice.cwnd < 21.5


def test_congestion_block_asks_for_an_ack_and_marks_congestion(pair, clock):
    alice, bob = pair
    exchange(alice, bob, clock)
    for i in range(4):
        bob.send_message(msg(clock, i, 1200))
    exchange(alice, bob, clock)
    cwnd = bob.cwnd
    alice.send_blocks([CongestionBlock(3)])          # immediate ACK, ECN
    for p in alice.poll():
        bob.receive(p)
    assert bob.congestion_events == 1 and bob.cwnd == max(bob.settings.min_window, cwnd / 2)
    assert len(bob.poll()) == 1                      # the ACK, at once
