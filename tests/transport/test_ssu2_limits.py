"""SSU2 flood limits with a fake clock: per-IP handshake, peer-test and relay buckets, the 3x rule, sessions per IP."""
import asyncio

import pytest

from core.clock import SystemClock
from core.data.errors import HandshakeError
from core.transport.ssu2.driver import SSU2Endpoint, SSU2Settings
from core.transport.ssu2.handshake import AMPLIFICATION_FACTOR

from .ssu2_support import ALICE_ADDR, initiator, make_ssu2_router, responder
from .test_ntcp2_support import CountingRng
from .test_ssu2_handshake import clock, routers  # noqa: F401 - the same fixtures

FLOODER = ("127.0.0.66", 40000)


def token_request(a, b, clock, k):
    return initiator(a, b, clock, rng=CountingRng(f"flood-tr-{k}")).first_packet()


def test_a_token_request_flood_from_one_ip_is_dropped_and_others_are_served(clock, routers):
    a, b = routers
    resp = responder(b, clock, handshake_rate=2.0, handshake_burst=5)
    answered = 0
    for k in range(50):                                  # one address, new ports: the IP is what counts
        try:
            answered += len(resp.receive(token_request(a, b, clock, k), (FLOODER[0], FLOODER[1] + k))[0])
        except HandshakeError:
            pass
    assert answered == 5 and resp.limited["handshake_rate"] == 45 and resp.dropped == 45
    (retry,), _ = resp.receive(token_request(a, b, clock, 99), ALICE_ADDR)      # another IP is served
    assert retry
    with pytest.raises(HandshakeError):
        resp.receive(token_request(a, b, clock, 100), FLOODER)
    clock.advance(1.0)                                   # the bucket refills at its rate: two more
    assert resp.receive(token_request(a, b, clock, 101), FLOODER)[0]
    assert resp.receive(token_request(a, b, clock, 102), FLOODER)[0]
    with pytest.raises(HandshakeError):
        resp.receive(token_request(a, b, clock, 103), FLOODER)


def test_session_requests_count_against_the_same_bucket(clock, routers):
    a, b = routers
    resp = responder(b, clock, handshake_rate=1.0, handshake_burst=3, max_pending_per_ip=100)
    served = 0
    for k in range(10):
        address = (FLOODER[0], FLOODER[1] + k)
        ini = initiator(a, b, clock, token=resp.issue_token(address), rng=CountingRng(f"flood-sr-{k}"))
        try:
            served += len(resp.receive(ini.first_packet(), address)[0])
        except HandshakeError:
            pass
    assert served == 3 and resp.limited["handshake_rate"] == 7 and len(resp._pending) == 3


def test_retry_and_session_created_stay_within_three_times_what_was_received(clock, routers):
    a, b = routers
    resp = responder(b, clock)
    for k in range(30):
        first = token_request(a, b, clock, k)
        (retry,), _ = resp.receive(first, (FLOODER[0], 1000 + k))
        assert len(retry) <= AMPLIFICATION_FACTOR * len(first)
    ini = initiator(a, b, clock, token=resp.issue_token(ALICE_ADDR))
    request = ini.first_packet()
    (created,), _ = resp.receive(request, ALICE_ADDR)
    assert len(created) <= AMPLIFICATION_FACTOR * len(request)
    # Session Created resent while Session Confirmed is missing: never past 3x the bytes Alice sent
    sent = len(created)
    for _ in range(10):
        sent += sum(len(p) for p, addr in resp.retransmit() if addr == ALICE_ADDR)
    assert sent <= AMPLIFICATION_FACTOR * len(request) and resp.limited["amplification"] > 0
    # Alice's own resend of Session Request is new budget: Bob answers it once more
    answer, _ = resp.receive(request, ALICE_ADDR)
    assert answer == [created]
    assert ini.receive(created) and ini.result is not None


def _endpoint(router, clock, settings, inbound):
    return SSU2Endpoint(static_key=router.static_key, intro_key=router.intro_key, netid=42,
                        router_info=router.router_info.to_bytes, on_connection=inbound.append, clock=clock,
                        settings=settings)


def test_peer_test_and_relay_buckets_are_per_ip_and_counted(clock):
    b = make_ssu2_router("bob", clock)
    ep = _endpoint(b, clock, SSU2Settings(peer_test_rate=1.0, peer_test_burst=3, relay_rate=1.0, relay_burst=2), [])
    assert [ep.allow("peer_test", FLOODER) for _ in range(5)] == [True] * 3 + [False] * 2
    assert [ep.allow("relay", FLOODER) for _ in range(4)] == [True] * 2 + [False] * 2
    assert ep.allow("peer_test", ALICE_ADDR) and ep.allow("relay", ALICE_ADDR)
    clock.advance(1.0)
    assert ep.allow("peer_test", FLOODER) and not ep.allow("peer_test", FLOODER)
    assert ep.limited["peer_test"] == 3 and ep.limited["relay"] == 2


async def test_inbound_sessions_per_ip_are_capped_over_udp():
    clock = SystemClock()
    b = make_ssu2_router("bob", clock)
    b_in = []
    eb = _endpoint(b, clock, SSU2Settings(max_sessions_per_ip=2, handshake_timeout=2.0), b_in)
    await eb.start("127.0.0.1", 0)
    dialers = []
    try:
        outcomes = []
        for k in range(3):
            a = make_ssu2_router(f"alice{k}", clock)
            ea = _endpoint(a, clock, SSU2Settings(handshake_timeout=2.0), [])
            await ea.start("127.0.0.1", 0)
            dialers.append(ea)
            try:
                await ea.connect("127.0.0.1", eb.port, peer_router_hash=b.router_hash,
                                 peer_static_key=b.static_key.public_bytes, peer_intro_key=b.intro_key)
                await asyncio.sleep(0.2)
                outcomes.append(len(b_in))
            except (TimeoutError, ConnectionError):
                outcomes.append("refused")
        # the third Alice's Session Confirmed is dropped: Bob keeps two sessions from 127.0.0.1
        assert outcomes[:2] == [1, 2] and len(b_in) == 2 and len(eb.sessions) == 2
        assert eb.limited["sessions_per_ip"] >= 1
    finally:
        for ep in dialers:
            await ep.stop()
        await eb.stop()
