"""Prints netDb figures: closest-N over a large netDb, floodfill answers, and (with --testnet, as root with
i2pd installed) the time a fresh pyi2p router seeded with one floodfill needs to know every router of a
private testnet of 5 i2pd + 3 pyi2p routers.

Run: python benchmarks/bench_netdb.py [--testnet] [--runs 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import FakeClock  # noqa: E402
from core.data.encoding import b64decode  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402
from core.data.routerinfo import RouterInfo  # noqa: E402
from core.i2np.messages import DatabaseLookup, LookupType  # noqa: E402
from core.netdb.floodfill import answer_lookup  # noqa: E402
from core.netdb.kademlia import closest, routing_key  # noqa: E402
from core.netdb.store import NetDb  # noqa: E402

NOW = 1_790_000_000.0


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def offline_figures(routers: int = 5000) -> None:
    clock = FakeClock(NOW)
    db = NetDb(None, 42, clock, max_routers=routers + 1)
    template = []
    for i in range(50):
        keys = PrivateKeys.generate()
        template.append(RouterInfo.create(keys.router_identity, keys.signing_private_key, int(NOW * 1000), [],
                                          {"caps": "Xf" if i % 10 == 0 else "X", "netId": "42"}))
    for i in range(routers):   # the same few RouterInfos under many keys: answer_lookup only reads hashes and caps
        db.router_infos[os.urandom(32)] = template[i % len(template)]
    hashes = list(db.router_infos)
    key = os.urandom(32)
    rk = routing_key(key, NOW)
    print(f"closest(3) of {routers} hashes: {per_call_us(lambda: closest(rk, hashes, 3), 20):9.0f} µs")
    lookup = DatabaseLookup(key, os.urandom(32), LookupType.ROUTER_INFO)
    explore = DatabaseLookup(key, os.urandom(32), LookupType.EXPLORATION, None, tuple(hashes[:500]))
    own = os.urandom(32)
    print(f"floodfill answer, unknown key ({routers} routers): "
          f"{per_call_us(lambda: answer_lookup(db, lookup, own_hash=own, routing_key=rk, floodfill=True), 20):9.0f} µs")
    print(f"exploration answer, 500 excluded ({routers} routers): "
          f"{per_call_us(lambda: answer_lookup(db, explore, own_hash=own, routing_key=rk, floodfill=True), 20):9.0f} µs")


async def time_to_know_all(net, datadir: Path, address: str, port: int) -> tuple[float, int]:
    from core.config import load_config
    from core.router import Router
    seed = datadir.parent / f"seed-{datadir.name}"
    seed.mkdir()
    r1 = net.router("r1")
    shutil.copy(r1.router_info_path, seed / f"routerInfo-{r1.ident_hash}.dat")
    everyone = {b64decode(r.ident_hash) for r in net.routers}
    with net.in_netns():
        router = Router(load_config(datadir, {"netid": net.netid, "host": address, "port": port,
                                              "reseed_file": str(seed), "control_port": 0}))
        started = time.monotonic()
        await router.start()
        try:
            async with asyncio.timeout(120):
                while not everyone <= set(router.netdb.router_infos):
                    await asyncio.sleep(0.05)
            return time.monotonic() - started, router.netdb_service.stats["explorations"]
        finally:
            await router.stop()


def testnet_figures(runs: int) -> None:
    from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason
    reason = unavailable_reason()
    if reason:
        print(f"testnet figures skipped: {reason}")
        return
    base = Path(tempfile.mkdtemp(prefix="bench-netdb-"))
    net = Testnet(base, i2pd_count=5, pyi2p_count=3, netns=private_netns_name("b"), first_port=22000,
                  address_prefix="198.18.2", die_with_parent=True)
    try:
        net.up(wait=120)
        print(f"testnet of 5 i2pd + 3 pyi2p routers ready after {net.ready_after_s} s")
        for i in range(runs):
            address = net.add_pyi2p_address()
            seconds, explorations = asyncio.run(time_to_know_all(net, base / f"bench{i}", address, 22500 + i))
            print(f"run {i + 1}: knew all {len(net.routers)} routers {seconds:.2f} s after start "
                  f"(seeded with r1 only; {explorations} explorations)")
    finally:
        net.down()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testnet", action="store_true", help="also time discovery on a private testnet")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    offline_figures()
    if args.testnet:
        testnet_figures(args.runs)


if __name__ == "__main__":
    main()
