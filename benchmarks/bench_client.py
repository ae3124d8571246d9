"""Client API cost per message: local delivery, and the full garlic path between two routers' sessions
(gzip framing, Data clove, ECIES ratchet, I2NP encode/decode) over an in-memory stand-in for tunnels.

    python benchmarks/bench_client.py
"""
from __future__ import annotations

import asyncio
import os
import time

from core.client import ClientAPI
from core.datagram import PROTO_DATAGRAM, PROTO_RAW
from core.i2np import decode_standard, encode_standard

BATCH = 200


class DirectNetwork:
    """Leases whose 'tunnels' hand the message straight to the owning session."""

    routes: dict = {}
    leasesets: dict = {}

    def __init__(self):
        self.gateway = os.urandom(32)

    def open_pools(self, name, options, on_message):
        tunnel_id = int.from_bytes(os.urandom(4), "big") or 1
        self.routes[(self.gateway, tunnel_id)] = on_message
        return [(self.gateway, tunnel_id, time.time() + 600)]

    def close_pools(self, handle):
        pass

    def leases(self, handle):
        return handle

    def send(self, handle, message, gateway, tunnel_id):
        self.routes[(gateway, tunnel_id)](decode_standard(encode_standard(message)))
        return True

    async def lookup_leaseset(self, handle, dest_hash, *, fresh=False):
        return self.leasesets.get(dest_hash)

    async def publish_leaseset(self, handle, leaseset):
        self.leasesets[leaseset.hash] = leaseset
        return 1


async def measure(a, b, count: int, size: int, protocol: int, compressible: bool) -> tuple[float, float]:
    payload = (b"x" * size) if compressible else os.urandom(size)
    a.send_datagram(b.hash, payload, protocol=protocol)     # LeaseSet known, ratchet session established
    await b.receive_datagram()
    b.send_datagram(a.hash, b"ack", protocol=PROTO_RAW)
    await a.receive_datagram()
    started = time.perf_counter()
    for _ in range(count // BATCH):   # batches smaller than the bounded receive queue
        for _ in range(BATCH):
            a.send_datagram(b.hash, payload, protocol=protocol)
        for _ in range(BATCH):
            await b.receive_datagram()
    elapsed = time.perf_counter() - started
    return count / elapsed, count * size / elapsed / 1e6


async def main() -> None:
    local = ClientAPI()
    la, lb = await local.open_session(name="a"), await local.open_session(name="b")
    apis = [ClientAPI(DirectNetwork()), ClientAPI(DirectNetwork())]
    ra, rb = await apis[0].open_session(name="a"), await apis[1].open_session(name="b")
    await ra.wait_published(5)
    await rb.wait_published(5)
    print("path          protocol  size    payload        msgs/s     MB/s")
    for label, a, b in (("local", la, lb), ("garlic", ra, rb)):
        for protocol in (PROTO_RAW, PROTO_DATAGRAM):
            for size, compressible in ((64, False), (1024, False), (16384, False), (16384, True)):
                rate, mbps = await measure(a, b, 400 if size > 1024 else 2000, size, protocol, compressible)
                kind = "text" if compressible else "random"
                print(f"{label:<13} {protocol:>8} {size:>5}  {kind:<10} {rate:>10.0f} {mbps:>8.1f}")
    started = time.perf_counter()
    handshakes = 50
    for _ in range(handshakes):
        fresh = await apis[0].open_session()
        fresh.send_datagram(rb.hash, b"hello", protocol=PROTO_RAW)
        await rb.receive_datagram()
        await fresh.close()
    per = (time.perf_counter() - started) / handshakes
    print(f"new session (open destination, NS with LeaseSet, decrypt): {per * 1000:.2f} ms each")
    for api in (local, *apis):
        await api.close()


if __name__ == "__main__":
    asyncio.run(main())
