"""Runs a whole pyi2p network in one process under a simulated clock (tests/sim) and prints, per scenario,
simulated time, wall time (and wall seconds per simulated minute), messages delivered, peak RSS, the
scenario's figure, and at the end the largest per-router state against its limit.

Run: python benchmarks/bench_sim_network.py [--routers 1000] [--floodfills 0.1] [--step 2]
     [--bootstrap-limit 1800] [--lookups 100] [--destinations 100] [--tracemalloc]
"""
from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sim import scenarios  # noqa: E402
from tests.sim.network import SimNetwork  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    if args.tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    net = SimNetwork(args.routers, floodfill_share=args.floodfills, seed=args.seed)
    print(f"{args.routers} routers ({len(net.floodfills())} floodfills) made in "
          f"{time.perf_counter() - started:.1f} s, RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
          flush=True)
    await scenarios.run_all(net, bootstrap_limit_s=args.bootstrap_limit, lookups=args.lookups,
                            destinations=args.destinations, step=args.step,
                            report=lambda line: print(line, flush=True))
    print("state (largest per router / limit):",
          ", ".join(f"{name} {peak}/{limit}" for name, (peak, limit) in scenarios.bounds(net).items()))
    over = [name for name, (peak, limit) in scenarios.bounds(net).items() if peak > limit]
    print("over their limits:", ", ".join(over) or "nothing")
    print(f"total: simulated {net.clock.monotonic() - 1000.0:.0f} s, wall {time.perf_counter() - started:.0f} s, "
          f"{net.delivered} messages delivered, {net.lost} lost to down routers, "
          f"errors {sum(r.errors for r in net.routers)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=1000)
    parser.add_argument("--floodfills", type=float, default=0.1, help="share of routers that are floodfills")
    parser.add_argument("--step", type=float, default=2.0, help="simulated seconds per step")
    parser.add_argument("--bootstrap-limit", type=float, default=1800.0, help="simulated seconds at most")
    parser.add_argument("--lookups", type=int, default=100)
    parser.add_argument("--destinations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    asyncio.run(main(parser.parse_args()))
