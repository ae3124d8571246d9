"""NTCP2 asyncio driver over real sockets on 127.0.0.1."""
import asyncio
import time

import pytest

from core.clock import FakeClock, SystemClock
from core.data.errors import HandshakeError
from core.i2np.header import I2NPMessage
from core.transport.ntcp2 import blocks as b
from core.transport.ntcp2.driver import ConnectionClosed, DriverSettings, connect, listen
from core.transport.ntcp2.handshake import Initiator

from .test_ntcp2_support import NETID, make_router

FAST = DriverSettings(handshake_timeout=3.0, probe_delay=(0.2, 0.3), probe_read_max=256)


@pytest.fixture
def routers():
    clock = FakeClock(time.time())
    return make_router("alice", clock), make_router("bob", clock)


class Bob:
    """A listener whose established connections land in a queue."""

    def __init__(self, router, settings=FAST, **kwargs):
        self.router = router
        self.connections: asyncio.Queue = asyncio.Queue()
        self.settings = settings
        self.kwargs = kwargs

    async def __aenter__(self):
        self.listener = await listen("127.0.0.1", 0, static_key=self.router.static_key,
                                     router_hash=self.router.router_hash, iv=self.router.iv, netid=NETID,
                                     on_connection=self.connections.put_nowait,
                                     router_info=self.router.router_info_bytes, settings=self.settings,
                                     **self.kwargs)
        return self

    async def __aexit__(self, *exc):
        await self.listener.stop()

    async def accepted(self):
        return await asyncio.wait_for(self.connections.get(), 3)


async def dial(alice, bob_router, port, *, netid=NETID, clock=None, settings=FAST):
    return await connect("127.0.0.1", port, static_key=alice.static_key, router_info=alice.router_info_bytes,
                         peer_router_hash=bob_router.router_hash, peer_static_key=bob_router.static_key.public_bytes,
                         peer_iv=bob_router.iv, netid=netid, clock=clock, settings=settings)


async def receive(conn, timeout=3):
    return await asyncio.wait_for(conn.receive(), timeout)


async def test_two_real_sockets_exchange_everything(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        out = await dial(alice, bob_router, bob.listener.port)
        inbound = await bob.accepted()
        assert out.outbound and inbound.inbound
        assert inbound.peer_router_hash == alice.router_hash
        assert inbound.peer_router_info == alice.router_info_bytes
        assert inbound.peer_static_key == alice.static_key.public_bytes
        assert out.peer_router_hash == bob_router.router_hash
        # first frames: Alice sends DateTime; Bob sends DateTime and his RouterInfo
        assert isinstance(await receive(inbound), b.DateTimeBlock)
        assert isinstance(await receive(out), b.DateTimeBlock)
        ri = await receive(out)
        assert ri == b.RouterInfoBlock(bob_router.router_info_bytes)
        assert out.peer_router_info == bob_router.router_info_bytes

        message = I2NPMessage(20, 77, int(time.time() * 1000) + 60_000, b"payload" * 100)
        await out.send([message, b.I2NPBlock(11, 78, 5, b"garlic")])
        first = await receive(inbound)
        assert (first.msg_type, first.msg_id, first.body) == (20, 77, message.body)
        assert (await receive(inbound)).msg_id == 78
        await inbound.send(b.I2NPBlock(10, 9, 9, b"status"))
        assert (await receive(out)).body == b"status"

        assert out.bytes_sent > 0 and out.bytes_received > 0 and inbound.established_at > 0
        await out.close(b.TerminationReason.IDLE_TIMEOUT)
        termination = await receive(inbound)
        assert termination.reason == b.TerminationReason.IDLE_TIMEOUT
        with pytest.raises(ConnectionClosed):
            await receive(inbound)
        await asyncio.wait_for(inbound.wait_closed(), 2)
        assert inbound.close_reason == b.TerminationReason.IDLE_TIMEOUT
        with pytest.raises(ConnectionClosed):
            await out.send(b.DateTimeBlock(1))
        for _ in range(20):
            if not bob.listener.connections:
                break
            await asyncio.sleep(0.01)
        assert not bob.listener.connections


async def test_async_iteration_and_backpressure(routers):
    alice, bob_router = routers
    settings = DriverSettings(handshake_timeout=3.0, receive_queue_size=4, frame_target=600)
    async with Bob(bob_router, settings=settings) as bob:
        out = await dial(alice, bob_router, bob.listener.port)
        inbound = await bob.accepted()
        messages = [b.I2NPBlock(20, i, 0, bytes(500)) for i in range(60)]
        sender = asyncio.create_task(out.send(messages))
        got = []
        async for block in inbound:
            if isinstance(block, b.I2NPBlock):
                got.append(block.msg_id)
                await asyncio.sleep(0.001)
            if len(got) == 60:
                break
        await sender
        assert got == list(range(60))
        await out.close()


async def test_send_nowait_writes_in_order_in_few_frames_and_refuses_past_the_write_buffer(routers):
    alice, bob_router = routers
    settings = DriverSettings(handshake_timeout=3.0, max_write_buffer=64 * 1024)
    async with Bob(bob_router, settings=settings) as bob:
        out = await dial(alice, bob_router, bob.listener.port, settings=settings)
        inbound = await bob.accepted()
        frames = out.data_phase.frames_sent
        assert out.send_nowait([b.I2NPBlock(20, i, 0, bytes(1000)) for i in range(30)])
        assert out.data_phase.frames_sent - frames == 2      # 30 KB in frames of up to 16 KB, not 30 frames
        got = []
        while len(got) < 30:
            block = await receive(inbound)
            if isinstance(block, b.I2NPBlock):
                got.append(block.msg_id)
        assert got == list(range(30))
        # the peer stops reading: past max_write_buffer bytes waiting, nothing more is taken
        inbound._reader_task.cancel()
        refused = 0
        for i in range(2000):
            if not out.send_nowait(b.I2NPBlock(20, i, 0, bytes(60_000))):
                refused += 1
                break
        assert refused == 1
        assert out._writer.transport.get_write_buffer_size() <= settings.max_write_buffer + 70_000
        out._shutdown(None)
        with pytest.raises(ConnectionClosed):
            out.send_nowait(b.I2NPBlock(20, 1, 0, b"x"))


async def test_a_receiver_gets_each_read_in_one_call_in_order(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        out = await dial(alice, bob_router, bob.listener.port)
        inbound = await bob.accepted()
        first = await receive(inbound)      # Bob's first frame (DateTime) waits in the queue: handed over first
        while not isinstance(first, b.DateTimeBlock):
            first = await receive(inbound)
        assert out.send_nowait(b.DateTimeBlock(7))
        await asyncio.sleep(0.2)
        calls: list[list] = []
        inbound.set_receiver(lambda conn, items: calls.append(items))
        assert calls == [[b.DateTimeBlock(7)]]
        calls.clear()
        messages = [I2NPMessage(20, i, 5000, bytes(900)) for i in range(1, 41)]
        assert out.send_raw_nowait([m.raw() for m in messages])
        deadline = time.monotonic() + 3
        while sum(len(c) for c in calls) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        got = [item for c in calls for item in c]
        assert got == [(20, i, 5, bytes(900)) for i in range(1, 41)]   # RawI2NP: type, id, seconds, body
        assert len(calls) < 40                                          # batches per read, not a call per block
        await out.close()


async def test_garbage_gets_no_answer_and_a_delayed_close(routers):
    _, bob_router = routers
    async with Bob(bob_router) as bob:
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.listener.port)
        started = time.monotonic()
        writer.write(bytes(range(64)) * 2)
        await writer.drain()
        try:
            data = await asyncio.wait_for(reader.read(), 3)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - started
        assert data == b""
        assert 0.15 <= elapsed < 2.0
        assert bob.listener.handshake_failures == 1
        writer.close()


async def test_wrong_netid_is_silently_dropped(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        with pytest.raises((ConnectionError, HandshakeError)):
            await dial(alice, bob_router, bob.listener.port, netid=2)
        assert bob.listener.handshake_failures == 1 and bob.connections.empty()


async def test_clock_skew_is_silently_dropped(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        skewed = FakeClock(time.time() + 120)
        with pytest.raises(ConnectionError):
            await dial(alice, bob_router, bob.listener.port, clock=skewed)
        assert bob.listener.handshake_failures == 1


async def test_replayed_session_request_is_dropped(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        initiator = Initiator(alice.static_key, alice.router_info_bytes, bob_router.router_hash,
                              bob_router.static_key.public_bytes, bob_router.iv, netid=NETID, clock=SystemClock())
        request = initiator.data_to_send()
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.listener.port)
        writer.write(request)
        assert len(await asyncio.wait_for(reader.read(64), 3)) > 0     # first time: SessionCreated
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.listener.port)
        writer.write(request)
        try:
            assert await asyncio.wait_for(reader.read(), 3) == b""     # replay: nothing
        except ConnectionResetError:
            pass
        writer.close()
        for _ in range(100):
            if bob.listener.handshake_failures:
                break
            await asyncio.sleep(0.01)
        assert bob.listener.handshake_failures >= 1


async def test_bad_data_frame_gets_termination(routers):
    alice, bob_router = routers
    async with Bob(bob_router) as bob:
        out = await dial(alice, bob_router, bob.listener.port)
        inbound = await bob.accepted()
        assert isinstance(await receive(inbound), b.DateTimeBlock)
        frame = bytearray(out.data_phase.encrypt_frame([b.DateTimeBlock(1)]))
        frame[-1] ^= 1
        out._writer.write(bytes(frame))
        blocks = []
        with pytest.raises(ConnectionClosed):
            while True:
                blocks.append(await receive(out))
        termination = blocks[-1]
        assert termination == b.TerminationBlock(1, b.TerminationReason.DATA_PHASE_AEAD_FAILURE)
        await asyncio.wait_for(inbound.wait_closed(), 3)
        assert inbound.close_reason == b.TerminationReason.DATA_PHASE_AEAD_FAILURE


async def test_handshake_timeout():
    async def silent(reader, writer):
        await asyncio.sleep(5)
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    clock = FakeClock(time.time())
    alice, bob_router = make_router("alice", clock), make_router("bob", clock)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await dial(alice, bob_router, server.sockets[0].getsockname()[1],
                       settings=DriverSettings(handshake_timeout=0.3))
        assert time.monotonic() - started < 2
    finally:
        server.close()


async def test_listener_handshake_timeout(routers):
    _, bob_router = routers
    settings = DriverSettings(handshake_timeout=0.3, probe_delay=(0.05, 0.1))
    async with Bob(bob_router, settings=settings) as bob:
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.listener.port)
        writer.write(b"\x00" * 10)     # a slow SessionRequest that never completes
        try:
            assert await asyncio.wait_for(reader.read(), 3) == b""
        except ConnectionResetError:
            pass
        assert bob.listener.handshake_failures == 1
        writer.close()


async def test_listener_stop_sends_router_shutdown(routers):
    alice, bob_router = routers
    bob = Bob(bob_router)
    await bob.__aenter__()
    out = await dial(alice, bob_router, bob.listener.port)
    await bob.accepted()
    await bob.__aexit__(None, None, None)
    blocks = []
    with pytest.raises(ConnectionClosed):
        while True:
            blocks.append(await receive(out))
    assert blocks[-1].reason == b.TerminationReason.ROUTER_SHUTDOWN


async def test_one_address_cannot_hold_every_handshake_slot(routers):
    """Silent sockets from one host fill only that host's share; the rest wait out a random delay like any
    failed handshake (no immediate reset), and a real handshake from the same host still gets a slot once
    a share is free."""
    alice, bob_router = routers
    settings = DriverSettings(handshake_timeout=1.5, probe_delay=(0.2, 0.3), probe_read_max=256,
                              max_pending_per_address=4)
    async with Bob(bob_router, settings=settings) as bob:
        silent = [await asyncio.open_connection("127.0.0.1", bob.listener.port) for _ in range(12)]
        await asyncio.sleep(0.05)
        assert bob.listener._pending == 4 and bob.listener.refused == 8
        started = time.monotonic()
        reader, _ = silent[-1]
        try:
            assert await asyncio.wait_for(reader.read(), 3) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started >= 0.15          # refused after the random delay, not at once
        for _, writer in silent:
            writer.close()
        await asyncio.sleep(1.7)                              # the silent handshakes time out
        conn = await dial(alice, bob_router, bob.listener.port, settings=settings)
        assert (await bob.accepted()) is not None
        await conn.close()
