"""Prints bulk I2NP throughput from pyi2p to one i2pd router over SSU2 and over NTCP2 in the same run, with
our CPU seconds per MB. Needs a testnet with a dual-stack i2pd floodfill (`pyi2p testnet up`).

Each run sends MB of 1 KB I2NP Data messages (i2pd drops them after reading), then a DatabaseLookup
for a RouterInfo it holds: the time is until its DatabaseStore answer arrives, so every byte was
read by i2pd in between.

Run: python benchmarks/bench_ssu2_i2pd.py --base /tmp/pyi2p-testnet [--router r1] [--mb 20]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import load_config  # noqa: E402
from core.data.encoding import b64decode  # noqa: E402
from core.i2np.header import I2NPMessage  # noqa: E402
from core.i2np.messages import DatabaseLookup, DatabaseStore, LookupType  # noqa: E402
from core.i2np.registry import parse_payload  # noqa: E402
from core.router import Router  # noqa: E402
from core.transport.manager import _dialable_ntcp2  # noqa: E402
from core.transport.ssu2.driver import dialable_ssu2  # noqa: E402
from pyi2p.testnet import Testnet  # noqa: E402

DATA = 20          # i2np.rst "Data": read and dropped by a router that is not its destination


async def run(net: Testnet, name: str, megabytes: int, styles: tuple[str, ...]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ssu2-"))
    try:
        address = net.extra_addresses[0] if net.extra_addresses else net.add_pyi2p_address()
        router = Router(load_config(tmp, {"netid": net.netid, "host": address,
                                          # a fresh port each run: i2pd still dials the routers of earlier runs
                                          # at their address, and takes our handshake from the same address
                                          # and port for an answer to its own ("Unexpected message type")
                                          "port": 24190 + int.from_bytes(os.urandom(2), "big") % 800,
                                          "reseed_file": str(net.seed_file), "control_port": 0, "sam_port": 0,
                                          "ssu2_enabled": True}))
        answers: asyncio.Queue = asyncio.Queue()
        on_message = router.handle_message

        def record(peer, message):
            payload = parse_payload(message)
            if isinstance(payload, DatabaseStore):
                answers.put_nowait((peer, payload.key))
            on_message(peer, message)
        router.handle_message = record
        await router.start()
        peer = b64decode(net.router(name).ident_hash)
        ri = router.netdb.get_router_info(peer)
        body = os.urandom(1024)
        expires = int(time.time() * 1000) + 60_000
        marker = peer
        for style in styles:
            address = dialable_ssu2(ri) if style == "SSU2" else _dialable_ntcp2(ri)
            for _ in range(10):
                try:
                    conn = await router.transports._dial_one(style, address, peer)
                    break
                except ConnectionError:      # the router's own dial to it is running
                    await asyncio.sleep(1)
            router.transports._register(conn)      # its blocks reach the router; it is the session used now
            t0, c0 = time.perf_counter(), time.process_time()
            sent = 0
            while sent < megabytes * 1_000_000:
                batch = [I2NPMessage(DATA, (sent // 1024 + k) & 0xFFFFFFFF, expires, body) for k in range(16)]
                if conn.send_nowait(batch):
                    sent += 16 * 1024
                await asyncio.sleep(0 if style == "NTCP2" or conn.data_phase.queued < 512 else 0.002)
                if os.environ.get("BENCH_DEBUG") and style == "SSU2" and sent % (1 << 20) < 16 * 1024:
                    d = conn.data_phase
                    print(sent, d.queued, d.in_flight, d.window, d.rto, d.retransmissions, d.packets_received,
                          conn.closed, flush=True)
            while not answers.empty():
                answers.get_nowait()
            lookup = router.new_message(DatabaseLookup(marker, router.hash, LookupType.ROUTER_INFO))
            while not conn.send_nowait([lookup]):      # a full buffer or queue refuses it: wait for room
                await asyncio.sleep(0.01)
            while await asyncio.wait_for(answers.get(), 60) != (peer, marker):
                pass
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            extra = ""
            if style == "SSU2":
                d = conn.data_phase
                extra = f"  retransmissions {d.retransmissions}  srtt {(d.srtt or 0) * 1000:.1f} ms  window {d.window}"
            print(f"{style:5s} to i2pd {name}: {sent / 1e6 / wall:6.2f} MB/s  wall {wall:6.2f} s  "
                  f"cpu {cpu / (sent / 1e6):.3f} s/MB{extra}")
            await conn.close()
        await router.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="/tmp/pyi2p-testnet")
    parser.add_argument("--router", default="r1", help="a dual-stack (NTCP2 and SSU2) i2pd router")
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    net = Testnet.load(args.base)
    if net is None:
        sys.exit(f"no testnet in {args.base}")
    with net.in_netns():
        for style in ("SSU2", "NTCP2"):   # a fresh router each: i2pd answered only one such lookup per router
            asyncio.run(run(net, args.router, args.mb, (style,)))


if __name__ == "__main__":
    main()
