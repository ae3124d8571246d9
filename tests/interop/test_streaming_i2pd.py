"""Streams both ways between a pyi2p destination (ClientAPI + StreamSession) and an i2pd SAM STREAM destination,
over 2-hop tunnels of the private testnet: 10 MB each way, compared by SHA-256."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from core.client import open_stream_session
from core.config import load_config
from core.data.identity import Destination
from core.router import Router
from core.tunnel.service import TunnelSettings
from tests.client.routers import ClientRouter, two_hop_leases, wait_for

pytestmark = pytest.mark.interop

OPTIONS = {"inbound.length": "2", "outbound.length": "2", "inbound.quantity": "2", "outbound.quantity": "2"}
SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
TRANSFER = 10 * 1000 * 1000
CHUNK = 64 * 1024


def _fields(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


class SamStreams:
    """A SAM v3.1 STREAM session on i2pd: the control socket holds the destination, one socket per stream."""

    def __init__(self, port: int, nickname: str, options: dict[str, str] = OPTIONS):
        # unique: a re-run test meets the earlier attempt's session, still alive in i2pd (DUPLICATED_ID)
        self.port, self.nickname, self.options = port, f"{nickname}-{os.urandom(3).hex()}", options
        self.control: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.destination: Destination | None = None

    async def _hello(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        # i2pd 2.45.1 speaks only 3.0 and 3.1 (testnet README pitfall 7)
        reply = await self._command(reader, writer, "HELLO VERSION MIN=3.0 MAX=3.1")
        assert "RESULT=OK" in reply, reply
        return reader, writer

    @staticmethod
    async def _command(reader, writer, line: str, timeout: float = 10) -> str:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), timeout)).decode()

    async def create(self) -> SamStreams:
        self.control = await self._hello()
        options = " ".join(f"{k}={v}" for k, v in self.options.items())
        # i2pd answers when the destination is ready, re-checking every 20 s (pitfall 6)
        reply = await self._command(*self.control, f"SESSION CREATE STYLE=STREAM ID={self.nickname} "
                                    f"DESTINATION=TRANSIENT SIGNATURE_TYPE=7 i2cp.leaseSetEncType=4 {options}",
                                    timeout=90)
        assert "RESULT=OK" in reply, reply
        reply = await self._command(*self.control, "NAMING LOOKUP NAME=ME")
        self.destination = Destination.from_b64(_fields(reply)["VALUE"])
        return self

    async def connect(self, to: Destination, timeout: float = 30) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self._hello()
        reply = await self._command(reader, writer, f"STREAM CONNECT ID={self.nickname} DESTINATION={to.b64} "
                                    "SILENT=false", timeout=timeout)
        if "RESULT=OK" not in reply:
            writer.close()
            raise ConnectionError(reply.strip())
        return reader, writer

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Future]:
        """STREAM ACCEPT; the returned future gives the peer's destination when a stream arrives."""
        reader, writer = await self._hello()
        reply = await self._command(reader, writer, f"STREAM ACCEPT ID={self.nickname} SILENT=false")
        assert "RESULT=OK" in reply, reply

        async def peer() -> Destination:
            words = (await reader.readline()).decode().split()
            if not words:
                raise ConnectionError("SAM closed the STREAM ACCEPT socket")
            return Destination.from_b64(words[0])   # 3.2+ peers append FROM_PORT/TO_PORT
        return reader, writer, asyncio.ensure_future(peer())

    def close(self) -> None:
        if self.control is not None:
            self.control[1].close()


async def _send_and_hash(writer, size: int, seed: bytes) -> str:
    """Write `size` pseudo-random bytes (SHA-256 counter stream) and return their SHA-256."""
    digest = hashlib.sha256()
    sent, counter = 0, 0
    while sent < size:
        block = b"".join(hashlib.sha256(seed + (counter + i).to_bytes(8, "big")).digest() for i in range(CHUNK // 32))
        counter += CHUNK // 32
        block = block[:size - sent]
        writer.write(block)
        digest.update(block)
        sent += len(block)
        await writer.drain()
    return digest.hexdigest()


async def _receive_and_hash(reader, size: int) -> str:
    digest, got = hashlib.sha256(), 0
    while got < size:
        data = await reader.read(min(CHUNK, size - got))
        if not data:
            raise AssertionError(f"stream ended after {got} of {size} bytes")
        digest.update(data)
        got += len(data)
    return digest.hexdigest()


async def _transfer(send_writer, receive_reader, seed: bytes, timeout: float) -> tuple[str, str, float]:
    started = time.monotonic()
    sent, received = await asyncio.wait_for(asyncio.gather(_send_and_hash(send_writer, TRANSFER, seed),
                                                           _receive_and_hash(receive_reader, TRANSFER)), timeout)
    return sent, received, time.monotonic() - started


async def test_streams_both_ways_with_i2pd(testnet, tmp_path):
    address = testnet.add_pyi2p_address()
    with testnet.in_netns():
        router = Router(load_config(tmp_path / "streamer", {"netid": testnet.netid, "host": address, "port": 24300,
                                                            "reseed_file": str(testnet.seed_file), "control_port": 0,
                                                            "sam_port": 0}),
                        tunnel_settings=SETTINGS)
        node = ClientRouter(router)
        sam = SamStreams(testnet.sam_port("r3"), "streams")
        sam_task = None
        streams = None
        try:
            await router.start()
            sam_task = asyncio.create_task(sam.create())
            session = await node.api.open_session(options={**OPTIONS, "i2cp.leaseSetEncType": "4"}, name="streams")
            await asyncio.wait_for(session.wait_published(), 90)
            await wait_for(lambda: two_hop_leases(session), 90, interval=0.2)
            streams = open_stream_session(session)
            incoming: asyncio.Queue = asyncio.Queue(4)
            server = await streams.start_server(lambda r, w: incoming.put((r, w)))
            await asyncio.wait_for(sam_task, 120)

            # pyi2p -> i2pd: we look i2pd's LeaseSet up; i2pd 2.45.1 sometimes never publishes it
            # (testnet README pitfall 5): then i2pd connects first, which hands us its LeaseSet
            accept_reader, accept_writer, peer = await sam.accept()
            try:
                reader, writer = await asyncio.wait_for(streams.open_connection(sam.destination), 40)
            except (asyncio.TimeoutError, TimeoutError, ConnectionError, OSError):
                reader = None
            if reader is None:
                warm_reader, warm_writer = await sam.connect(streams.destination, timeout=60)
                await asyncio.wait_for(incoming.get(), 30)
                warm_writer.close()
                reader, writer = await asyncio.wait_for(streams.open_connection(sam.destination), 60)
            assert await asyncio.wait_for(peer, 30) == streams.destination

            sent, received, seconds = await _transfer(writer, accept_reader, b"to-i2pd", 150)
            assert sent == received
            to_i2pd = TRANSFER / seconds / 1e6
            # and the reply direction on the same stream
            sent, received, seconds = await _transfer(accept_writer, reader, b"back", 150)
            assert sent == received
            from_i2pd_same_stream = TRANSFER / seconds / 1e6
            writer.close()
            accept_writer.close()

            # i2pd -> pyi2p: a stream i2pd opens to our destination (our server accepts it)
            while not incoming.empty():
                incoming.get_nowait()[1].close()
            sam_reader, sam_writer = await sam.connect(streams.destination, timeout=60)
            our_reader, our_writer = await asyncio.wait_for(incoming.get(), 30)
            assert our_writer.get_extra_info("peername") == sam.destination
            sent, received, seconds = await _transfer(sam_writer, our_reader, b"from-i2pd", 150)
            assert sent == received
            from_i2pd = TRANSFER / seconds / 1e6
            sent, received, seconds = await _transfer(our_writer, sam_reader, b"reply", 150)
            assert sent == received
            to_i2pd_reply = TRANSFER / seconds / 1e6
            sam_writer.close()
            our_writer.close()
            server.close()
            print(f"\n10 MB over 2-hop tunnels: pyi2p->i2pd {to_i2pd:.2f} MB/s, i2pd->pyi2p (same stream) "
                  f"{from_i2pd_same_stream:.2f} MB/s; i2pd-opened stream: i2pd->pyi2p {from_i2pd:.2f} MB/s, "
                  f"pyi2p->i2pd {to_i2pd_reply:.2f} MB/s; stats {dict(streams.stats)}")
        finally:
            if sam_task is not None:
                sam_task.cancel()
            sam.close()
            if streams is not None:
                await streams.close()
            await node.stop()
