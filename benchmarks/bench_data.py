"""Prints µs per RouterInfo parse / serialize / verify (i2pd-made fixture) and per Destination parse.

Run: python benchmarks/bench_data.py
"""
from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.identity import Destination  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402
from core.data.routerinfo import RouterInfo  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "fixtures" / "i2pd-router.info"


def per_call_us(fn, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    data = FIXTURE.read_bytes()
    ri = RouterInfo.parse(data)
    dest_bytes = PrivateKeys.generate(rng=os.urandom).destination.to_bytes()
    dest = Destination.parse(dest_bytes)
    figures = [
        ("RouterInfo.parse", per_call_us(lambda: RouterInfo.parse(data), 2000)),
        ("RouterInfo.to_bytes (parsed object)", per_call_us(ri.to_bytes, 20000)),
        ("RouterInfo.to_bytes (fresh object)", per_call_us(
            lambda: RouterInfo(ri.identity, ri.published, ri.addresses, ri.peer_hashes, ri.options,
                               ri.signature).to_bytes(), 5000)),
        ("RouterInfo.verify", per_call_us(ri.verify, 2000)),
        ("Destination.parse", per_call_us(lambda: Destination.parse(dest_bytes), 5000)),
        ("Destination.hash (fresh object)", per_call_us(lambda: Destination.parse(dest_bytes).hash, 5000)),
        ("Destination.b32_address", per_call_us(lambda: dest.b32_address, 20000)),
    ]
    print(f"fixture RouterInfo: {len(data)} bytes, {len(ri.addresses)} addresses; Destination: {len(dest_bytes)} bytes")
    for name, us in figures:
        print(f"{name:40s} {us:9.2f} µs")


if __name__ == "__main__":
    main()
