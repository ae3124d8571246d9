"""A real router under hostile peers: garbage and stalled handshakes, sessions that send malformed and
oversize I2NP, tunnel build floods, forged and stale netDb entries, garlic floods, a peer that never
reads. Throughout, the router keeps serving a stream between two of its own destinations and its
control API; memory stays bounded.

RSS is reported (`-s` prints it); the assertion is a loose cap for CI."""
from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from core.client import open_stream_session
from core.clock import SystemClock
from core.config import load_config
from core.data.encoding import b64decode
from core.i2np.header import I2NPMessage, MessageType
from core.i2np.messages import DatabaseLookup, DatabaseStore
from core.router import Router
from core.stats import rss_mb
from core.transport.ntcp2.driver import connect
from tests.transport.test_ntcp2_support import make_router

RSS_GROWTH_CAP_MB = 120


class Probe:
    """A stream between two destinations of the router under attack, echoing a line every round."""

    def __init__(self, router: Router):
        self.router = router
        self.rounds = 0

    async def start(self) -> None:
        api = self.router.client
        self.server = await api.open_session(name="probe-server")
        self.client = await api.open_session(name="probe-client")
        self.server_streams = open_stream_session(self.server)
        self.client_streams = open_stream_session(self.client)

        async def echo(reader, writer):
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()
        await self.server_streams.start_server(echo, port=7)
        self.reader, self.writer = await self.client_streams.open_connection(self.server.destination, 7)

    async def round_trip(self) -> float:
        started = time.monotonic()
        self.writer.write(b"ping %d\n" % self.rounds)
        await self.writer.drain()
        line = await asyncio.wait_for(self.reader.readline(), 5)
        assert line == b"ping %d\n" % self.rounds
        self.rounds += 1
        return time.monotonic() - started

    async def close(self) -> None:
        self.writer.close()
        await self.client_streams.close()
        await self.server_streams.close()


@pytest.fixture
async def router(tmp_path):
    config = load_config(tmp_path, {"netid": 42, "host": "127.0.0.1", "control_port": 0, "sam_port": 0})
    router = Router(config)
    await router.start()
    yield router
    await router.stop()


async def dial(router: Router, name: str):
    """An established NTCP2 session from a throwaway identity."""
    us = router.router_info.addresses[0]
    stranger = make_router(f"{name}-{time.monotonic_ns()}", SystemClock(), netid=42)
    conn = await connect("127.0.0.1", router.config.port, static_key=stranger.static_key,
                         router_info=stranger.router_info_bytes, peer_router_hash=router.hash,
                         peer_static_key=b64decode(us.options.get("s")), peer_iv=b64decode(us.options.get("i")),
                         netid=42, clock=SystemClock())
    return stranger, conn


def message(msg_type: int, body: bytes) -> I2NPMessage:
    return I2NPMessage(msg_type, random.getrandbits(32), int(time.time() * 1000) + 60_000, body)


async def garbage_handshakes(router: Router) -> None:
    async def one():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", router.config.port)
            writer.write(os.urandom(random.randint(1, 300)))
            await writer.drain()
            writer.close()
        except OSError:
            pass
    await asyncio.gather(*(one() for _ in range(150)))


async def stalled_handshakes(router: Router) -> list:
    held = []
    for _ in range(40):
        reader, writer = await asyncio.open_connection("127.0.0.1", router.config.port)
        writer.write(os.urandom(40))               # half a SessionRequest, then silence
        held.append(writer)
    return held


async def hostile_sessions(router: Router) -> None:
    stranger, conn = await dial(router, "malformed")
    bodies = [message(t, os.urandom(random.randint(0, 2000))) for t in range(0, 30) for _ in range(20)]
    for chunk in range(0, len(bodies), 50):
        await conn.send(bodies[chunk:chunk + 50])
    await conn.send([message(MessageType.DATA, os.urandom(60_000)) for _ in range(20)])          # oversize-ish
    await conn.send([message(MessageType.VARIABLE_TUNNEL_BUILD, bytes([8]) + os.urandom(8 * 528))
                     for _ in range(300)])                                                    # build flood
    await conn.send([message(MessageType.SHORT_TUNNEL_BUILD, bytes([4]) + os.urandom(4 * 218))
                     for _ in range(300)])
    await conn.send([message(MessageType.GARLIC, len(body := os.urandom(900)).to_bytes(4, "big") + body)
                     for _ in range(2000)])                                                   # garlic flood
    forged = bytearray(make_router(f"forged-{time.monotonic_ns()}", SystemClock(), netid=42).router_info_bytes)
    forged[-1] ^= 1
    stale = make_router(f"stale-{time.monotonic_ns()}", SystemClock(), netid=42, published_offset=-40 * 86400)
    stores = [DatabaseStore.for_router_info(os.urandom(32), bytes(forged)) for _ in range(300)]
    stores += [DatabaseStore.for_router_info(stale.router_hash, stale.router_info_bytes) for _ in range(50)]
    await conn.send([I2NPMessage.build(s, random.getrandbits(32), int(time.time() * 1000) + 60_000)
                     for s in stores])
    await conn.close()


async def never_reads(router: Router):
    """Asks for answers and never reads them: the router's queue to this peer must stay bounded."""
    stranger, conn = await dial(router, "deaf")
    lookups = [I2NPMessage.build(DatabaseLookup(router.hash, stranger.router_hash), random.getrandbits(32),
                                 int(time.time() * 1000) + 60_000) for _ in range(3000)]
    conn._writer.transport.pause_reading()       # its socket buffer fills; the router's sends back up
    for chunk in range(0, len(lookups), 100):
        await conn.send(lookups[chunk:chunk + 100])
    return conn


async def test_the_router_serves_on_under_hostile_peers(router, capsys):
    probe = Probe(router)
    await probe.start()
    baseline = rss_mb()
    worst = 0.0
    held: list = []
    deaf = None
    try:
        for attack in ("garbage", "stalled", "sessions", "deaf"):
            if attack == "garbage":
                task = asyncio.create_task(garbage_handshakes(router))
            elif attack == "stalled":
                held += await stalled_handshakes(router)
                task = None
            elif attack == "sessions":
                task = asyncio.create_task(hostile_sessions(router))
            else:
                deaf = await never_reads(router)
                task = None
            for _ in range(10):                      # the probe keeps its round trips while the attack runs
                worst = max(worst, await probe.round_trip())
                await asyncio.sleep(0.05)
            if task is not None:
                await asyncio.wait_for(task, 60)
            if attack == "stalled":   # they hold this address's handshake slots: the next attacker needs them
                for writer in held:
                    writer.close()
                held.clear()
                await asyncio.sleep(0.2)
        for _ in range(5):
            worst = max(worst, await probe.round_trip())
        grown = rss_mb() - baseline
        with capsys.disabled():
            print(f"\nhostile peers: RSS {baseline:.0f} MB -> {baseline + grown:.0f} MB, "
                  f"worst probe round trip {worst * 1000:.0f} ms, {probe.rounds} rounds, "
                  f"handshakes refused {router.transports._listener.refused}, netDb rejected "
                  f"{dict(router.netdb.rejected)}")
        assert grown < RSS_GROWTH_CAP_MB
        assert worst < 5.0
        assert len(router.netdb) <= 3             # the attackers' own RouterInfos at most: nothing forged or stale
    finally:
        for writer in held:
            writer.close()
        if deaf is not None:
            await deaf.close()
        await probe.close()
