"""TransportManager bookkeeping without sockets: sessions, per-peer queues and dials racing inbound sessions."""
from __future__ import annotations

import asyncio

from core.clock import FakeClock
from core.i2np import I2NPMessage, MessageType
from core.transport.manager import TransportManager

PEER = bytes(range(32))


class FakeConnection:
    """What the manager uses of an NTCP2Connection: an established session that never delivers anything."""

    def __init__(self, peer: bytes):
        self.peer_router_hash = peer
        self.peer_router_info = b""
        self.closed = False
        self.sent: list = []
        self.bytes_sent = self.bytes_received = 0
        self.close_reason = None
        self._callbacks = []
        self._done = asyncio.Event()

    def add_close_callback(self, callback) -> None:
        self._callbacks.append(callback)

    async def send(self, blocks) -> None:
        self.sent.extend(blocks)

    async def close(self, reason=None) -> None:
        self.closed = True
        self._done.set()
        for callback in self._callbacks:
            callback(self)

    def __aiter__(self):
        return self

    async def __anext__(self):
        await self._done.wait()
        raise StopAsyncIteration


def manager(lookups: list[bytes]) -> TransportManager:
    def lookup(peer: bytes):
        lookups.append(peer)
        return None
    return TransportManager(router_hash=b"\x01" * 32, static_key=None, iv=b"\x00" * 16, netid=99,
                            router_info=lambda: b"", lookup_router_info=lookup, on_message=lambda *a: None,
                            on_router_info=lambda *a: None, clock=FakeClock())


async def test_dial_started_before_an_inbound_session_from_the_same_peer_ends_quietly():
    lookups: list[bytes] = []
    m = manager(lookups)
    waiting = asyncio.create_task(m.connect(PEER))
    await asyncio.sleep(0)          # connect() has spawned its dial, which has not run yet
    conn = FakeConnection(PEER)
    m._inbound(conn)                # the peer dials us first and takes the pending state
    assert await asyncio.wait_for(waiting, 5) is conn
    assert lookups == []            # the dial saw the session and did not look the peer up
    assert PEER not in m._peers
    await m.stop()


async def test_messages_queued_while_dialling_go_out_on_the_inbound_session():
    lookups: list[bytes] = []
    m = manager(lookups)
    message = I2NPMessage(MessageType.DATA, 7, 0, b"\x00\x00\x00\x01x")
    assert m.send(PEER, message)
    conn = FakeConnection(PEER)
    m._inbound(conn)
    for _ in range(5):
        await asyncio.sleep(0)
    assert [b.msg_id for b in conn.sent] == [message.msg_id]
    assert PEER not in m._peers and m.sessions[PEER] is conn
    await m.stop()


async def test_failed_dial_forgets_the_peer_and_backs_off():
    lookups: list[bytes] = []
    m = manager(lookups)
    assert await m.connect(PEER) is None            # no RouterInfo: nothing to dial
    assert lookups == [PEER] and PEER not in m._peers
    message = I2NPMessage(MessageType.DATA, 8, 0, b"\x00\x00\x00\x01x")
    assert m.send(PEER, message)                    # queued, dialled again (no failure recorded for lookups)
    await asyncio.sleep(0.01)
    assert PEER not in m._peers and m.dropped_messages == 1
    await m.stop()
