"""The asyncio face over the in-memory link: reading and writing like asyncio streams."""
import asyncio
import random

import pytest

from core.streaming.api import StreamSession
from core.streaming.config import ConnectionLimits, StreamConfig
from core.streaming.link import Impairments, MemoryNetwork

FAST = StreamConfig(initial_rto=0.5, syn_reply_delay=0.01)


@pytest.fixture
async def sessions(alice, bob, request):
    impairments = getattr(request, "param", Impairments())
    net = MemoryNetwork(impairments, seed=4)
    a = StreamSession(alice, net.attach(alice.destination), config=FAST, rng=random.Random(1).randbytes)
    b = StreamSession(bob, net.attach(bob.destination), config=FAST, rng=random.Random(2).randbytes)
    yield a, b
    await a.close()
    await b.close()
    net.close()


async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_line_echo(sessions, bob):
    a, b = sessions
    server = await b.start_server(echo, port=7)
    reader, writer = await asyncio.wait_for(a.open_connection(bob.destination, 7), 5)
    assert writer.get_extra_info("peername") == bob.destination
    for word in (b"hello\n", b"world\n"):
        writer.write(word)
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == word.upper()
    writer.write(b"partial")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"PARTIAL"
    assert reader.at_eof()
    await asyncio.wait_for(writer.wait_closed(), 5)
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("sessions", [Impairments(delay=0.002, jitter=0.002, loss=0.02, duplicate=0.02,
                                                  reorder=0.05, reorder_delay=0.005)], indirect=True)
async def test_bulk_both_ways_with_loss(sessions, bob):
    a, b = sessions
    data = random.Random(5).randbytes(400_000)

    async def reverse(reader, writer):
        body = await reader.readexactly(len(data))
        writer.write(body[::-1])
        await writer.drain()
        writer.close()
    await b.start_server(reverse)
    reader, writer = await asyncio.wait_for(a.open_connection(bob.destination), 10)
    writer.write(data)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 30) == data[::-1]
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 10)


async def test_readexactly_and_readuntil_at_eof(sessions, bob):
    a, b = sessions

    async def short(reader, writer):
        writer.write(b"abc;def")
        writer.close()
    await b.start_server(short)
    reader, writer = await a.open_connection(bob.destination)
    assert await asyncio.wait_for(reader.readuntil(b";"), 5) == b"abc;"
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await asyncio.wait_for(reader.readexactly(10), 5)
    assert info.value.partial == b"def"
    assert await reader.read(5) == b""


async def test_refused_and_reset(sessions, bob):
    a, b = sessions
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(a.open_connection(bob.destination), 5)

    async def rude(reader, writer):
        await reader.readexactly(3)
        writer.abort()
    await b.start_server(rude)
    reader, writer = await a.open_connection(bob.destination)
    writer.write(b"hey")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
    with pytest.raises(ConnectionResetError):
        writer.write(b"more")


async def test_zero_rtt_open_returns_at_once(sessions, bob, alice):
    a, b = sessions
    got = asyncio.get_running_loop().create_future()

    async def collect(reader, writer):
        got.set_result(await reader.read())
        writer.close()
    await b.start_server(collect)
    reader, writer = await a.open_connection(bob.destination, config=StreamConfig(connect_delay=5.0))
    assert not writer.connection.is_established
    writer.write(b"one packet")
    writer.write_eof()
    assert await asyncio.wait_for(got, 2) == b"one packet"   # long before the 5 s connect delay
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_drain_holds_writers_to_the_buffer(sessions, bob):
    a, b = sessions
    release = asyncio.Event()

    async def slow(reader, writer):
        await release.wait()
        await reader.read()
        writer.close()
    await b.start_server(slow)
    reader, writer = await a.open_connection(bob.destination)
    conn = writer.connection
    chunk = b"x" * 65536
    blocked = False
    for _ in range(40):
        writer.write(chunk)
        try:
            await asyncio.wait_for(writer.drain(), 0.2)
        except TimeoutError:
            blocked = True
            break
    assert blocked and conn.send_buffered >= conn.config.send_buffer_size
    assert conn.peer_choked
    release.set()
    await asyncio.wait_for(writer.drain(), 10)


async def test_ping_and_session_close(sessions, bob):
    a, b = sessions
    assert await a.ping(bob.destination, timeout=5) >= 0
    await b.start_server(echo)
    reader, writer = await a.open_connection(bob.destination)
    await b.close()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)


async def test_limits_through_the_session(alice, bob):
    net = MemoryNetwork()
    a = StreamSession(alice, net.attach(alice.destination), config=FAST)
    b = StreamSession(bob, net.attach(bob.destination), config=FAST,
                      limits=ConnectionLimits(max_conns_per_minute=1))
    await b.start_server(echo)
    await asyncio.wait_for(a.open_connection(bob.destination), 5)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(a.open_connection(bob.destination), 5)
    await a.close()
    await b.close()


class _SwitchingLink:
    """A link whose path to the peer breaks on demand and is mended by choosing another (path_failed)."""

    def __init__(self, link):
        self._link = link
        self.broken = False
        self.failed: list[bytes] = []

    def __getattr__(self, name):
        return getattr(self._link, name)

    def send(self, payload, to, **kwargs):
        if not self.broken:
            self._link.send(payload, to, **kwargs)

    def path_failed(self, to: bytes) -> None:
        self.failed.append(to)
        self.broken = False


async def test_a_retransmission_timeout_asks_the_link_for_another_path_before_resending(alice, bob):
    """A hop of the tunnel behind the peer's lease restarted: the timed-out packet goes again, another way."""
    net = MemoryNetwork(seed=4)
    link = _SwitchingLink(net.attach(alice.destination))
    a = StreamSession(alice, link, config=FAST, rng=random.Random(1).randbytes)
    b = StreamSession(bob, net.attach(bob.destination), config=FAST, rng=random.Random(2).randbytes)
    try:
        await b.start_server(echo)
        reader, writer = await asyncio.wait_for(a.open_connection(bob.destination), 5)
        writer.write(b"one\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ONE\n"
        link.broken = True
        writer.write(b"two\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"TWO\n"
        assert link.failed and set(link.failed) == {bob.destination.hash} and not a.manager.failed_paths
        writer.close()
    finally:
        await a.close()
        await b.close()
        net.close()
