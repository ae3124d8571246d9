#!/usr/bin/env python3
"""i2pd's streams through one pyi2p hop vs through one i2pd hop (needs root and i2pd).

A private testnet of 5 i2pd routers (the i2pd given by --i2pd) and one in-process pyi2p router. Two i2pd SAM
STREAM destinations, on r3 and r4, with 1-hop tunnels (one each way) pinned by explicitPeers to one router: that
router is the outbound endpoint and inbound gateway of every tunnel the stream uses. One pair is pinned to the
i2pd router r5, one to the pyi2p router; --reps transfers of --mb MB A -> B each, alternating, so load on the
machine affects both alike. Prints each speed, the medians and their ratio (pyi2p / i2pd).

    python benchmarks/bench_hop_fairness.py [--i2pd /usr/sbin/i2pd] [--reps 6] [--mb 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_transit_i2pd import cpu_seconds  # noqa: E402
from pyi2p.testnet import Testnet, i2pd_version, private_netns_name, unavailable_reason  # noqa: E402
from tests.interop import test_hop_fairness as fairness  # noqa: E402


class CpuMeter:
    """Share of a core each process used: the SAM routers r3 and r4, the i2pd hop and this process (the pyi2p
    hop and the SAM clients); on 2 shared cores a busy hop takes CPU from the routers at the stream's ends."""

    def __init__(self, net: Testnet):
        self.pids = {name: net.router(name).pid for name in ("r3", "r4", fairness.I2PD_HOP)} | {"pyi2p": os.getpid()}
        self.start: dict[str, float] = {}

    def __call__(self, seconds: float | None) -> dict[str, float]:
        now = {name: sum(cpu_seconds(pid)) for name, pid in self.pids.items()}   # user + system
        if seconds is None:
            self.start = now
            return {}
        return {name: (now[name] - self.start[name]) / seconds for name in now}


async def run(net: Testnet, workdir: Path, reps: int) -> None:
    with net.in_netns():
        router = fairness.hop_router(net, workdir / "hop", 24500)
        try:
            await router.start()
            await fairness.introduce(router, net)
            i2pd, pyi2p = await fairness.hop_speeds(net, router.hash, reps, lambda line: print(line, flush=True),
                                                    CpuMeter(net))
        finally:
            await router.stop()
    transit = router.tunnel_service.transit.stats
    print(f"\n{i2pd_version(net.i2pd).splitlines()[0]}: {fairness.TRANSFER / 1e6:g} MB i2pd -> i2pd, "
          f"1-hop tunnels pinned to the hop, {reps} alternating runs each")
    for name, speeds in (("i2pd hop", i2pd), ("pyi2p hop", pyi2p)):
        print(f"{name:>10}: median {statistics.median(speeds):.2f} MB/s  ({', '.join(f'{s:.2f}' for s in speeds)})")
    print(f"     ratio: {fairness.ratio(i2pd, pyi2p):.2f} (pyi2p / i2pd, medians)")
    print(f"pyi2p hop transit: {transit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--i2pd", default=None, help="the i2pd executable (default: Debian's, or $PYI2P_I2PD)")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--mb", type=float, default=3.0)
    parser.add_argument("--keep", action="store_true", help="keep the testnet's directory (i2pd logs) and print it")
    parser.add_argument("--loglevel", default="info", help="i2pd's log level (debug: every packet's RTT, resends)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    fairness.TRANSFER = int(args.mb * 1e6)
    tmp = tempfile.mkdtemp(prefix="bench-hop-")
    net = Testnet(Path(tmp) / "net", netns=private_netns_name("bench"), first_port=26700, die_with_parent=True,
                  i2pd=args.i2pd, i2pd_loglevel=args.loglevel)
    try:
        net.up(wait=120)
        asyncio.run(run(net, Path(tmp), args.reps))
    finally:
        net.down()
        if args.keep:
            print(f"testnet files: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
