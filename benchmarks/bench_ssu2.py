"""Prints SSU2 handshakes per second and data-phase MB/s (in memory and between two endpoints on 127.0.0.1 UDP),
with CPU seconds.

Run: python benchmarks/bench_ssu2.py [--mb 20] [--handshakes 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import FakeClock, SystemClock  # noqa: E402
from core.i2np.header import I2NPMessage  # noqa: E402
from core.transport.ssu2.blocks import I2NPBlock  # noqa: E402
from core.transport.ssu2.driver import SSU2Endpoint, SSU2Settings  # noqa: E402
from tests.transport.ssu2_support import ALICE_ADDR, handshake, initiator, make_ssu2_router, responder  # noqa: E402
from tests.transport.test_ntcp2_support import NETID  # noqa: E402

from bench_ntcp2 import Meter, report  # noqa: E402


def bench_memory_handshakes(alice, bob, clock, n: int) -> None:
    with Meter() as meter:
        for _ in range(n):
            handshake(alice, bob, clock)
    report("handshakes in memory, with Token Request", n, "handshakes/s", meter)
    resp = responder(bob, clock, max_pending=n + 1, max_pending_per_ip=n + 1, handshake_burst=n + 1)
    with Meter() as meter:
        for _ in range(n):
            ini = initiator(alice, bob, clock, token=resp.issue_token(ALICE_ADDR), rng=os.urandom)
            (created,), _ = resp.receive(ini.first_packet(), ALICE_ADDR)
            for packet in ini.receive(created):
                resp.receive(packet, ALICE_ADDR)
    report("handshakes in memory, token already held", n, "handshakes/s", meter)


def bench_memory_data(alice, bob, clock, megabytes: int, size: int) -> None:
    a, b, _ = handshake(alice, bob, clock)
    message = I2NPMessage(18, 1, 0, os.urandom(size))
    total, sent = megabytes * 1_000_000, 0
    with Meter() as meter:
        while sent < total:
            for i in range(16):
                a.send_message(I2NPMessage(18, sent // size + i, 0, message.body))
            sent += 16 * size
            for packet in a.poll():
                b.receive(packet)
            clock.advance(0.02)
            for packet in b.poll():
                a.receive(packet)
    report(f"data phase in memory, {size}-byte I2NP", sent / 1e6, "MB/s", meter)


async def bench_loopback(alice, bob, handshakes: int, megabytes: int, sizes: tuple[int, ...]) -> None:
    clock = SystemClock()
    inbound = []
    settings = SSU2Settings(handshake_burst=handshakes + 4)     # every handshake comes from one IP here
    ea = SSU2Endpoint(static_key=alice.static_key, intro_key=alice.intro_key, netid=NETID,
                      router_info=alice.router_info.to_bytes, on_connection=inbound.append, clock=clock,
                      settings=settings)
    eb = SSU2Endpoint(static_key=bob.static_key, intro_key=bob.intro_key, netid=NETID,
                      router_info=bob.router_info.to_bytes, on_connection=inbound.append, clock=clock,
                      settings=settings)
    await ea.start("127.0.0.1", 0)
    await eb.start("127.0.0.1", 0)

    async def dial():
        return await ea.connect("127.0.0.1", eb.port, peer_router_hash=bob.router_hash,
                                peer_static_key=bob.static_key.public_bytes, peer_intro_key=bob.intro_key)

    with Meter() as meter:
        for k in range(handshakes):
            conn = await dial()
            while len(inbound) <= k:          # Bob has taken Session Confirmed: the handshake is done both sides
                await asyncio.sleep(0.0005)
            await conn.close()
    report("handshakes over 127.0.0.1 UDP (both sides)", handshakes, "handshakes/s", meter)
    for size in sizes:
        inbound.clear()
        conn = await dial()
        while not inbound:
            await asyncio.sleep(0.001)
        bob_side = inbound[0]
        target, sent = megabytes * 1_000_000, 0
        received = [0]
        body = os.urandom(size)

        async def read():
            while received[0] < target:
                block = await bob_side.receive()
                if isinstance(block, I2NPBlock):
                    received[0] += len(block.body)
        with Meter() as meter:
            reader = asyncio.create_task(read())
            while sent < target:
                while sent < target and conn.data_phase.queued < 256:
                    conn.send_nowait(I2NPMessage(18, sent // size, 0, body))
                    sent += size
                await asyncio.sleep(0.001)
            await asyncio.wait_for(reader, 60)
        received = received[0]
        report(f"data phase over 127.0.0.1 UDP, {size}-byte I2NP", received / 1e6, "MB/s", meter)
        print(f"{'':44s} retransmissions {conn.data_phase.retransmissions}, srtt "
              f"{(conn.data_phase.srtt or 0) * 1000:.1f} ms, window {conn.data_phase.window}")
        await conn.close()
    await ea.stop()
    await eb.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--handshakes", type=int, default=200)
    args = parser.parse_args()
    clock = FakeClock(time.time())
    alice, bob = make_ssu2_router("bench-alice", clock), make_ssu2_router("bench-bob", clock)
    bench_memory_handshakes(alice, bob, clock, args.handshakes)
    for size in (1028, 16000):
        bench_memory_data(alice, bob, clock, args.mb, size)
    real = SystemClock()
    alice, bob = make_ssu2_router("bench-alice", real), make_ssu2_router("bench-bob", real)
    asyncio.run(bench_loopback(alice, bob, args.handshakes, args.mb, (1028, 16000)))


if __name__ == "__main__":
    main()
