#!/usr/bin/env python3
"""NTCP2 data-phase transfer pyi2p -> i2pd: MB/s and CPU on both sides (needs root and i2pd).

Starts a private 2-router i2pd testnet in its own network namespace, connects a pyi2p router to r1,
sends N MB of I2NP Data messages (which i2pd decrypts, parses and drops), then a DatabaseLookup whose
direct reply marks the end: i2pd answers it only after reading everything before it.

    python benchmarks/bench_ntcp2_i2pd.py [--mb 20] [--size 16384]
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

from core.config import load_config  # noqa: E402
from core.data.encoding import b64decode  # noqa: E402
from core.i2np.header import I2NPMessage  # noqa: E402
from core.i2np.messages import Data, DatabaseLookup, DatabaseStore, LookupType  # noqa: E402
from core.i2np.registry import parse_payload  # noqa: E402
from core.router import Router  # noqa: E402
from core.stats import cpu_times  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


async def transfer(net: Testnet, workdir: Path, megabytes: float, size: int) -> None:
    r1 = net.router("r1")
    r1_hash = b64decode(r1.ident_hash)
    address = net.add_pyi2p_address()
    with net.in_netns():
        config = load_config(workdir / "p", {"netid": net.netid, "host": address, "port": 25000,
                                             "reseed_file": str(net.seed_file), "control_port": 0})
        router = Router(config)
        done = asyncio.Event()
        lookup_sent = False
        handle = router.handle_message

        def watch(peer, message):
            # i2pd also sends its RouterInfo when the session opens: only a store after our lookup counts
            payload = parse_payload(message)
            if lookup_sent and peer == r1_hash and isinstance(payload, DatabaseStore) and payload.key == r1_hash:
                done.set()
            handle(peer, message)
        router.handle_message = watch
        await router.start()
        try:
            conn = await router.transports.connect(r1_hash)
            assert conn is not None, "could not connect to r1"
            body = Data(os.urandom(size - 4))
            count = max(1, int(megabytes * 1e6 / size))
            expiration = int(time.time() * 1000) + 60_000
            messages = [I2NPMessage.build(body, i + 1, expiration) for i in range(count)]
            lookup = router.new_message(DatabaseLookup(r1_hash, router.hash, LookupType.ROUTER_INFO))
            i2pd_cpu0, our_cpu0, t0 = cpu_seconds(r1.pid), time.process_time(), time.perf_counter()
            for start in range(0, count, 16):
                await conn.send(messages[start:start + 16])
            sent_at = time.perf_counter()
            await asyncio.sleep(0)     # the session-opening store, if still queued, is handled before the flag
            lookup_sent = True
            await conn.send(lookup)
            await asyncio.wait_for(done.wait(), 120)
            elapsed = time.perf_counter() - t0
            total = count * size
            print(f"pyi2p -> i2pd over NTCP2: {count} I2NP messages of {size} bytes, {total / 1e6:.1f} MB")
            print(f"  written in {sent_at - t0:.2f} s; i2pd had read all after {elapsed:.2f} s")
            print(f"  throughput: {total / 1e6 / elapsed:.1f} MB/s")
            print(f"  CPU: pyi2p {time.process_time() - our_cpu0:.2f} s, i2pd {cpu_seconds(r1.pid) - i2pd_cpu0:.2f} s")
        finally:
            await router.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=16384, help="I2NP message size in bytes")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        net = Testnet(Path(tmp) / "net", i2pd_count=2, floodfills=2, netns=private_netns_name("bench"),
                      first_port=26000, die_with_parent=True)
        try:
            net.up(wait=90)
            asyncio.run(transfer(net, Path(tmp), args.mb, args.size))
        finally:
            net.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
