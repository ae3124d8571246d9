"""Prints µs per I2NP operation: TunnelData parse/serialize, standard and short header encode/decode,
DatabaseStore(RouterInfo) decode with decompression (i2pd-made RouterInfo fixture, else a synthetic 1 KB one).

Run: python benchmarks/bench_i2np.py
"""
from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.i2np import (DatabaseStore, I2NPMessage, TunnelData, TunnelGateway, VariableTunnelBuild,  # noqa: E402
                       decode_short, decode_standard, encode_short, encode_standard, parse_message)

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "data" / "fixtures" / "i2pd-router.info"


def per_call_us(fn, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def router_info_bytes() -> tuple[bytes, str]:
    if FIXTURE.exists():
        return FIXTURE.read_bytes(), "i2pd fixture"
    # synthetic: random keys plus repetitive text, compressing roughly like a real RouterInfo
    return os.urandom(400) + b"caps=XfR;netId=2;router.version=0.9.66;" * 16, "synthetic"


def main() -> None:
    tunnel_data = TunnelData(0x12345678, os.urandom(1024))
    tunnel_data_wire = tunnel_data.to_bytes()
    envelope = I2NPMessage.build(tunnel_data, 0xCAFE, 1_750_000_000_000)
    standard_wire = encode_standard(envelope)
    short_wire = encode_short(envelope)
    gateway_wire = TunnelGateway(7, envelope).to_bytes()
    build_wire = VariableTunnelBuild(tuple(os.urandom(528) for _ in range(4))).to_bytes()

    ri, ri_source = router_info_bytes()
    store_wire = DatabaseStore.for_router_info(bytes(32), ri).to_bytes()

    figures = [
        ("TunnelData.parse", per_call_us(lambda: TunnelData.parse(tunnel_data_wire), 50000)),
        ("TunnelData.to_bytes", per_call_us(tunnel_data.to_bytes, 100000)),
        ("TunnelData construct + to_bytes", per_call_us(
            lambda: TunnelData(0x12345678, tunnel_data.data).to_bytes(), 50000)),
        ("encode_standard (1028-byte body)", per_call_us(lambda: encode_standard(envelope), 50000)),
        ("decode_standard (1028-byte body)", per_call_us(lambda: decode_standard(standard_wire), 50000)),
        ("encode_short (1028-byte body)", per_call_us(lambda: encode_short(envelope), 50000)),
        ("decode_short (1028-byte body)", per_call_us(lambda: decode_short(short_wire), 50000)),
        ("TunnelGateway.parse (TunnelData inside)", per_call_us(lambda: parse_message(19, gateway_wire), 20000)),
        ("VariableTunnelBuild.parse (4 records)", per_call_us(lambda: parse_message(23, build_wire), 20000)),
        (f"DatabaseStore(RouterInfo {len(ri)} B, {ri_source}) parse + decompress", per_call_us(
            lambda: DatabaseStore.parse(store_wire).router_info_bytes(), 5000)),
        (f"DatabaseStore.for_router_info ({len(ri)} B) compress + to_bytes", per_call_us(
            lambda: DatabaseStore.for_router_info(bytes(32), ri).to_bytes(), 2000)),
    ]
    width = max(len(name) for name, _ in figures)
    for name, us in figures:
        print(f"{name:<{width}}  {us:8.2f} µs")


if __name__ == "__main__":
    main()
