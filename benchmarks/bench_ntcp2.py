"""Prints NTCP2 handshakes per second and data-phase MB/s between two of our endpoints, with CPU seconds.

Run: python benchmarks/bench_ntcp2.py [--mb 50] [--handshakes 200]
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
from core.transport.ntcp2.blocks import I2NPBlock  # noqa: E402
from core.transport.ntcp2.driver import DriverSettings, connect, listen  # noqa: E402
from core.transport.ntcp2.handshake import Initiator, ReplayCache, Responder  # noqa: E402
from core.transport.ntcp2.session import DataPhase  # noqa: E402
from tests.transport.test_ntcp2_support import NETID, make_router  # noqa: E402


class Meter:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def report(name: str, count: float, unit: str, meter: Meter) -> None:
    print(f"{name:44s} {count / meter.wall:10.1f} {unit:14s} wall {meter.wall:6.2f} s  cpu {meter.cpu:6.2f} s")


def bench_memory_handshakes(alice, bob, clock, n: int) -> None:
    cache = ReplayCache(clock, max_entries=n + 1)
    with Meter() as meter:
        for _ in range(n):
            initiator = Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash,
                                  bob.static_key.public_bytes, bob.iv, netid=NETID, clock=clock)
            responder = Responder(bob.static_key, bob.router_hash, bob.iv, netid=NETID, clock=clock,
                                  replay_cache=cache)
            responder.feed(initiator.data_to_send())
            initiator.feed(responder.data_to_send())
            responder.feed(initiator.data_to_send())
            assert responder.complete
    report("handshakes, sans-I/O in memory (both sides)", n, "handshakes/s", meter)


def bench_memory_data(alice, bob, clock, megabytes: int, size: int) -> None:
    initiator = Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash,
                          bob.static_key.public_bytes, bob.iv, netid=NETID, clock=clock)
    responder = Responder(bob.static_key, bob.router_hash, bob.iv, netid=NETID, clock=clock,
                          replay_cache=ReplayCache(clock))
    responder.feed(initiator.data_to_send())
    initiator.feed(responder.data_to_send())
    responder.feed(initiator.data_to_send())
    sender, receiver = DataPhase(initiator.result.keys), DataPhase(responder.result.keys)
    message = I2NPBlock(18, 1, 0, os.urandom(size))
    batch = [message] * max(1, 16384 // (size + 12))
    total = megabytes * 1_000_000
    sent = 0
    with Meter() as meter:
        while sent < total:
            wire = sender.pack(batch)
            receiver.feed(wire)
            sent += len(batch) * size
    report(f"data phase in memory, {size}-byte I2NP", sent / 1e6, "MB/s", meter)


async def bench_loopback(alice, bob, handshakes: int, megabytes: int, sizes: tuple[int, ...]) -> None:
    target = megabytes * 1_000_000
    state = {"received": 0, "done": asyncio.Event()}

    async def on_connection(conn):
        async for block in conn:
            if isinstance(block, I2NPBlock):
                state["received"] += len(block.body)
                if state["received"] >= target:
                    state["done"].set()

    listener = await listen("127.0.0.1", 0, static_key=bob.static_key, router_hash=bob.router_hash, iv=bob.iv,
                            netid=NETID, on_connection=on_connection, settings=DriverSettings(),
                            replay_cache=ReplayCache(SystemClock(), max_entries=handshakes + 10))

    async def dial():
        return await connect("127.0.0.1", listener.port, static_key=alice.static_key,
                             router_info=alice.router_info_bytes, peer_router_hash=bob.router_hash,
                             peer_static_key=bob.static_key.public_bytes, peer_iv=bob.iv, netid=NETID)

    with Meter() as meter:
        for _ in range(handshakes):
            conn = await dial()
            await conn.close()
    report("handshakes over 127.0.0.1 TCP (both sides)", handshakes, "handshakes/s", meter)

    for size in sizes:
        state["received"], state["done"] = 0, asyncio.Event()
        conn = await dial()
        batch = [I2NPBlock(18, 1, 0, os.urandom(size))] * max(1, 16384 // (size + 12))
        sent = 0
        with Meter() as meter:
            while sent < target:
                await conn.send(batch)
                sent += len(batch) * size
            await asyncio.wait_for(state["done"].wait(), 120)
        report(f"data phase over 127.0.0.1 TCP, {size}-byte I2NP", state["received"] / 1e6, "MB/s", meter)
        await conn.close()
    await listener.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--handshakes", type=int, default=200)
    args = parser.parse_args()
    clock = FakeClock(time.time())
    alice, bob = make_router("bench-alice", clock), make_router("bench-bob", clock)
    bench_memory_handshakes(alice, bob, SystemClock(), args.handshakes)
    for size in (1028, 16000):
        bench_memory_data(alice, bob, clock, args.mb, size)
    asyncio.run(bench_loopback(alice, bob, args.handshakes, args.mb, (1028, 16000)))


if __name__ == "__main__":
    main()
