"""TransportManager bookkeeping without sockets: sessions, per-peer queues and dials racing inbound sessions."""
from __future__ import annotations

import asyncio

from core.clock import FakeClock
from core.data.errors import ParseError
from core.i2np import I2NPMessage, MessageType
from core.transport.manager import TransportManager
from core.transport.ntcp2.blocks import RouterInfoBlock

PEER = bytes(range(32))


class FakeConnection:
    """What the manager uses of an NTCP2Connection: an established session that never delivers anything."""

    transport_style = "NTCP2"

    def __init__(self, peer: bytes):
        self.peer_router_hash = peer
        self.peer_router_info = b""
        self.closed = False
        self.sent: list = []
        self.writes: list[list] = []   # one entry per send_nowait() or send_raw_nowait()
        self.receiver = None
        self.bytes_sent = self.bytes_received = 0
        self.close_reason = None
        self._callbacks = []
        self._done = asyncio.Event()

    def add_close_callback(self, callback) -> None:
        self._callbacks.append(callback)

    async def send(self, blocks) -> None:
        self.sent.extend(blocks)

    def send_nowait(self, blocks) -> bool:
        self.writes.append(list(blocks))
        self.sent.extend(self.writes[-1])
        return True

    def send_raw_nowait(self, messages) -> bool:
        return self.send_nowait([I2NPMessage.from_raw(raw) for raw in messages])

    def set_receiver(self, receiver) -> None:
        self.receiver = receiver

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


async def test_sends_of_one_loop_turn_leave_in_one_write_per_peer_in_order():
    m = manager([])
    other = bytes(range(1, 33))
    conns = {PEER: FakeConnection(PEER), other: FakeConnection(other)}
    for conn in conns.values():
        m._inbound(conn)
    messages = [I2NPMessage(MessageType.DATA, i, 0, b"\x00\x00\x00\x01x") for i in range(1, 41)]
    for message in messages:
        assert m.send(PEER if message.msg_id % 4 else other, message)
    assert conns[PEER].writes == []             # nothing written until the loop turns
    await asyncio.sleep(0)
    assert len(conns[PEER].writes) == len(conns[other].writes) == 1
    assert [b.msg_id for b in conns[PEER].writes[0]] == [i for i in range(1, 41) if i % 4]
    assert [b.msg_id for b in conns[other].writes[0]] == [i for i in range(1, 41) if not i % 4]
    assert m.send(PEER, messages[0])
    await asyncio.sleep(0)
    assert len(conns[PEER].writes) == 2 and m.dropped_messages == 0
    await m.stop()


async def test_a_peer_that_reads_too_slowly_costs_the_messages_not_the_session():
    m = manager([])
    conn = FakeConnection(PEER)
    conn.send_nowait = lambda blocks: False     # its write buffer is over the limit
    m._inbound(conn)
    for i in range(3):
        assert m.send(PEER, I2NPMessage(MessageType.DATA, i + 1, 0, b"\x00\x00\x00\x01x"))
    await asyncio.sleep(0)
    assert m.dropped_messages == 3 and m.sessions[PEER] is conn and not conn.closed
    await m.stop()


async def test_a_read_is_handled_in_order_and_a_bad_message_costs_only_itself():
    handled: list[int] = []
    infos: list[bytes] = []

    def on_message(peer, message):
        if message.msg_id == 3:
            raise ParseError("bad body", structure="test")
        handled.append(message.msg_id)

    m = TransportManager(router_hash=b"\x01" * 32, static_key=None, iv=b"\x00" * 16, netid=99,
                         router_info=lambda: b"", lookup_router_info=lambda peer: None, on_message=on_message,
                         on_router_info=lambda peer, info: infos.append(info), clock=FakeClock())
    conn = FakeConnection(PEER)
    m._inbound(conn)
    assert conn.receiver is not None    # the session hands each read's blocks to the manager at once
    conn.receiver(conn, [(MessageType.DATA, i, 7, b"\x00\x00\x00\x01x") for i in range(1, 5)]
                  + [RouterInfoBlock(b"ri")])
    assert handled == [1, 2, 4] and infos == [b"ri"]
    await m.stop()


async def test_the_relay_path_takes_its_messages_first_and_the_rest_go_on_in_order():
    handled: list[int] = []
    relayed: list[int] = []
    clock = FakeClock()

    def relay(peer, items):
        assert peer == PEER
        relayed.extend(item[1] for item in items if type(item) is tuple and item[0] == MessageType.TUNNEL_DATA)
        return [item for item in items if not (type(item) is tuple and item[0] == MessageType.TUNNEL_DATA)]

    m = TransportManager(router_hash=b"\x01" * 32, static_key=None, iv=b"\x00" * 16, netid=99,
                         router_info=lambda: b"", lookup_router_info=lambda peer: None,
                         on_message=lambda peer, message: handled.append(message.msg_id),
                         on_router_info=lambda peer, info: None, clock=clock)
    m.relay = relay
    conn = FakeConnection(PEER)
    m._inbound(conn)
    conn.receiver(conn, [(MessageType.TUNNEL_DATA, 1, 7, bytes(1028)), (MessageType.DATA, 2, 7, b"\x00\x00\x00\x01x"),
                         (MessageType.TUNNEL_DATA, 3, 7, bytes(1028)), (MessageType.DATA, 4, 7, b"\x00\x00\x00\x01y")])
    assert relayed == [1, 3] and handled == [2, 4]
    clock.advance(100.0)
    conn.receiver(conn, [(MessageType.TUNNEL_DATA, 5, 7, bytes(1028))])
    assert m._last_i2np[PEER] == clock.monotonic()     # a session that only relays is not idle
    await m.stop()


async def test_raw_and_message_sends_share_one_outbox_in_order():
    m = manager([])
    conn = FakeConnection(PEER)
    m._inbound(conn)
    assert m.send_raw(PEER, (MessageType.TUNNEL_DATA, 1, 7, bytes(1028)))
    assert m.send(PEER, I2NPMessage(MessageType.DATA, 2, 7000, b"\x00\x00\x00\x01x"))
    assert m.send_raw(PEER, (MessageType.TUNNEL_DATA, 3, 7, bytes(1028)))
    await asyncio.sleep(0)
    assert len(conn.writes) == 1 and [msg.msg_id for msg in conn.writes[0]] == [1, 2, 3]
    assert m.send_raw(PEER, (MessageType.TUNNEL_DATA, 4, 7, bytes(1028)))
    await conn.close()             # closed before the loop turned: what waited is counted as dropped
    await asyncio.sleep(0)
    assert len(conn.writes) == 1 and m.dropped_messages == 1
    await m.stop()
