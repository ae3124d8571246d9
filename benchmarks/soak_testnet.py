#!/usr/bin/env python3
"""Soak: two in-process pyi2p routers on a private testnet of i2pd routers (needs root and i2pd) for
--minutes, with churn: every --churn seconds one i2pd router is restarted, and our clients keep opening,
using and closing streams between a destination on each router (through tunnels over i2pd hops).

Every --every seconds it prints the process's resident memory, asyncio tasks and open file descriptors,
with the streams done and failed so far; at the end, the figures at 10 minutes and at the end, and the
growth between them (the router must not grow after its first ten minutes).

With --diag, each sample also prints, per router: NTCP2 sessions, peers profiled as failing, the client
pools' tunnels (inbound/outbound, with the hops' first letters and ages) and builds in flight, and how many
of the leases in A's copy of B's LeaseSet are still B's tunnels (stale leases are dead paths).

With --tracemalloc, Python allocations are traced from the start: a snapshot at --baseline minutes (5) and one
at the end give the top 25 growths by 3-frame traceback, traced total against RSS, a census of every container
reachable from the routers and sessions whose size grew, and the pymalloc arenas against the live objects in
them (every sample shows these two as well): arenas growing while live objects do not is heap fragmentation,
not a leak.

    python benchmarks/soak_testnet.py [--minutes 60] [--churn 120] [--every 60] [--i2pd PATH] [--diag]
                                      [--tracemalloc [--baseline 5]]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import itertools
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.client import open_stream_session  # noqa: E402
from core.config import load_config  # noqa: E402
from core.data.encoding import b64encode  # noqa: E402
from core.router import Router  # noqa: E402
from core.stats import rss_mb  # noqa: E402
from core.tunnel.service import TunnelSettings  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
OPTIONS = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2"}
PAYLOAD = os.urandom(64 * 1024)


async def echo(reader, writer) -> None:
    try:
        while data := await asyncio.wait_for(reader.read(65536), 60):
            writer.write(data)
            await writer.drain()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def one_stream(client, destination) -> None:
    """Opens a stream, sends 64 KiB, reads it back, closes."""
    reader, writer = await asyncio.wait_for(client.open_connection(destination), 60)
    try:
        writer.write(PAYLOAD)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(PAYLOAD)), 60) == PAYLOAD
    finally:
        writer.close()


def sample() -> tuple[float, int, int]:
    gc.collect()
    return rss_mb(), len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))


def pymalloc() -> tuple[float, float] | None:
    """(MB in pymalloc arenas, MB of live small objects in them) from sys._debugmallocstats(), which writes to
    the C stderr; None while tracemalloc hooks the allocator. Arenas far above live objects is fragmentation."""
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        figures = {line.split("=")[0].strip("# ").strip(): int(line.split("=")[1].replace(",", ""))
                   for line in out if line.startswith("# ") and "=" in line}
    if "arenas allocated current" not in figures:
        return None
    return float(figures["arenas allocated current"]), figures["bytes in allocated blocks"] / 2**20   # 1 MiB arenas


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        testnet = Testnet(Path(tmp) / "testnet", netns=private_netns_name("soak"), die_with_parent=True,
                          i2pd=args.i2pd)
        try:
            testnet.up(wait=120)
            addresses = [testnet.add_pyi2p_address() for _ in range(2)]
            with testnet.in_netns():
                routers = [Router(load_config(Path(tmp) / f"pyi2p{i}", {
                    "netid": testnet.netid, "host": address, "port": 24500 + i, "reseed_file": str(testnet.seed_file),
                    "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS) for i, address in enumerate(addresses)]
                for router in routers:
                    await router.start()
                try:
                    await soak(args, testnet, routers)
                finally:
                    for router in routers:
                        await router.stop()
        finally:
            testnet.down()


async def soak(args: argparse.Namespace, testnet: Testnet, routers: list[Router]) -> None:
    a, b = await asyncio.gather(*(r.client.open_session(options=OPTIONS, name=f"soak{i}")
                                  for i, r in enumerate(routers)))
    client, server = open_stream_session(a), open_stream_session(b)
    await server.start_server(echo)
    i2pd = itertools.cycle([r.name for r in testnet.i2pd_routers])
    counts = {"ok": 0, "failed": 0, "restarts": 0}
    started = time.monotonic()
    end = started + args.minutes * 60
    next_churn = started + args.churn
    next_sample = started
    samples: list[tuple[float, float, int, int]] = []
    baseline: tuple[tracemalloc.Snapshot, dict[str, int]] | None = None
    roots = {"routerA": routers[0], "routerB": routers[1], "sessionA": a, "sessionB": b}
    print(f"{'min':>5} {'RSS MB':>7} {'tasks':>6} {'fds':>5} {'streams ok':>10} {'failed':>7} {'restarts':>8}"
          f" {'arenas MB':>9} {'in use MB':>9}", flush=True)

    async def traffic() -> None:
        while True:   # a few streams at once, then a pause: clients come and go
            results = await asyncio.gather(*(one_stream(client, b.destination) for _ in range(3)),
                                           return_exceptions=True)
            for result in results:
                counts["failed" if isinstance(result, BaseException) else "ok"] += 1
            await asyncio.sleep(2)

    clients = asyncio.create_task(traffic())
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                rss, tasks, fds = sample()
                minute = (now - started) / 60
                samples.append((minute, rss, tasks, fds))
                arenas = pymalloc()
                print(f"{minute:5.1f} {rss:7.1f} {tasks:6d} {fds:5d} {counts['ok']:10d} {counts['failed']:7d} "
                      f"{counts['restarts']:8d}" + (f" {arenas[0]:9.1f} {arenas[1]:9.1f}" if arenas else ""), flush=True)
                if args.diag:
                    print(diagnostics(routers, a, b, (client, server)), flush=True)
                next_sample += args.every
            if args.tracemalloc and baseline is None and now - started >= args.baseline * 60:
                gc.collect()
                baseline = (tracemalloc.take_snapshot(), census(roots))
                print(f"      baseline: traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB", flush=True)
            if now >= next_churn:
                name = next(i2pd)
                if args.diag:
                    print(f"      restarting {name} ({testnet.router(name).ident_hash[:2]})", flush=True)
                await asyncio.to_thread(testnet.restart, name)
                counts["restarts"] += 1
                next_churn += args.churn
            await asyncio.sleep(1)
    finally:
        clients.cancel()
        await asyncio.gather(clients, return_exceptions=True)
        await client.close()
        await server.close()
        await a.close()
        if baseline is not None:
            growth(baseline, roots)
        await b.close()
    report(samples, counts)


def diagnostics(routers: list[Router], a, b, streams) -> str:
    """One line per router: sessions, failing peers, client tunnels, builds, open streams (state, RTO, packets
    unacknowledged, timeouts); then each side's view of the other's leases."""
    now = routers[0].clock.monotonic()
    lines = []
    for router, session in zip(routers, (a, b)):
        tunnels = router.tunnel_service
        profiles = router.profiles
        failing = sum(1 for tier in profiles.tiers().values() if tier.value == "failing")
        pools = []
        for pool in session._handle:
            described = " ".join(f"{'.'.join(b64encode(h)[:2] for h in t.hops) or '0'}{'!' * t.test_failures}:{now - t.created_at:.0f}"
                                 for t in pool.core.tunnels)
            pools.append(f"{'in' if pool.is_inbound else 'out'}[{described}]+{pool.core.pending_builds}")
        stats = tunnels.stats
        manager = streams[routers.index(router)].manager
        conns = " ".join(f"{c.state.value[:4]}/{c.rto:.1f}/{len(c._unacked)}/{c.timeouts}"
                         f"/{min(c._unacked, default='-')}<{c._next_seq}/r{c._recv_next}+{len(c._ooo)}"
                         for c in manager.connections)
        lines.append(f"      {b64encode(router.hash)[:2]}: streams [{conns}] {dict(manager.stats)}")
        lines.append(f"      {b64encode(router.hash)[:2]}: ntcp2 {len(router.transports.sessions)} failing {failing} "
                     f"{' '.join(pools)} tests ok/failed {stats['tests_passed']}/{stats['tests_failed']} "
                     f"retired {stats['tunnels_retired']} builds ok/timeout/rejected {stats['builds_succeeded']}/"
                     f"{stats['builds_timed_out']}/{stats['builds_rejected']}")
    for (name, session), (other_name, other), router in zip((("A", a), ("B", b)), (("B", b), ("A", a)),
                                                          reversed(routers)):
        remote = session.remote_leaseset(other.hash)
        if remote is None:
            lines.append(f"      {name} has no LeaseSet of {other_name}")
            continue
        live = {(gw, tid) for gw, tid, _ in router.tunnel_service.leases(other._handle[0])}
        fresh = sum((lease.gateway, lease.tunnel_id) in live for lease in remote.leases)
        lines.append(f"      {name}'s copy of {other_name}'s LeaseSet: {fresh}/{len(remote.leases)} leases live, "
                     f"{router.clock.time() - remote.header.published:.0f} s old; {name} {dict(session.stats)}, "
                     f"garlic {dict(session.skm.stats)}")
    return "\n".join(lines)


def census(roots: dict[str, object], depth: int = 5) -> dict[str, int]:
    """Size of every dict/list/set/deque reachable through attributes (and dict values) from `roots`, by path."""
    sizes: dict[str, int] = {}
    seen: set[int] = set()

    def walk(obj: object, path: str, level: int) -> None:
        if id(obj) in seen or level > depth or isinstance(obj, (str, bytes, int, float, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, (dict, list, set, frozenset, tuple, collections.deque, collections.OrderedDict)):
            sizes[path] = len(obj)
            values = obj.values() if isinstance(obj, dict) else obj
            for i, value in enumerate(itertools.islice(values, 50)):
                walk(value, f"{path}[]", level + 1)
            return
        module = type(obj).__module__ or ""
        if not module.startswith(("core", "apps", "pyi2p")):
            return
        attrs = dict(getattr(obj, "__dict__", {}))
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
        for name, value in attrs.items():
            walk(value, f"{path}.{name}", level + 1)

    for name, root in roots.items():
        walk(root, name, 0)
    return sizes


def growth(baseline: tuple[tracemalloc.Snapshot, dict[str, int]], roots: dict[str, object]) -> None:
    """Top 25 allocation growths since the baseline, containers that grew, traced total against RSS."""
    gc.collect()
    before, sizes_before = baseline
    after = tracemalloc.take_snapshot()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(filters), after.filter_traces(filters)
    print("\ntop 25 growths since the baseline (3-frame tracebacks):")
    for stat in after.compare_to(before, "traceback")[:25]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  (now {stat.size / 1024:.1f} KiB)")
        for line in stat.traceback.format()[-6:]:
            print(f"      {line}")
    print("\ntop 15 growths by line:")
    for stat in after.compare_to(before, "lineno")[:15]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}")
    sizes = census(roots)
    grown = sorted(((sizes[k] - sizes_before.get(k, 0), k) for k in sizes if sizes[k] > sizes_before.get(k, 0)),
                   reverse=True)
    print("\ncontainers that grew since the baseline (growth, now, path):")
    for diff, path in grown[:40]:
        print(f"  {diff:+7d} {sizes[path]:7d}  {path}")
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arenas = pymalloc()
    print(f"\ntraced {current / 2**20:.1f} MB (peak {peak / 2**20:.1f}), RSS {rss_mb():.1f} MB; pymalloc arenas "
          f"{arenas[0]:.1f} MB holding {arenas[1]:.1f} MB of live objects once tracing stopped", flush=True)


def report(samples: list[tuple[float, float, int, int]], counts: dict[str, int]) -> None:
    if not samples:
        return
    at10 = min(samples, key=lambda s: abs(s[0] - 10))
    last = samples[-1]
    print(f"\nstreams: {counts['ok']} ok, {counts['failed']} failed; i2pd restarts: {counts['restarts']}")
    print(f"at {at10[0]:.0f} min: RSS {at10[1]:.1f} MB, {at10[2]} tasks, {at10[3]} fds")
    print(f"at {last[0]:.0f} min: RSS {last[1]:.1f} MB, {last[2]} tasks, {last[3]} fds")
    print(f"growth after 10 min: RSS {last[1] - at10[1]:+.1f} MB, tasks {last[2] - at10[2]:+d}, "
          f"fds {last[3] - at10[3]:+d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--churn", type=float, default=120.0, help="seconds between i2pd restarts")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--i2pd", default=None, help="the i2pd binary (default: $PYI2P_I2PD or Debian's)")
    parser.add_argument("--diag", action="store_true", help="per sample: sessions, tunnels, leases per router")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace allocations; print the growth between --baseline and the end")
    parser.add_argument("--baseline", type=float, default=5.0, help="minute of the --tracemalloc baseline")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(3)
    reason = unavailable_reason()
    if reason:
        sys.exit(f"testnet unavailable: {reason}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
