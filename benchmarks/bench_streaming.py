"""Prints streaming throughput between two of our endpoints over in-memory links, with and without loss.

Simulated: the sans-I/O core on a simulated clock; "sim MB/s" is goodput in simulated time (what the
window and congestion control achieve on that path), "CPU s/MB" the real cost of both ends.
asyncio: StreamSession over MemoryNetwork on the real loop, wall-clock MB/s.

Run: python benchmarks/bench_streaming.py [--mb 8]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import FakeClock  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402
from core.streaming.api import StreamSession  # noqa: E402
from core.streaming.config import StreamConfig  # noqa: E402
from core.streaming.link import Impairments, MemoryNetwork, SimulatedNetwork  # noqa: E402
from core.streaming.manager import StreamManager  # noqa: E402

PATHS = [
    ("no loss, 50 ms RTT", Impairments(delay=0.025)),
    ("no loss, 1 s RTT (I2P-like)", Impairments(delay=0.5, jitter=0.05)),
    ("2% loss, 1 s RTT, reordering", Impairments(delay=0.5, jitter=0.1, loss=0.02, reorder=0.05)),
    ("5% loss, 200 ms RTT, dup+reorder", Impairments(delay=0.1, jitter=0.03, loss=0.05, duplicate=0.02,
                                                     reorder=0.05)),
    ("1 MB/s bottleneck, 100 ms RTT", Impairments(delay=0.05, bandwidth=1_000_000, queue_delay=0.3)),
]


def rng_for(seed: int):
    rnd = random.Random(seed)
    return lambda n: rnd.randbytes(n)


def bench_simulated(name: str, impairments: Impairments, size: int, alice, bob) -> None:
    clock = FakeClock()
    a = StreamManager(alice, clock=clock, rng=rng_for(1))
    b = StreamManager(bob, clock=clock, rng=rng_for(2))
    b.listen()
    net = SimulatedNetwork(clock, impairments, seed=3)
    net.add(a)
    net.add(b)
    data = random.Random(4).randbytes(size)
    received = bytearray()
    box = []
    cpu = time.process_time()
    start = clock.monotonic()
    client = a.connect(bob.destination)
    client.send(data)
    client.close()

    def done():
        if not box:
            server = b.accept()
            if server is None:
                return False
            box.append(server)
        received.extend(box[0].read())
        if box[0].at_eof and not box[0].is_terminated:
            box[0].close()
        return box[0].at_eof
    ok = net.run_until(done, timeout=36000)
    cpu = time.process_time() - cpu
    seconds = clock.monotonic() - start
    assert ok and bytes(received) == data, name
    mb = size / 1e6
    print(f"sim   {name:36s} {mb / seconds:8.3f} sim MB/s  {cpu / mb:7.4f} CPU s/MB  "
          f"packets {net.sent:6d}  dropped {net.dropped:5d}  final window {client.cwnd:5.1f}")


async def bench_asyncio(name: str, impairments: Impairments, size: int, alice, bob) -> None:
    net = MemoryNetwork(impairments, seed=5)
    config = StreamConfig(initial_rto=1.0)
    a = StreamSession(alice, net.attach(alice.destination), config=config)
    b = StreamSession(bob, net.attach(bob.destination), config=config)
    data = random.Random(6).randbytes(size)
    result = asyncio.get_running_loop().create_future()

    async def sink(reader, writer):
        result.set_result(await reader.read())
        writer.close()
    await b.start_server(sink)
    wall, cpu = time.perf_counter(), time.process_time()
    reader, writer = await a.open_connection(bob.destination)
    writer.write(data)
    writer.write_eof()
    got = await asyncio.wait_for(result, 600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert got == data
    await a.close()
    await b.close()
    net.close()
    mb = size / 1e6
    print(f"async {name:36s} {mb / wall:8.3f} MB/s      {cpu / mb:7.4f} CPU s/MB  packets {net.sent:6d}  "
          f"dropped {net.dropped:5d}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=8.0)
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    alice = PrivateKeys.generate(rng=rng_for(10))
    bob = PrivateKeys.generate(rng=rng_for(11))
    for name, impairments in PATHS:
        bench_simulated(name, impairments, size, alice, bob)
    for name, impairments in [("loopback, no loss", Impairments()),
                              ("loopback, 1% loss, 2 ms delay", Impairments(delay=0.001, loss=0.01))]:
        asyncio.run(bench_asyncio(name, impairments, size, alice, bob))


if __name__ == "__main__":
    main()
