"""SSU2 handshake and data phase in memory: both roles, tokens, replays, garbage, loss/reorder/duplication."""
import random

import pytest

from core.clock import FakeClock
from core.data.errors import HandshakeError, ProtocolError
from core.i2np.header import I2NPMessage
from core.transport.ssu2 import header as h
from core.transport.ssu2.blocks import I2NPBlock, TerminationBlock, TerminationReason

from .ssu2_support import ALICE_ADDR, handshake, initiator, make_ssu2_router, responder
from .test_ntcp2_support import CountingRng


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def routers(clock):
    return make_ssu2_router("alice", clock, port=20001), make_ssu2_router("bob", clock, port=20002)


def msg(clock, i, size=100):
    return I2NPMessage(20, 1000 + i, int(clock.time() * 1000) + 60_000, bytes([i % 256]) * size)


def test_token_request_retry_request_created_confirmed(clock, routers):
    a, b = routers
    alice, bob, transcript = handshake(a, b, clock)
    assert [d for d, _ in transcript] == ["a", "b", "a", "b", "a"]
    assert alice.result.peer_router_hash == b.router_hash
    assert bob.result.peer_router_hash == a.router_hash
    assert bob.result.peer_intro_key == a.intro_key
    assert alice.result.keys.send_key == bob.result.keys.receive_key
    assert alice.result.keys.send_header_key == bob.result.keys.receive_header_key
    assert alice.send_id == bob.receive_id and bob.send_id == alice.receive_id
    # Bob tells Alice where he sees her (Address block in Session Created)
    assert (alice.result.our_address.host, alice.result.our_address.port) == (ALICE_ADDR[0], ALICE_ADDR[1])
    # every packet is at least 40 bytes and looks random: no plain connection id in it
    for _, packet in transcript:
        assert len(packet) >= h.MIN_PACKET_SIZE


def test_data_both_ways_with_fragmentation_and_acks(clock, routers):
    alice, bob, _ = handshake(*routers, clock)
    big = msg(clock, 1, 20_000)
    assert alice.send_message(big) and alice.send_message(msg(clock, 2))
    packets = alice.poll()
    assert len(packets) > 10 and all(len(p) <= h.MAX_PACKET_SIZE for p in packets)
    got = [blk for p in packets for blk in bob.receive(p)]
    assert [(m.msg_id, m.body) for m in got] == [(big.msg_id, big.body), (1002, msg(clock, 2).body)]
    clock.advance(0.05)
    acks = bob.poll()
    assert acks
    for p in acks:
        alice.receive(p)
    assert alice.in_flight == 0 and alice.srtt is not None
    bob.send_message(msg(clock, 3))
    (reply,) = [blk for p in bob.poll() for blk in alice.receive(p)]
    assert reply.msg_id == 1003


def test_loss_reorder_and_duplication_deliver_each_message_once(clock, routers):
    alice, bob, _ = handshake(*routers, clock)
    rnd = random.Random(7)
    sent = {i: msg(clock, i, rnd.randrange(10, 5000)) for i in range(40)}
    for m in sent.values():
        assert alice.send_message(m)
    delivered = []
    for _ in range(200):           # bounded simulated time: 200 steps of 50 ms
        out = alice.poll()
        rnd.shuffle(out)
        for p in out:
            if rnd.random() < 0.25:
                continue                            # lost
            copies = 2 if rnd.random() < 0.1 else 1  # duplicated
            for _ in range(copies):
                delivered += [blk.msg_id for blk in bob.receive(p) if isinstance(blk, I2NPBlock)]
        for p in bob.poll():
            if rnd.random() < 0.25:
                continue
            alice.receive(p)
        if len(delivered) == len(sent) and alice.in_flight == 0 and not alice.queued:
            break
        clock.advance(0.05)
    assert sorted(delivered) == sorted(m.msg_id for m in sent.values())
    assert bob.duplicates > 0 and alice.retransmissions > 0


def test_termination_is_delivered(clock, routers):
    alice, bob, _ = handshake(*routers, clock)
    packet = alice.terminate(TerminationReason.IDLE_TIMEOUT)
    (block,) = bob.receive(packet)
    assert isinstance(block, TerminationBlock) and block.reason == TerminationReason.IDLE_TIMEOUT
    with pytest.raises(ProtocolError):
        alice.send_message(msg(clock, 1))


def test_session_request_without_token_gets_retry_not_session(clock, routers):
    a, b = routers
    ini = initiator(a, b, clock, token=12345)        # a token Bob never issued
    resp = responder(b, clock)
    replies, result = resp.receive(ini.first_packet(), ALICE_ADDR)
    assert result is None and len(replies) == 1
    assert len(resp._pending) == 0                   # no DH state kept for it
    (request,) = ini.receive(replies[0])             # Retry with a real token: Alice asks again
    replies, _ = resp.receive(request, ALICE_ADDR)
    assert len(replies) == 1 and len(resp._pending) == 1


def test_token_is_bound_to_the_address(clock, routers):
    a, b = routers
    ini = initiator(a, b, clock)
    resp = responder(b, clock)
    (retry,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
    (request,) = ini.receive(retry)
    replies, _ = resp.receive(request, ("127.0.0.9", 999))   # token from another address: Retry again
    assert len(resp._pending) == 0 and len(replies) == 1


def test_replayed_session_request_is_refused(clock, routers):
    a, b = routers
    resp = responder(b, clock)
    token = resp.issue_token(ALICE_ADDR)
    request = initiator(a, b, clock, token=token).first_packet()
    assert resp.receive(request, ALICE_ADDR)[0]
    resp._pending.clear()                                      # as if it timed out
    resp._tokens[ALICE_ADDR] = (token, clock.monotonic() + 60)   # even with the token valid again
    with pytest.raises(HandshakeError, match="replayed"):
        resp.receive(request, ALICE_ADDR)


def test_wrong_netid_and_garbage_get_no_answer(clock, routers):
    a, b = routers
    resp = responder(b, clock)
    rng = CountingRng("garbage")
    for n in (0, 1, 39, 40, 100, 1400):
        with pytest.raises(ProtocolError):
            resp.receive(rng(n), ALICE_ADDR)
    ini = initiator(a, b, clock)
    ini._netid = 7
    with pytest.raises(HandshakeError):
        resp.receive(ini.first_packet(), ALICE_ADDR)


def test_clock_skew_gets_a_retry_with_termination(clock, routers):
    a, b = routers
    skewed = FakeClock(clock.time() + 120)
    ini = initiator(a, b, skewed)
    resp = responder(b, clock)
    (retry,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
    with pytest.raises(HandshakeError):
        ini.receive(retry)
    assert ini.rejection.reason == TerminationReason.CLOCK_SKEW


def test_session_confirmed_fragmented_over_a_small_mtu(clock, routers):
    a = make_ssu2_router("big-alice", clock, extra_addresses=12)
    b = routers[1]
    assert len(a.router_info.to_bytes()) > 1300
    resp = responder(b, clock)
    ini = initiator(a, b, clock, mtu=1280, compress_router_info=False)
    (retry,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
    (request,) = ini.receive(retry)
    (created,), _ = resp.receive(request, ALICE_ADDR)
    confirmed = ini.receive(created)
    assert len(confirmed) >= 2 and all(len(p) <= 1280 - 28 for p in confirmed)
    results = [resp.receive(p, ALICE_ADDR)[1] for p in reversed(confirmed)]   # out of order
    assert results[-1] is not None and results[-1].peer_router_hash == a.router_hash
    assert results[:-1] == [None] * (len(confirmed) - 1)


def test_session_confirmed_gzips_a_big_router_info_by_default(clock, routers):
    a = make_ssu2_router("big-alice", clock, extra_addresses=12)
    resp = responder(routers[1], clock)
    ini = initiator(a, routers[1], clock)
    (retry,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
    (created,), _ = resp.receive(ini.receive(retry)[0], ALICE_ADDR)
    (confirmed,) = ini.receive(created)
    assert resp.receive(confirmed, ALICE_ADDR)[1].router_info == a.router_info


def test_retransmitted_session_created_is_identical(clock, routers):
    a, b = routers
    resp = responder(b, clock)
    ini = initiator(a, b, clock)
    (retry,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
    (request,) = ini.receive(retry)
    (created,), _ = resp.receive(request, ALICE_ADDR)
    (again,), _ = resp.receive(request, ALICE_ADDR)
    assert again == created


def test_alice_resends_session_confirmed_until_bob_answers(clock, routers):
    alice, bob, _ = handshake(*routers, clock)
    assert not alice.confirmed
    clock.advance(1.3)
    assert len(alice.poll()) == 1                   # Session Confirmed again
    bob.send_message(msg(clock, 1))
    for p in bob.poll():
        alice.receive(p)
    assert alice.confirmed
    clock.advance(5)
    assert all(len(p) < 200 for p in alice.poll())  # only ACKs now


def test_data_packet_from_a_stranger_is_refused(clock, routers):
    alice, bob, _ = handshake(*routers, clock)
    packet = bytearray(alice.poll() or alice.terminate())
    packet[-1] ^= 1
    with pytest.raises(ProtocolError):
        bob.receive(bytes(packet))


def test_session_created_whose_masked_type_reads_as_retry_is_still_accepted(clock, routers):
    """Alice reads the type with Bob's intro key for both keys; for Session Created the second key differs,
    so about 1 in 256 Session Created packets show type 9 (Retry) and must still be taken."""
    a, b = routers
    resp = responder(b, clock, max_pending=400, max_pending_per_ip=400, handshake_burst=400)
    seen = 0
    for k in range(400):
        ini = initiator(a, b, clock, token=resp.issue_token(ALICE_ADDR), rng=CountingRng(f"retry-look-{k}"))
        (created,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
        k1 = b.intro_key
        if h.unprotect_short(created, k1, k1)[12] == h.RETRY:
            seen += 1
        assert ini.receive(created) and ini.result is not None
    assert seen >= 1


def test_a_flood_of_session_requests_from_one_host_is_bounded_and_counted(clock, routers):
    a, b = routers
    resp = responder(b, clock, max_pending_per_ip=4)
    answered = 0
    for k in range(20):
        address = ("127.0.0.5", 30000 + k)
        ini = initiator(a, b, clock, token=resp.issue_token(address), rng=CountingRng(f"flood-{k}"))
        try:
            answered += len(resp.receive(ini.first_packet(), address)[0])
        except HandshakeError:
            pass
    assert answered == 4 and len(resp._pending) == 4 and resp.dropped == 16
    # another host is still served
    ini = initiator(a, b, clock, token=resp.issue_token(ALICE_ADDR))
    assert resp.receive(ini.first_packet(), ALICE_ADDR)[0]
    clock.advance(30)                                # pending handshakes time out and free the slots
    resp.expire()
    assert len(resp._pending) == 0
