#!/usr/bin/env python3
"""Transit forwarding through one participant hop: pyi2p vs i2pd, over real NTCP2 sessions (needs root and i2pd).

A private testnet (2 i2pd routers) runs in its own network namespace. In this process run pyi2p routers A
(tunnel creator and gateway) and E (outbound endpoint); the hop H is either a pyi2p router in a child process
or the i2pd router r2. A builds the 2-hop outbound tunnel A -> H -> E and pushes N one-fragment messages
through it; E counts what comes out. Printed per hop: tunnel messages per second (first send to last
arrival) and the hop's CPU seconds per 1000 messages (from /proc of its process).

    python benchmarks/bench_transit_i2pd.py [--messages 5000] [--batch 100] [--profile FILE]

The pyi2p hop runs on asyncio's loop; with the [fast] extra installed, PYI2P_UVLOOP=1 measures it on uvloop's.
With --profile the pyi2p hop runs under cProfile and writes its stats to FILE (read them with pstats).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import eventloop  # noqa: E402
from core.config import load_config  # noqa: E402
from core.crypto.x25519 import X25519Keypair  # noqa: E402
from core.data.encoding import b64decode, b64encode  # noqa: E402
from core.data.routerinfo import RouterInfo  # noqa: E402
from core.i2np import I2NPMessage, MessageType  # noqa: E402
from core.router import Router  # noqa: E402
from core.stats import cpu_times  # noqa: E402
from core.tunnel.service import TunnelService, TunnelSettings  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402

SETTINGS = TunnelSettings(ip_restriction=0, tick_s=0.5)
PAYLOAD = 900  # a Data message of 920 bytes: one TunnelData each with ROUTER delivery instructions


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    return cpu_times(pid)


class Node:
    """A pyi2p router with a tunnel service that builds nothing on its own."""

    def __init__(self, datadir: Path, address: str, port: int, netid: int, seed_file: str):
        self.router = Router(load_config(datadir, {"netid": netid, "host": address, "port": port,
                                                   "reseed_file": seed_file, "control_port": 0,
                                                   "bandwidth": "X"}))
        self.service: TunnelService | None = None
        self.local_count = 0
        dispatch = self.router.handle_message

        def handle_message(peer, message):
            if self.service is None or not self.service.handle_message(peer, message):
                dispatch(peer, message)
        self.router.handle_message = handle_message

    async def start(self) -> None:
        r = self.router
        await r.start()
        self.service = TunnelService(router_hash=r.hash, static_key=X25519Keypair(r.keys.keys.private_key),
                                     send=r.transports.send, netdb=r.netdb, clock=r.clock, rng=r.rng,
                                     settings=SETTINGS, lookup_router_info=r.netdb_service.lookup_router_info,
                                     connected=r.transports.is_connected, send_raw=r.transports.send_raw)
        r.transports.relay = self.service.relay_tunnel_data
        for pool in self.service.pools:
            pool.retry_at = float("inf")  # no exploratory builds: only the measured tunnel's traffic

        def count(message: I2NPMessage) -> None:
            if message.type == MessageType.DATA:
                self.local_count += 1
        self.service.on_local_message = count
        await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
        await self.router.stop()

    async def connect(self, peer: bytes) -> None:
        # our dials leave from the target's own address on the namespace's lo; i2pd refuses a second
        # pending handshake from one IP, so dial one at a time and retry
        for _ in range(10):
            if await self.router.transports.connect(peer) is not None:
                return
            await asyncio.sleep(1.0)
        raise RuntimeError(f"cannot connect to {b64encode(peer)[:8]}")


async def hop_child(datadir: str, address: str, port: int, netid: int, seed_file: str, profile: str) -> None:
    """The pyi2p hop in its own process: start, say READY, run until stdin closes."""
    node = Node(Path(datadir), address, port, netid, seed_file)
    await node.start()
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    assert node.service is not None
    print(f"STATS {node.service.transit.stats}", flush=True)
    await node.stop()


async def measure(a: Node, e: Node, hop_hash: bytes, hop_pid: int, name: str, count: int, batch: int) -> None:
    assert a.service is not None and e.service is not None
    await e.connect(hop_hash)
    await a.connect(hop_hash)
    pool = a.service.exploratory_outbound
    key = await a.service.build_tunnel(pool, [hop_hash, e.router.hash])
    if key is None:
        print(f"{name}: the tunnel A -> {name} -> E could not be built")
        return
    expiration = int(time.time() * 1000) + 60_000
    body = PAYLOAD.to_bytes(4, "big") + os.urandom(PAYLOAD)
    messages = [I2NPMessage(MessageType.DATA, i + 1, expiration, body) for i in range(count)]
    e.local_count = 0
    cpu0, t0 = cpu_seconds(hop_pid), time.perf_counter()
    for start in range(0, count, batch):
        for message in messages[start:start + batch]:
            a.service.send_via_outbound(pool, message, to_router=e.router.hash, tunnel_key=key)
        await asyncio.sleep(0)
        stall_until = time.perf_counter() + 5.0
        while e.local_count < start - 4 * batch and time.perf_counter() < stall_until:
            await asyncio.sleep(0.001)  # keep a few batches in flight, no more
        if e.local_count < start - 4 * batch:
            print(f"{name} hop: messages lost (5 s without progress), sending stopped after {start + batch}")
            count = start + batch  # what was sent; waiting 5 s per batch for lost ones would measure nothing
            break
    last, last_change = -1, time.perf_counter()
    while e.local_count < count and time.perf_counter() - last_change < 5.0:
        if e.local_count != last:
            last, last_change = e.local_count, time.perf_counter()
        await asyncio.sleep(0.01)
    elapsed = (last_change if e.local_count < count else time.perf_counter()) - t0
    (user1, system1), (user0, system0) = cpu_seconds(hop_pid), cpu0
    user, system = user1 - user0, system1 - system0
    cpu = user + system
    got = e.local_count
    print(f"{name} hop: {got}/{count} tunnel messages through in {elapsed:.2f} s: {got / elapsed:,.0f} msg/s, "
          f"{got * 1028 / elapsed / 1e6:.2f} MB/s of TunnelData; hop CPU {cpu:.2f} s = "
          f"{1000 * cpu / max(got, 1):.3f} s per 1000 messages (user {1000 * user / max(got, 1):.3f}, "
          f"system {1000 * system / max(got, 1):.3f})")


async def run(net: Testnet, workdir: Path, count: int, batch: int, profile: str) -> None:
    i2pd_hop = net.router("r2")
    with net.in_netns():
        addresses = [net.add_pyi2p_address() for _ in range(3)]
        a = Node(workdir / "a", addresses[0], 26600, net.netid, str(net.seed_file))
        e = Node(workdir / "e", addresses[1], 26610, net.netid, str(net.seed_file))
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--hop-child", str(workdir / "h"), addresses[2], "26620", str(net.netid),
            str(net.seed_file), profile, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdin is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if line.strip() != b"READY":
                raise RuntimeError(f"the pyi2p hop did not start: {line!r}")
            hop_info = (workdir / "h" / "router.info").read_bytes()
            await a.start()
            await e.start()
            for node in (a, e):
                node.router.netdb.add_router_info(hop_info)
                node.router.netdb.add_router_info((a if node is e else e).router.router_info)
            pyi2p_hop = RouterInfo.parse(hop_info).hash
            loop = "uvloop" if eventloop.uvloop_available() else "asyncio"
            await measure(a, e, pyi2p_hop, child.pid, f"pyi2p ({loop})", count, batch)
            await measure(a, e, b64decode(i2pd_hop.ident_hash), i2pd_hop.pid, "i2pd", count, batch)
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                out = await asyncio.wait_for(child.stdout.read(), 15) if child.stdout else b""
                for text in out.decode().splitlines():
                    if text.startswith("STATS"):
                        print("pyi2p hop transit " + text[6:])
            except TimeoutError:
                child.kill()
            await child.wait()
            await a.stop()
            await e.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--profile", default="", help="cProfile the pyi2p hop, stats to this file")
    parser.add_argument("--hop-child", nargs=6, metavar=("DATADIR", "ADDRESS", "PORT", "NETID", "SEED", "PROFILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hop_child:
        datadir, address, port, netid, seed, profile = args.hop_child
        eventloop.run(hop_child(datadir, address, int(port), int(netid), seed, profile))
        return 0
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        net = Testnet(Path(tmp) / "net", i2pd_count=2, floodfills=1, netns=private_netns_name("bench"),
                      first_port=26500, die_with_parent=True)
        try:
            net.up(wait=90)
            asyncio.run(run(net, Path(tmp), args.messages, args.batch, os.path.abspath(args.profile) if args.profile else ""))
        finally:
            net.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
