#!/usr/bin/env python3
"""Stream throughput and 64-byte round trip through 1-, 2- and 3-hop tunnels on a private testnet
(needs root and i2pd): pyi2p to pyi2p (two in-process routers' destinations over the streaming library)
and i2pd to i2pd (SAM STREAM sessions on r3 and r4), in the same testnet in the same run.

Per hop count and pair: MB/s for --mb megabytes A->B (first byte written until B confirms the last),
and the median of --pings 64-byte echo round trips on an open stream.

    python benchmarks/bench_streaming_testnet.py [--mb 5] [--pings 20] [--hops 1,2,3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.client import open_stream_session  # noqa: E402
from core.config import load_config  # noqa: E402
from core.router import Router  # noqa: E402
from core.tunnel.service import TunnelSettings  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402
from tests.interop.test_streaming_i2pd import SamStreams  # noqa: E402

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
CHUNK = 32 * 1024
PING = 64


def tunnel_options(hops: int) -> dict[str, str]:
    return {"inbound.length": str(hops), "outbound.length": str(hops), "inbound.quantity": "2",
            "outbound.quantity": "2"}


async def sink(reader, writer) -> None:
    """The B side: 'T<size>\\n' then size bytes, answered with one byte; or 'P' then 64-byte echoes."""
    kind = await reader.readexactly(1)
    if kind == b"T":
        size = int((await reader.readline()).decode())
        while size > 0:
            data = await reader.read(min(CHUNK * 4, size))
            if not data:
                return
            size -= len(data)
        writer.write(b"k")
        await writer.drain()
    else:
        while True:
            try:
                data = await reader.readexactly(PING)
            except asyncio.IncompleteReadError:
                break
            writer.write(data)
            await writer.drain()
    writer.close()


async def send_bulk(reader, writer, size: int, timeout: float = 300) -> float:
    """'T<size>\\n' and size bytes to a `sink`, until it confirms the last; MB/s."""
    block = os.urandom(CHUNK)
    started = time.monotonic()
    writer.write(b"T%d\n" % size)
    left = size
    while left > 0:
        writer.write(block[:min(CHUNK, left)])
        left -= CHUNK
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(1), timeout) == b"k"
    return size / (time.monotonic() - started) / 1e6


async def measure(connect, mb: float, pings: int) -> tuple[float, float]:
    """(MB/s, median round trip in ms) over two fresh streams from `connect()`."""
    reader, writer = await connect()
    rate = await send_bulk(reader, writer, int(mb * 1e6))
    writer.close()

    reader, writer = await connect()
    writer.write(b"P")
    rtts = []
    for _ in range(pings):
        payload = os.urandom(PING)
        started = time.monotonic()
        writer.write(payload)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(PING), 30) == payload
        rtts.append(time.monotonic() - started)
    writer.close()
    return rate, statistics.median(rtts) * 1000


async def warm_up(routers: list[Router], timeout: float = 90.0) -> None:
    """One throwaway 1-hop session per router, open until its LeaseSet is published (bounded)."""
    sessions = [await r.client.open_session(options=tunnel_options(1), name="warmup") for r in routers]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait_published() for s in sessions)), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        print("warm-up: a LeaseSet was not published in time", flush=True)
    finally:
        for session in sessions:
            await session.close()


async def pyi2p_pair(routers: list[Router], hops: int, mb: float, pings: int) -> tuple[float, float, float]:
    """Two destinations, one on each in-process router; returns (ready seconds, MB/s, ms)."""
    opened = time.monotonic()
    a, b = await asyncio.gather(*(r.client.open_session(options=tunnel_options(hops), name=f"bench{hops}{i}")
                                  for i, r in enumerate(routers)))
    try:
        try:
            await asyncio.wait_for(asyncio.gather(a.wait_published(), b.wait_published()), 120)
        except (asyncio.TimeoutError, TimeoutError):
            raise TimeoutError("LeaseSets not published in 120 s") from None
        ready = time.monotonic() - opened
        client, server = open_stream_session(a), open_stream_session(b)
        await server.start_server(sink)
        try:
            rate, rtt = await measure(lambda: asyncio.wait_for(client.open_connection(b.destination), 60), mb, pings)
        finally:
            await client.close()
            await server.close()
        return ready, rate, rtt
    finally:
        await a.close()
        await b.close()


async def i2pd_pair(testnet: Testnet, hops: int, mb: float, pings: int) -> tuple[float, float, float]:
    """SAM STREAM sessions on r3 (A) and r4 (B); B accepts and serves `sink` on each accepted socket."""
    opened = time.monotonic()
    a = SamStreams(testnet.sam_port("r3"), f"a{hops}", tunnel_options(hops))
    b = SamStreams(testnet.sam_port("r4"), f"b{hops}", tunnel_options(hops))
    await asyncio.gather(a.create(), b.create())
    ready = time.monotonic() - opened
    serving: list[asyncio.Task] = []

    async def serve_one() -> None:
        reader, writer, peer = await b.accept()
        await peer
        await sink(reader, writer)

    async def connect():
        serving.append(asyncio.create_task(serve_one()))
        await asyncio.sleep(0.05)
        for attempt in range(4):   # i2pd 2.45.1 may not publish a fresh LeaseSet (testnet README pitfall 5)
            try:
                return await a.connect(b.destination, timeout=30)
            except (ConnectionError, asyncio.TimeoutError, TimeoutError):
                if attempt == 1:   # B -> A hands A's router B's LeaseSet
                    serving.append(asyncio.create_task(a.accept()))
                    try:
                        _, warm = await b.connect(a.destination, timeout=30)
                        warm.close()
                    except (ConnectionError, asyncio.TimeoutError, TimeoutError):
                        pass
        raise ConnectionError("i2pd A could not reach B")
    try:
        rate, rtt = await measure(connect, mb, pings)
        return ready, rate, rtt
    finally:
        for task in serving:
            task.cancel()
        a.close()
        b.close()


async def run(args: argparse.Namespace) -> None:
    hop_counts = [int(h) for h in args.hops.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        testnet = Testnet(Path(tmp) / "testnet", netns=private_netns_name("bench"), die_with_parent=True)
        try:
            testnet.up(wait=120)
            addresses = [testnet.add_pyi2p_address() for _ in range(2)]
            rows = []
            with testnet.in_netns():
                routers = [Router(load_config(Path(tmp) / f"pyi2p{i}", {
                    "netid": testnet.netid, "host": address, "port": 24400 + i, "reseed_file": str(testnet.seed_file),
                    "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS) for i, address in enumerate(addresses)]
                try:
                    for router in routers:
                        await router.start()
                    # fresh routers first need the i2pd floodfills to hold their RouterInfos and tunnels of their own
                    await warm_up(routers)
                    for hops in hop_counts:
                        for name, pair in (("pyi2p -> pyi2p", lambda h: pyi2p_pair(routers, h, args.mb, args.pings)),
                                           ("i2pd -> i2pd", lambda h: i2pd_pair(testnet, h, args.mb, args.pings))):
                            try:
                                ready, rate, rtt = await pair(hops)
                                rows.append((hops, name, f"{ready:.1f}", f"{rate:.2f}", f"{rtt:.1f}"))
                            except Exception as e:   # one failed pair must not lose the other figures
                                rows.append((hops, name, "-", "-", f"failed: {type(e).__name__} {e}"[:60]))
                            print(*rows[-1], sep="\t", flush=True)
                finally:
                    for router in routers:
                        await router.stop()
            print(f"\n{args.mb:g} MB A->B, median of {args.pings} x 64-byte round trips; session ready = "
                  "LeaseSets published (pyi2p) / SESSION CREATE answered (i2pd, polls every 20 s)")
            print(f"{'hops':>4}  {'pair':<15} {'ready s':>8} {'MB/s':>7} {'RTT ms':>8}")
            for hops, name, ready, rate, rtt in rows:
                print(f"{hops:>4}  {name:<15} {ready:>8} {rate:>7} {rtt:>8}")
        finally:
            testnet.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--pings", type=int, default=20)
    parser.add_argument("--hops", default="1,2,3")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"testnet unavailable: {reason}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
