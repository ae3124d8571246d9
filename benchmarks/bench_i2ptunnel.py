#!/usr/bin/env python3
"""I2PTunnel through a client + server tunnel pair on a private testnet (needs root and i2pd):
pyi2p -> pyi2p (two in-process routers, each with a TunnelsService) against i2pd -> i2pd (r3's client
tunnel to r4's server tunnel), the same service behind both, in the same testnet in the same run.

Per pair: MB/s for --mb megabytes (first byte written on the client tunnel's local port until the
service confirms the last), the median time from connect() on the local port to the first byte of
the answer (a fresh stream each time), and --conns concurrent connections (each echoes 16 KB):
how many completed, in how long, and the RSS of the routers.

    python benchmarks/bench_i2ptunnel.py [--mb 20] [--hops 2] [--firsts 5] [--conns 100]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.network import InProcessNetwork  # noqa: E402
from apps.tunnels import TunnelsService  # noqa: E402
from core.config import load_config  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402
from core.router import Router  # noqa: E402
from core.stats import rss_mb  # noqa: E402
from core.tunnel.service import TunnelSettings  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402
from benchmarks.bench_streaming_testnet import send_bulk  # noqa: E402

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
CHUNK = 64 * 1024
ECHO = 16 * 1024


async def service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """'T<size>\\n' + size bytes -> 'k'; 'F' -> '!' at once; 'E' -> echo until EOF."""
    try:
        kind = await reader.readexactly(1)
        if kind == b"T":
            size = int((await reader.readline()).decode())
            while size > 0:
                data = await reader.read(min(CHUNK, size))
                if not data:
                    return
                size -= len(data)
            writer.write(b"k")
        elif kind == b"F":
            writer.write(b"!")
        else:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
        pass                             # cancelled: the run is over
    finally:
        writer.close()


async def bulk(port: int, mb: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await send_bulk(reader, writer, int(mb * 1e6), timeout=600)
    finally:
        writer.close()


async def first_byte(port: int) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"F")
    try:
        assert await asyncio.wait_for(reader.readexactly(1), 60) == b"!"
    finally:
        writer.close()
    return time.monotonic() - started


async def echo(port: int) -> bool:
    payload = os.urandom(ECHO)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"E" + payload)      # no half-close: i2pd's tunnels end the stream on a local EOF
        got = await asyncio.wait_for(reader.readexactly(ECHO), 180)
        writer.close()
        return got == payload
    except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        return False


async def reachable(port: int, timeout: float = 180.0) -> float:
    """Until a first connection through the pair answers (LeaseSet lookups, i2pd's publication); seconds."""
    started = time.monotonic()
    while True:
        try:
            await first_byte(port)
            return time.monotonic() - started
        except (OSError, ConnectionError, asyncio.IncompleteReadError, AssertionError, TimeoutError):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"nothing answered through the pair in {timeout:.0f} s") from None
            await asyncio.sleep(2)


async def measure(port: int, args: argparse.Namespace, rss) -> dict[str, str]:
    ready = await reachable(port)
    firsts = [await first_byte(port) for _ in range(args.firsts)]
    rate = await bulk(port, args.mb)
    before = rss()
    started = time.monotonic()
    done = await asyncio.gather(*(echo(port) for _ in range(args.conns)))
    took = time.monotonic() - started
    return {"reachable s": f"{ready:.1f}", "MB/s": f"{rate:.2f}",
            "first byte ms": f"{statistics.median(firsts) * 1000:.0f}",
            f"{args.conns} conns ok": f"{sum(done)}/{args.conns} in {took:.1f} s",
            "RSS MB before/after": f"{before:.0f}/{rss():.0f}"}


def session_options(hops: int) -> str:
    return (f"inbound.length = {hops}\noutbound.length = {hops}\ninbound.quantity = 2\noutbound.quantity = 2\n")


async def pyi2p_pair(tmp: Path, testnet: Testnet, target: int, args: argparse.Namespace) -> dict[str, str]:
    addresses = [testnet.add_pyi2p_address() for _ in range(2)]
    routers = [Router(load_config(tmp / f"pyi2p{i}", {
        "netid": testnet.netid, "host": address, "port": 24500 + i, "reseed_file": str(testnet.seed_file),
        "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS) for i, address in enumerate(addresses)]
    services: list[TunnelsService] = []
    try:
        for router in routers:
            await router.start()
        server_dir, client_dir = tmp / "server-tunnels", tmp / "client-tunnels"
        server_dir.mkdir()
        client_dir.mkdir()
        (server_dir / "tunnels.conf").write_text(f"[bench]\ntype = server\nhost = 127.0.0.1\nport = {target}\n"
                                                 f"keys = bench.dat\nmaxconns = 512\n{session_options(args.hops)}"
                                                 "i2cp.leaseSetEncType = 4\n")
        server = TunnelsService({}, server_dir, InProcessNetwork(routers[1].client))
        services.append(server)
        await server.start()
        await server.wait_ready(180)
        b32 = PrivateKeys.load(server_dir / "bench.dat").destination.b32_address
        (client_dir / "tunnels.conf").write_text(f"[bench]\ntype = client\nport = 0\ndestination = {b32}\n"
                                                 f"maxconns = 512\n{session_options(args.hops)}")
        client = TunnelsService({}, client_dir, InProcessNetwork(routers[0].client))
        services.append(client)
        await client.start()
        await client.wait_ready(180)
        port = int(client.status()["tunnels"][0]["listening"].rsplit(":", 1)[1])
        result = await measure(port, args, rss_mb)
        tunnels = {s.status()["tunnels"][0]["type"]: s.status()["tunnels"][0] for s in services}
        result["errors"] = f"{tunnels['client']['errors']}/{tunnels['server']['errors']}"
        return result
    finally:
        for s in services:
            await s.stop()
        for router in routers:
            await router.stop()


async def i2pd_pair(testnet: Testnet, target: int, args: argparse.Namespace) -> dict[str, str]:
    r3, r4 = testnet.router("r3"), testnet.router("r4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        # i2pd 2.45.1 sometimes never publishes a fresh LeaseSet (testnet README pitfall 5): then a new server key
        for attempt in range(3):
            key_name = f"bench-server-{attempt}.dat"
            testnet.set_i2pd_tunnels(r4, "bench", f"[bench-server]\ntype = server\nhost = 127.0.0.1\nport = {target}\n"
                                                  f"keys = {key_name}\n{session_options(args.hops)}")
            key_file = Path(r4.datadir) / key_name
            for _ in range(150):
                if key_file.is_file() and key_file.stat().st_size:
                    break
                await asyncio.sleep(0.2)
            b32 = PrivateKeys.load(key_file).destination.b32_address
            testnet.set_i2pd_tunnels(r3, "bench", f"[bench-client]\ntype = client\naddress = 127.0.0.1\nport = {port}\n"
                                                  f"destination = {b32}\nkeys = bench-client.dat\n"
                                                  f"{session_options(args.hops)}")
            try:
                await reachable(port, 75)
                break
            except TimeoutError:
                print(f"i2pd pair: {b32} not reachable, new server keys", flush=True)
        return await measure(port, args, lambda: rss_mb(r3.pid) + rss_mb(r4.pid))
    finally:
        testnet.set_i2pd_tunnels(r3, "bench", None)
        testnet.set_i2pd_tunnels(r4, "bench", None)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-i2ptunnel-") as tmp:
        testnet = Testnet(Path(tmp) / "testnet", netns=private_netns_name("bench"), die_with_parent=True)
        rows: list[tuple[str, dict[str, str]]] = []
        try:
            testnet.up(wait=120)
            with testnet.in_netns():
                target = await asyncio.start_server(service, "127.0.0.1", 0)
                target_port = target.sockets[0].getsockname()[1]
                for name, pair in (("i2pd -> i2pd", lambda: i2pd_pair(testnet, target_port, args)),
                                   ("pyi2p -> pyi2p", lambda: pyi2p_pair(Path(tmp), testnet, target_port, args))):
                    try:
                        rows.append((name, await pair()))
                    except Exception as e:   # one failed pair must not lose the other figures
                        rows.append((name, {"failed": f"{type(e).__name__}: {e}"[:100]}))
                    print(name, rows[-1][1], flush=True)
                target.close()
        finally:
            testnet.down()
        print(f"\n{args.hops}-hop tunnels; {args.mb:g} MB through the pair; first byte = median of {args.firsts} fresh "
              f"connections (connect on the local port to the answer's first byte); RSS: pyi2p = this process (both "
              "routers), i2pd = r3 + r4")
        for name, figures in rows:
            print(f"{name:<15} " + "  ".join(f"{k}: {v}" for k, v in figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--firsts", type=int, default=5)
    parser.add_argument("--conns", type=int, default=100)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"testnet unavailable: {reason}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
