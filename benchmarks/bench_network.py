"""The apps' port, in-process against SAM (our bridge on 127.0.0.1, both over one ClientAPI with local
delivery): stream throughput one way, stream set-up time, raw datagrams delivered and their rate
(bridge and client share one event loop here, which costs SAM datagrams: the bridge reads one UDP
packet per loop turn). The difference is
the cost of the SAM hop (a TCP connection per stream, HELLO, STREAM CONNECT/ACCEPT, two socket copies).

    python benchmarks/bench_network.py
"""
from __future__ import annotations

import asyncio
import statistics
import time

from apps.network import InProcessNetwork, IncomingStream, NetworkError
from apps.network.sam import SamNetwork
from core.client import ClientAPI
from core.sam.bridge import SamBridge, SamConfig
from core.sam.client_backend import ClientBackend

TRANSFER = 20 * 1000 * 1000
CHUNK = 64 * 1024
CONNECTS = 20
DATAGRAMS = 2000


async def serve(stream: IncomingStream) -> None:
    """'P': answers '!' (set-up time); 'S': counts TRANSFER bytes, then answers with the count.
    One handler on port 0, as SAM 3.1 (and i2pd) deliver every stream to port 0's handler."""
    kind = await stream.reader.readexactly(1)
    if kind == b"P":
        stream.writer.write(b"!")
    else:
        total = 0
        while total < TRANSFER and (data := await stream.reader.read(CHUNK)):
            total += len(data)
        stream.writer.write(b"%d" % total)
    await stream.writer.drain()
    stream.writer.close()


async def measure(network, label: str) -> None:
    server = await network.open_session(name="server")
    client = await network.open_session(name="client")
    await server.serve(serve)

    reader, writer = await client.connect(server.destination, 1, timeout=10)
    writer.write(b"S")
    block = b"x" * CHUNK
    started = time.perf_counter()
    for _ in range(TRANSFER // CHUNK + 1):
        writer.write(block)
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(100), 60)
    seconds = time.perf_counter() - started
    writer.close()
    assert int(answer) >= TRANSFER, answer

    times = []
    for _ in range(CONNECTS):
        t0 = time.perf_counter()
        r, w = await client.connect(server.destination, 2, timeout=10)
        w.write(b"P")
        assert await asyncio.wait_for(r.read(1), 10) == b"!"
        times.append(time.perf_counter() - t0)
        w.close()

    got = 0
    last = 0.0
    done = asyncio.Event()

    def count(_datagram) -> None:
        nonlocal got, last
        got += 1
        last = time.perf_counter()
        if got >= DATAGRAMS:
            done.set()

    server.on_datagram(count)
    t0 = time.perf_counter()
    figures = "raw datagrams: none over this session"
    try:
        for i in range(DATAGRAMS):
            client.send_datagram(server.destination, b"d" * 200, repliable=False)
            if i % 10 == 9:
                await asyncio.sleep(0.001)      # paced: bridge and client share one event loop here
        try:
            await asyncio.wait_for(done.wait(), 10)
        except asyncio.TimeoutError:
            pass
        elapsed = last - t0
        figures = f"raw datagrams {got}/{DATAGRAMS} in {elapsed:.2f} s ({got / elapsed:.0f}/s)"
    except NetworkError:
        pass
    print(f"{label:11} stream {TRANSFER / seconds / 1e6:6.1f} MB/s   connect+round trip median "
          f"{statistics.median(times) * 1000:5.2f} ms   {figures}")
    await network.close()


async def main() -> None:
    api = ClientAPI()
    await measure(InProcessNetwork(api), "in-process")
    async with SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0)) as bridge:
        await measure(SamNetwork("127.0.0.1", bridge.port, udp_port=bridge.udp_address[1]), "SAM 3.3")
        await measure(SamNetwork("127.0.0.1", bridge.port, udp_port=bridge.udp_address[1], max_version="3.1",
                                 datagrams=False), "SAM 3.1")
    await api.close()


if __name__ == "__main__":
    asyncio.run(main())
