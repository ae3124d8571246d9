"""SSU2 path validation and connection migration: the sans-I/O core with a fake clock, then over loopback UDP."""
import asyncio

import pytest

from core.clock import FakeClock, SystemClock
from core.i2np.header import I2NPMessage
from core.transport.ssu2.blocks import PATH_CHALLENGE, PATH_RESPONSE, AddressBlock, I2NPBlock, OpaqueBlock
from core.transport.ssu2.driver import SSU2Endpoint
from core.transport.ssu2.migration import PathSettings, PathValidator, path_response

from .ssu2_support import make_ssu2_router, handshake, until
from .test_ntcp2_support import CountingRng

OLD, NEW, OTHER = ("127.0.0.1", 40000), ("127.0.0.1", 40001), ("127.0.0.9", 40002)


@pytest.fixture
def clock():
    return FakeClock()


def validator(clock, **kw):
    return PathValidator(OLD, clock=clock, rng=CountingRng("path"), settings=PathSettings(**kw))


def test_a_new_address_gets_a_challenge_and_only_its_response_moves_the_session(clock):
    v = validator(clock)
    assert v.on_packet(OLD) == []
    ((blocks, to),) = v.on_packet(NEW)
    challenge, address = blocks
    assert to == NEW and challenge.block_type == PATH_CHALLENGE and len(challenge.payload) >= 8
    assert (address.host, address.port) == (NEW[0], NEW[1])
    assert v.address == OLD and v.validating          # still sending to the old address
    assert v.on_packet(NEW) == []                     # one challenge per new address, not one per packet
    assert not v.on_response(OpaqueBlock(PATH_RESPONSE, b"x" * 8))     # wrong data: nothing moves
    assert v.address == OLD
    assert v.on_response(path_response(challenge, NEW)[0])
    assert v.address == NEW and not v.validating and v.migrations == 1


def test_challenges_are_resent_with_doubling_intervals_then_validation_fails(clock):
    v = validator(clock, timeout=10.0, first_resend=0.5, max_challenges=4)
    start = clock.monotonic()
    v.on_packet(NEW)
    times = []
    for _ in range(100):                              # bounded: 25 s of fake time in 0.25 s steps
        clock.advance(0.25)
        if v.poll():
            times.append(clock.monotonic() - start)
        if not v.validating:
            break
    assert times == [0.5, 1.5, 3.5] and clock.monotonic() - start == 7.5
    assert v.failed == 1 and v.address == OLD and v.next_deadline() is None


def test_validation_fails_at_its_timeout(clock):
    v = validator(clock, timeout=2.0, first_resend=0.5, max_challenges=10)
    v.on_packet(NEW)
    for _ in range(40):
        clock.advance(0.25)
        v.poll()
    assert v.failed == 1 and v.address == OLD


def test_a_packet_from_the_old_address_cancels_and_bad_addresses_are_ignored(clock):
    v = validator(clock)
    v.on_packet(NEW)
    assert v.on_packet(OLD) == [] and not v.validating and v.cancelled == 1
    assert v.on_packet(("::1", 40000)) == []          # no IPv4 to IPv6 migration
    assert v.on_packet(("127.0.0.1", 80)) == []       # privileged port
    assert not v.validating
    assert path_response(OpaqueBlock(PATH_CHALLENGE, bytes(65)), NEW) is None   # too large to answer


def test_data_phases_validate_a_path_end_to_end_and_replays_start_nothing(clock):
    a, b = make_ssu2_router("alice", clock, port=20001), make_ssu2_router("bob", clock, port=20002)
    alice, bob, _ = handshake(a, b, clock)
    v = PathValidator(OLD, clock=clock, rng=CountingRng("bob-path"))
    alice.send_message(I2NPMessage(20, 7, 2_000_000_000_000, b"hello"))
    (packet,) = alice.poll()
    assert [blk.msg_id for blk in bob.receive(packet)] == [7] and not bob.last_duplicate
    # a copy of the same packet from elsewhere (off-path forwarding) is a duplicate: no validation
    assert bob.receive(packet) == [] and bob.last_duplicate
    alice.send_message(I2NPMessage(20, 8, 2_000_000_000_000, b"again"))
    (moved,) = alice.poll()
    bob.receive(moved)
    ((blocks, to),) = v.on_packet(NEW)
    challenge_packet = bob.seal_now(blocks)
    got = alice.receive(challenge_packet)
    challenge = next(b for b in got if isinstance(b, OpaqueBlock) and b.block_type == PATH_CHALLENGE)
    assert any(isinstance(b, AddressBlock) and b.port == NEW[1] for b in got)
    reply = alice.seal_now(path_response(challenge, NEW))
    response = next(b for b in bob.receive(reply) if isinstance(b, OpaqueBlock) and b.block_type == PATH_RESPONSE)
    assert v.on_response(response) and v.address == NEW


async def _endpoint(router, clock, inbound):
    ep = SSU2Endpoint(static_key=router.static_key, intro_key=router.intro_key, netid=42,
                      router_info=router.router_info.to_bytes, on_connection=inbound.append, clock=clock)
    await ep.start("127.0.0.1", 0)
    return ep


async def _rebind(ep):
    """The socket moves to a new port mid-session, as after a NAT rebinding."""
    ep._housekeeping.cancel()
    ep._transport.close()
    await ep.start("127.0.0.1", 0)


async def _next_i2np(conn, seconds=10):
    async with asyncio.timeout(seconds):
        while True:
            block = await conn.receive()
            if isinstance(block, I2NPBlock):
                return block


async def test_a_session_survives_the_peer_moving_to_a_new_port_over_udp():
    clock = SystemClock()
    a, b = make_ssu2_router("alice", clock), make_ssu2_router("bob", clock)
    b_in = []
    ea, eb = await _endpoint(a, clock, []), await _endpoint(b, clock, b_in)
    try:
        conn = await ea.connect("127.0.0.1", eb.port, peer_router_hash=b.router_hash,
                                peer_static_key=b.static_key.public_bytes, peer_intro_key=b.intro_key)
        await until(lambda: b_in)
        bob_side = b_in[0]
        conn.send_nowait(I2NPMessage(20, 1, 2_000_000_000_000, b"before"))
        assert (await _next_i2np(bob_side)).body == b"before"
        old_port = ea.port
        await _rebind(ea)
        assert ea.port != old_port
        conn.send_nowait(I2NPMessage(20, 2, 2_000_000_000_000, b"after" * 300))
        assert (await _next_i2np(bob_side)).body == b"after" * 300
        await until(lambda: bob_side.address == ("127.0.0.1", ea.port))
        assert eb.migrations == 1 and bob_side.path.migrations == 1
        bob_side.send_nowait(I2NPMessage(20, 3, 2_000_000_000_000, b"reply" * 1000))   # to the new port
        assert (await _next_i2np(conn)).body == b"reply" * 1000
        assert not conn.closed and not bob_side.closed
    finally:
        await ea.stop()
        await eb.stop()
