"""Two SSU2 endpoints over loopback UDP: handshake both ways, I2NP both ways, termination, garbage."""
import asyncio
import socket

import pytest

from core.clock import SystemClock
from core.i2np.header import I2NPMessage
from core.transport.ssu2.blocks import I2NPBlock, TerminationReason
from core.transport.ssu2.driver import SSU2Endpoint

from .ssu2_support import make_ssu2_router, until

NETID = 42


async def endpoint(router, clock, inbound):
    ep = SSU2Endpoint(static_key=router.static_key, intro_key=router.intro_key, netid=NETID,
                      router_info=router.router_info.to_bytes, on_connection=inbound.append, clock=clock)
    await ep.start("127.0.0.1", 0)
    return ep


def message(i, size):
    return I2NPMessage(20, i, 2_000_000_000_000, bytes([i % 256]) * size)


async def test_loopback_session_carries_i2np_both_ways():
    clock = SystemClock()
    a, b = make_ssu2_router("alice", clock), make_ssu2_router("bob", clock)
    a_in, b_in = [], []
    ea, eb = await endpoint(a, clock, a_in), await endpoint(b, clock, b_in)
    try:
        conn = await eb_connect(ea, eb, b)
        await asyncio.wait_for(until(lambda: b_in), 5)
        bob_side = b_in[0]
        assert bob_side.peer_router_hash == a.router_hash and conn.peer_router_hash == b.router_hash
        sizes = [10, 1000, 3000, 30_000, 60_000]
        conn.send_nowait([message(i, s) for i, s in enumerate(sizes)])
        got = []
        async with asyncio.timeout(10):
            while len(got) < len(sizes):
                block = await bob_side.receive()
                if isinstance(block, I2NPBlock):
                    got.append(block)
        assert [len(b.body) for b in got] == sizes
        bob_side.send_nowait(message(99, 5000))
        async with asyncio.timeout(5):
            while True:
                block = await conn.receive()
                if isinstance(block, I2NPBlock):
                    break
        assert block.msg_id == 99 and len(block.body) == 5000
        # the second connection uses the token Bob gave in the first: no Token Request round trip
        assert ea._tokens
        await conn.close(TerminationReason.NORMAL_CLOSE)
        await asyncio.wait_for(until(lambda: bob_side.closed), 5)
        assert bob_side.peer_termination.reason == TerminationReason.NORMAL_CLOSE
    finally:
        await ea.stop()
        await eb.stop()


async def test_garbage_datagrams_are_dropped_without_answer():
    clock = SystemClock()
    b = make_ssu2_router("bob", clock)
    eb = await endpoint(b, clock, [])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for n in (1, 39, 40, 88, 200, 1400):
            sock.sendto(bytes(n), ("127.0.0.1", eb.port))
        await asyncio.sleep(0.2)
        assert eb.dropped == 6
        with pytest.raises(BlockingIOError):
            sock.recvfrom(2000)
    finally:
        sock.close()
        await eb.stop()


async def eb_connect(ea, eb, b):
    return await ea.connect("127.0.0.1", eb.port, peer_router_hash=b.router_hash,
                            peer_static_key=b.static_key.public_bytes, peer_intro_key=b.intro_key)
