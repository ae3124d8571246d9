#!/usr/bin/env python3
"""Stream throughput and 64-byte round trip through 1-, 2- and 3-hop tunnels on a private testnet
(needs root and i2pd), for three pairs of routers in the same testnet in the same run:

  pyi2p -> pyi2p   two pyi2p routers in this process, their destinations over the streaming library
  pyi2p SAM        two `pyi2p run` routers (p1, p2), each its own process, through their SAM bridges
  i2pd -> i2pd     two i2pd routers (r3, r4) through their SAM bridges

Per hop count and pair: MB/s for --mb megabytes A->B (first byte written until B confirms the last),
CPU seconds per MB during that transfer of the pair's two routers ("ends") and of every other process of
the run ("rest": the hops, and the SAM clients in this process), and the median of --pings 64-byte echo
round trips on an open stream.

    python benchmarks/bench_streaming_testnet.py [--mb 5] [--pings 20] [--hops 1,2,3]
                                                 [--pairs pyi2p,pyi2p-sam,i2pd] [--stats] [--profile FILE]

--stats prints the in-process pyi2p pair's streaming and client-session counters (resends, timeouts, drops).
--profile FILE runs the in-process pyi2p pair's bulk transfers under cProfile and writes the stats to FILE
(read them with pstats).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.client import open_stream_session  # noqa: E402
from core.config import load_config  # noqa: E402
from core.router import Router  # noqa: E402
from core.stats import cpu_times  # noqa: E402
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


def cpu_seconds(pids: list) -> float:
    """User + system CPU seconds of the processes `pids` ("self" for this one)."""
    def total(pid) -> float:
        try:
            return sum(cpu_times(pid))
        except OSError:   # a router that died counts nothing
            return 0.0
    return sum(total(pid) for pid in pids)


async def measure(connect, mb: float, pings: int, ends: list, rest: list, profiler=None
                  ) -> tuple[float, float, float, float]:
    """(MB/s, CPU s/MB of the processes `ends` and of `rest`, median round trip in ms) over two fresh streams; the
    bulk transfer under `profiler` (a cProfile.Profile) if one is given."""
    reader, writer = await connect()
    ends0, rest0 = cpu_seconds(ends), cpu_seconds(rest)
    if profiler is not None:
        profiler.enable()
    rate = await send_bulk(reader, writer, int(mb * 1e6))
    if profiler is not None:
        profiler.disable()
    ends1, rest1 = cpu_seconds(ends), cpu_seconds(rest)
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
    return rate, (ends1 - ends0) / mb, (rest1 - rest0) / mb, statistics.median(rtts) * 1000


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


async def watch(conn, every: float = 1.0) -> None:
    """The sender's window, RTT estimate and buffers, once a second (--stats)."""
    while not conn.is_terminated:
        print(f"    {conn!r} srtt={conn.srtt or 0:.3f} buffered={conn.send_buffered} resent={conn.packets_resent}",
              flush=True)
        await asyncio.sleep(every)


async def pyi2p_pair(routers: list[Router], pids: list[int], hops: int, mb: float, pings: int,
                     show_stats: bool = False, profiler=None) -> tuple[float, float, float, float, float]:
    """Two destinations, one on each in-process router; returns (ready seconds, `measure`'s figures)."""
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
            watchers: list[asyncio.Task] = []

            async def connect():
                reader, writer = await asyncio.wait_for(client.open_connection(b.destination), 60)
                if show_stats and not watchers:
                    watchers.append(asyncio.create_task(watch(writer.get_extra_info("connection"))))
                return reader, writer
            try:
                figures = await measure(connect, mb, pings, ["self"], pids, profiler)
            finally:
                for task in watchers:
                    task.cancel()
                if show_stats:   # a failed transfer's counters too
                    ours = {router.hash: f"p{i}" for i, router in enumerate(routers)}
                    for side, pool in (("A outbound", a._handle[1]), ("B inbound", b._handle[0])):
                        tunnels = list(pool.outbound.values()) + list(pool.inbound.values())
                        print(f"  {hops} hops {side} tunnels: " + ", ".join(
                            "-".join(ours.get(hop, "i2pd") for hop in tunnel.hops) for tunnel in tunnels))
                    for side, stream, session in (("A", client, a), ("B", server, b)):
                        print(f"  {hops} hops {side} streaming: {dict(sorted(stream.stats.items()))}")
                        print(f"  {hops} hops {side} session: {dict(sorted(session.stats.items()))}", flush=True)
        finally:
            await client.close()
            await server.close()
        return ready, *figures
    finally:
        await a.close()
        await b.close()


async def sam_pair(testnet: Testnet, a_name: str, b_name: str, hops: int, mb: float,
                   pings: int) -> tuple[float, float, float, float, float]:
    """SAM STREAM sessions on routers `a_name` (A) and `b_name` (B) of the testnet; B accepts and serves `sink` on
    each accepted socket. Their processes are the ends, every other process of the run (this one too) the rest."""
    opened = time.monotonic()
    a = SamStreams(testnet.sam_port(a_name), f"a{hops}", tunnel_options(hops))
    b = SamStreams(testnet.sam_port(b_name), f"b{hops}", tunnel_options(hops))
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
        raise ConnectionError(f"{a_name} could not reach {b_name}")
    ends = [testnet.router(a_name).pid, testnet.router(b_name).pid]
    rest = ["self"] + [r.pid for r in testnet.routers if r.pid and r.pid not in ends]
    try:
        return ready, *await measure(connect, mb, pings, ends, rest)
    finally:
        for task in serving:
            task.cancel()
        a.close()
        b.close()


def keep_logs(testnet: Testnet, pair: str, hops: int) -> None:
    """A failed SAM pair's router logs, copied out of the testnet (whose folder goes at the end)."""
    ends = {"pyi2p-sam": ("p1", "p2"), "i2pd": ("r3", "r4")}.get(pair, ())
    if not ends:
        return
    folder = Path(tempfile.mkdtemp(prefix=f"bench-streaming-{pair}-{hops}hops-"))
    for name in ends:
        for log in Path(testnet.router(name).datadir).glob("*.log"):
            shutil.copy(log, folder / f"{name}-{log.name}")
    print(f"the failed pair's router logs: {folder}", flush=True)


async def run(args: argparse.Namespace) -> None:
    hop_counts = [int(h) for h in args.hops.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        pair_names = args.pairs.split(",")
        testnet = Testnet(Path(tmp) / "testnet", pyi2p_count=2 if "pyi2p-sam" in pair_names else 0,
                          netns=private_netns_name("bench"), die_with_parent=True)
        try:
            testnet.up(wait=120)
            addresses = [testnet.add_pyi2p_address() for _ in range(2)]
            rows = []
            profiler = cProfile.Profile() if args.profile else None
            pids = [r.pid for r in testnet.routers if r.pid]
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
                        pairs = {
                            "pyi2p": ("pyi2p -> pyi2p", lambda h: pyi2p_pair(routers, pids, h, args.mb, args.pings,
                                                                             args.stats, profiler)),
                            "pyi2p-sam": ("pyi2p SAM", lambda h: sam_pair(testnet, "p1", "p2", h, args.mb,
                                                                          args.pings)),
                            "i2pd": ("i2pd -> i2pd", lambda h: sam_pair(testnet, "r3", "r4", h, args.mb, args.pings))}
                        for key, (name, pair) in ((key, pairs[key]) for key in pair_names):
                            try:
                                ready, rate, ends, rest, rtt = await pair(hops)
                                rows.append((hops, name, f"{ready:.1f}", f"{rate:.2f}", f"{ends:.2f}", f"{rest:.2f}",
                                             f"{rtt:.1f}"))
                            except Exception as e:   # one failed pair must not lose the other figures
                                traceback.print_exc()
                                keep_logs(testnet, key, hops)
                                rows.append((hops, name, "-", "-", "-", "-", f"failed: {type(e).__name__} {e}"[:60]))
                            print(*rows[-1], sep="\t", flush=True)
                finally:
                    for router in routers:
                        await router.stop()
            if profiler is not None:
                profiler.dump_stats(args.profile)
            print(f"\n{args.mb:g} MB A->B, median of {args.pings} x 64-byte round trips; session ready = "
                  "LeaseSets published (in process) / SESSION CREATE answered (SAM; i2pd's polls every 20 s)")
            print("CPU s/MB during the bulk transfer: ends = the pair's two routers (this process for the in-process "
                  "pair), rest = every other process of the run (hops, SAM clients)")
            print(f"{'hops':>4}  {'pair':<15} {'ready s':>8} {'MB/s':>7} {'ends CPU':>9} {'rest CPU':>9} "
                  f"{'RTT ms':>8}")
            for hops, name, ready, rate, ends, rest, rtt in rows:
                print(f"{hops:>4}  {name:<15} {ready:>8} {rate:>7} {ends:>9} {rest:>9} {rtt:>8}")
        finally:
            testnet.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--pings", type=int, default=20)
    parser.add_argument("--hops", default="1,2,3")
    parser.add_argument("--pairs", default="pyi2p,pyi2p-sam,i2pd",
                        help="which pairs, of pyi2p (in process), pyi2p-sam and i2pd")
    parser.add_argument("--stats", action="store_true", help="print the pyi2p pair's counters")
    parser.add_argument("--profile", default="", help="cProfile the pyi2p bulk transfers, stats to this file")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"testnet unavailable: {reason}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("core.streaming.connection").setLevel(logging.INFO)   # why a stream was reset
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
