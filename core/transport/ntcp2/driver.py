"""asyncio driver for NTCP2: a listener and a connector running the sans-I/O cores over TCP streams."""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from core.clock import Clock, Rng, SystemClock
from core.crypto.x25519 import X25519Keypair
from core.data.errors import ProtocolError
from core.i2np.header import I2NPMessage

from .blocks import (Block, DateTimeBlock, I2NPBlock, OptionsBlock, PaddingBlock, RawI2NP, RouterInfoBlock,
                     TerminationBlock, TerminationReason, UnknownBlock, blocks_of)
from .handshake import HandshakeResult, Initiator, ReplayCache, Responder
from .session import DataPhase, FrameError

log = logging.getLogger(__name__)


class ConnectionClosed(Exception):
    """The NTCP2 connection is closed; `reason` is the Termination code sent or received, if any."""

    def __init__(self, reason: int | None = None):
        super().__init__(f"NTCP2 connection closed (reason {reason})")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DriverSettings:
    handshake_timeout: float = 10.0          # i2pd and Java both give up on a handshake after about 10 s
    probe_delay: tuple[float, float] = (0.5, 5.0)   # ntcp2.rst probing resistance: wait before closing
    probe_read_max: int = 4096               # ...and read up to a random number of bytes meanwhile
    max_pending_handshakes: int = 64
    max_pending_per_address: int = 8         # one host cannot hold every handshake slot
    max_refusing: int = 256                  # refused connections waiting out their random delay
    receive_queue_size: int = 256            # blocks; the socket is not read while the queue is full
    read_chunk: int = 65536
    data_padding: int = 15                   # max random padding bytes per data frame
    handshake_padding: int = 64              # max padding in messages 1 and 2
    frame_target: int = 16384
    send_datetime: bool = True               # a DateTime block in the first frame each side sends
    max_write_buffer: int = 4 << 20          # bytes waiting for the socket beyond which send_nowait() refuses


_CLOSED = object()
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _random_fraction(rng: Rng) -> float:
    return int.from_bytes(rng(4), "big") / 2**32


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (ntcp2.rst: handshake failures are abnormal closes)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _probe_resistant_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rng: Rng,
                                 settings: DriverSettings, final: bytes = b"") -> None:
    """Read a random number of bytes for up to a random time, send `final` (if any), then reset."""
    low, high = settings.probe_delay
    delay = low + (high - low) * _random_fraction(rng)
    budget = int(_random_fraction(rng) * (settings.probe_read_max + 1))
    try:
        async with asyncio.timeout(delay):
            while budget > 0:
                chunk = await reader.read(min(budget, settings.read_chunk))
                if not chunk:
                    break
                budget -= len(chunk)
    except (TimeoutError, OSError):
        pass
    if final and not writer.is_closing():
        try:
            writer.write(final)
            await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()     # orderly, so the Termination frame is not discarded by a reset
            return
        except (OSError, TimeoutError):
            pass
    _abort(writer)


def _as_blocks(items: Block | I2NPMessage | Iterable[Block | I2NPMessage]) -> list[Block]:
    if isinstance(items, Iterable) and not isinstance(items, (bytes, str)) and not hasattr(items, "to_bytes"):
        return [_as_block(item) for item in items]
    return [_as_block(items)]


def _as_block(item: Block | I2NPMessage) -> Block:
    if isinstance(item, (I2NPBlock, DateTimeBlock, OptionsBlock, RouterInfoBlock, PaddingBlock, UnknownBlock,
                         TerminationBlock)):
        return item
    if isinstance(item, I2NPMessage):
        return I2NPBlock.from_message(item)
    raise TypeError(f"cannot send {type(item).__name__} over NTCP2")


Receiver = Callable[["NTCP2Connection", list[Block | RawI2NP]], None]


class BlockReceiver:
    """`await receive()` and `async for` over the blocks a session queued in `_queue`, ending at _CLOSED
    (shared by the NTCP2 and SSU2 connections)."""

    async def receive(self):
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)   # every other receiver sees the end too
            raise ConnectionClosed(self.close_reason)
        self._taken()
        return item

    def _taken(self) -> None:
        """Called after each block is taken off the queue."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except ConnectionClosed:
            raise StopAsyncIteration from None


class NTCP2Connection(BlockReceiver):
    """An established NTCP2 session over one TCP connection.

    Receive with `async for block in conn` or `await conn.receive()`: I2NPBlock, RouterInfoBlock,
    DateTimeBlock, OptionsBlock and finally TerminationBlock if the peer sent one (padding and unknown
    blocks are dropped). Both raise/stop with ConnectionClosed once closed and drained. Or hand every
    read's blocks to a callback at once with set_receiver() (the router's receive path).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, result: HandshakeResult,
                 *, inbound: bool, clock: Clock, rng: Rng, settings: DriverSettings, bytes_sent: int,
                 bytes_received: int):
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._rng = rng
        self._settings = settings
        self.inbound = inbound
        self.peer_router_hash: bytes = result.peer_router_hash
        self.peer_static_key: bytes = result.peer_static_key
        # Bob: Alice's RI from SessionConfirmed; Alice: Bob's RI once he sends a RouterInfo block
        self.peer_router_info: bytes | None = result.peer_router_info
        self.peer_options: OptionsBlock | None = result.peer_options
        self.clock_skew = result.clock_skew
        self.handshake = result
        self.established_at = clock.time()
        self.last_received = self.last_sent = clock.monotonic()
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self.peername = writer.get_extra_info("peername")
        self._sock = writer.get_extra_info("socket") if _TCP_QUICKACK is not None else None
        self.data_phase = DataPhase(result.keys, rng=rng, max_padding=settings.data_padding,
                                    frame_target=settings.frame_target)
        self.close_reason: int | None = None
        self.peer_termination: TerminationBlock | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._space = asyncio.Event()
        self._closed = False
        self._closed_event = asyncio.Event()
        self._close_callbacks: list[Callable[[NTCP2Connection], None]] = []
        self._reader_task: asyncio.Task | None = None
        self._receiver: Receiver | None = None

    transport_style = "NTCP2"

    @property
    def outbound(self) -> bool:
        return not self.inbound

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        direction = "in" if self.inbound else "out"
        return f"<NTCP2Connection {direction} {self.peer_router_hash[:4].hex()} {self.peername}>"

    def _start(self, first_data: bytes, leftover: bytes) -> None:
        if first_data:
            self._write(first_data)
        self._reader_task = asyncio.create_task(self._read_loop(leftover), name=f"ntcp2-read-{self!r}")

    def _write(self, data: bytes) -> None:
        self._writer.write(data)
        self.bytes_sent += len(data)
        self.last_sent = self._clock.monotonic()

    def set_receiver(self, receiver: Receiver) -> None:
        """From now on call `receiver(conn, items)` once per read with that read's blocks in order (I2NP ones as
        RawI2NP tuples; padding and unknown blocks dropped) instead of queueing them for receive(); what the
        queue already holds goes to it first. The end of the connection is told by add_close_callback()."""
        held = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _CLOSED:
                self._queue.put_nowait(_CLOSED)
                break
            held.append((item.msg_type, item.msg_id, item.expiration, item.body) if isinstance(item, I2NPBlock)
                        else item)
        self._receiver = receiver
        self._space.set()
        if held:
            receiver(self, held)

    def send_raw_nowait(self, messages: list[RawI2NP]) -> bool:
        """send_nowait() for I2NP messages in short-header terms, encoding their blocks without block objects."""
        if self._closed:
            raise ConnectionClosed(self.close_reason)
        if self._writer.transport.get_write_buffer_size() > self._settings.max_write_buffer:
            return False
        if messages:
            self._write(self.data_phase.pack_i2np(messages))
        return True

    def send_nowait(self, items: Block | I2NPMessage | Iterable[Block | I2NPMessage]) -> bool:
        """Pack blocks or I2NP messages into as few frames as fit and hand them to the socket now, in order;
        False (nothing written) while more than settings.max_write_buffer bytes still wait to go out."""
        if self._closed:
            raise ConnectionClosed(self.close_reason)
        blocks = _as_blocks(items)
        if not blocks:
            return True
        if self._writer.transport.get_write_buffer_size() > self._settings.max_write_buffer:
            return False
        self._write(self.data_phase.pack(blocks))
        return True

    async def send(self, items: Block | I2NPMessage | Iterable[Block | I2NPMessage]) -> None:
        """Send blocks or I2NP messages, packed into as few frames as fit, and wait while the socket is backed up."""
        if self._closed:
            raise ConnectionClosed(self.close_reason)
        blocks = _as_blocks(items)
        if not blocks:
            return
        self._write(self.data_phase.pack(blocks))
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._shutdown(None)
            raise ConnectionClosed(self.close_reason) from exc

    def _taken(self) -> None:
        if self._queue.qsize() < self._settings.receive_queue_size:
            self._space.set()

    async def close(self, reason: int = TerminationReason.NORMAL_CLOSE) -> None:
        """Send a Termination block with `reason` and close the socket (waits at most a few seconds)."""
        if not self._closed:
            if not self.data_phase.send_closed:
                try:
                    self._write(self.data_phase.terminate(reason))
                    await asyncio.wait_for(self._writer.drain(), 2.0)
                except (OSError, TimeoutError, ProtocolError):
                    pass
            self._shutdown(reason)
        else:
            task = self._reader_task
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()   # cut a probing-resistance wait short
        await self.wait_closed()

    def add_close_callback(self, callback: Callable[["NTCP2Connection"], None]) -> None:
        """Call `callback(conn)` once the connection is closed (at once if it already is)."""
        if self._closed_event.is_set():
            callback(self)
        else:
            self._close_callbacks.append(callback)

    def _set_closed_event(self) -> None:
        if self._closed_event.is_set():
            return
        self._closed_event.set()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("NTCP2 close callback failed")

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def _shutdown(self, reason: int | None, *, reset: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        if reset:
            _abort(self._writer)
        else:
            self._writer.close()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._queue.put_nowait(_CLOSED)
        self._set_closed_event()

    async def _read_loop(self, leftover: bytes) -> None:
        data_phase = self.data_phase
        limit = self._settings.receive_queue_size
        try:
            data = leftover
            while True:
                if data:
                    data_phase.receive_data(data)
                    batch: list[Block | RawI2NP] = []
                    try:
                        while (items := data_phase.next_items()) is not None:
                            for item in items:
                                if type(item) is tuple:
                                    batch.append(item)
                                elif not isinstance(item, (PaddingBlock, UnknownBlock)):
                                    self._note(item)
                                    batch.append(item)
                    finally:  # the frames before a bad one still count
                        if batch:
                            self._hand_on(batch)
                    if data_phase.peer_termination is not None:
                        self.peer_termination = data_phase.peer_termination
                        self._shutdown(data_phase.peer_termination.reason)
                        return
                while self._queue.qsize() >= limit and self._receiver is None:
                    self._space.clear()
                    await self._space.wait()
                data = await self._reader.read(self._settings.read_chunk)
                if not data:
                    self._shutdown(None)
                    return
                self._quick_ack()
                self.bytes_received += len(data)
                self.last_received = self._clock.monotonic()
        except FrameError as exc:
            log.info("NTCP2 %r: %s", self, exc)
            final = b""
            try:
                final = data_phase.terminate(exc.termination_reason)
            except ProtocolError:
                pass
            self._closed = True
            self.close_reason = exc.termination_reason
            self._queue.put_nowait(_CLOSED)
            try:
                await _probe_resistant_close(self._reader, self._writer, self._rng, self._settings, final)
            finally:
                if not self._writer.transport.is_closing():
                    _abort(self._writer)
                self._set_closed_event()
        except (ConnectionError, OSError):
            self._shutdown(None)
        except Exception:
            log.exception("NTCP2 %r: receive loop failed", self)
            self._shutdown(TerminationReason.PAYLOAD_FORMAT_ERROR, reset=True)

    def _quick_ack(self) -> None:
        """Have the kernel acknowledge what we read at once, not up to 40 ms later: a peer that sends with
        Nagle's algorithm on (i2pd does) holds its next small frame until our ACK comes (Linux only; the
        option is not sticky, so it is set again after each read)."""
        if self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                self._sock = None

    def _hand_on(self, batch: list[Block | RawI2NP]) -> None:
        if self._receiver is not None:
            self._receiver(self, batch)   # one call per read: the receive path's batch
        else:
            for block in blocks_of(batch):
                self._queue.put_nowait(block)

    def _note(self, block: Block) -> None:
        if isinstance(block, RouterInfoBlock) and self.outbound and self.peer_router_info is None:
            self.peer_router_info = block.router_info


def _first_frame(data_phase: DataPhase, clock: Clock, settings: DriverSettings,
                 router_info: bytes | None) -> bytes:
    blocks: list[Block] = []
    if settings.send_datetime:
        blocks.append(DateTimeBlock.now(clock.time()))
    if router_info is not None:
        blocks.append(RouterInfoBlock(router_info))
    return data_phase.pack(blocks) if blocks else b""


async def connect(host: str, port: int, *, static_key: X25519Keypair, router_info: bytes,
                  peer_router_hash: bytes, peer_static_key: bytes, peer_iv: bytes, netid: int,
                  clock: Clock | None = None, rng: Rng = os.urandom, options: OptionsBlock | None = None,
                  settings: DriverSettings = DriverSettings(), local_addr: tuple[str, int] | None = None,
                  ) -> NTCP2Connection:
    """Open a TCP connection, run the handshake as Alice, return the established connection.

    Raises ProtocolError subclasses for handshake failures (ClockSkewError carries the skew),
    OSError for network failures and TimeoutError after settings.handshake_timeout.
    """
    clock = clock or SystemClock()
    initiator = Initiator(static_key, router_info, peer_router_hash, peer_static_key, peer_iv, netid=netid,
                          clock=clock, rng=rng, options=options, max_padding=settings.handshake_padding)
    writer = None
    sent = received = 0
    try:
        async with asyncio.timeout(settings.handshake_timeout):
            reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
            request = initiator.data_to_send()
            writer.write(request)
            sent += len(request)
            await writer.drain()
            while not initiator.complete:
                data = await reader.read(settings.read_chunk)
                if not data:
                    raise ConnectionResetError("NTCP2: peer closed during the handshake")
                received += len(data)
                initiator.feed(data)
    except BaseException:
        if writer is not None:
            _abort(writer)
        raise
    conn = NTCP2Connection(reader, writer, initiator.result, inbound=False, clock=clock, rng=rng,
                           settings=settings, bytes_sent=sent, bytes_received=received)
    # ntcp2.rst: Alice may append a data frame to message 3 and flush both at once
    confirmed = initiator.data_to_send()
    conn._start(confirmed + _first_frame(conn.data_phase, clock, settings, None), b"")
    return conn


ConnectionHandler = Callable[[NTCP2Connection], Awaitable[None] | None]


class NTCP2Listener:
    """Accepts NTCP2 connections as Bob and hands each established one to `on_connection`.

    `router_info` (bytes, or a callable returning the current bytes) is sent in the first data frame.
    """

    def __init__(self, *, static_key: X25519Keypair, router_hash: bytes, iv: bytes, netid: int,
                 on_connection: ConnectionHandler, clock: Clock | None = None, rng: Rng = os.urandom,
                 replay_cache: ReplayCache | None = None,
                 router_info: bytes | Callable[[], bytes] | None = None,
                 settings: DriverSettings = DriverSettings()):
        self._static_key = static_key
        self._router_hash = router_hash
        self._iv = iv
        self._netid = netid
        self._on_connection = on_connection
        self._clock = clock or SystemClock()
        self._rng = rng
        self.replay_cache = replay_cache if replay_cache is not None else ReplayCache(self._clock)
        self._router_info = router_info
        self.settings = settings
        self._server: asyncio.Server | None = None
        self._pending = 0
        self._pending_by_address: dict[str, int] = {}
        self._refusing = 0
        self.refused = 0
        self._tasks: set[asyncio.Task] = set()
        self.connections: set[NTCP2Connection] = set()
        self.handshake_failures = 0

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port)

    async def stop(self) -> None:
        """Stop accepting, close established connections (router shutdown) and pending handshakes."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.close(TerminationReason.ROUTER_SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> NTCP2Listener:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else "?"
        task = asyncio.current_task()
        if (self._pending >= self.settings.max_pending_handshakes
                or self._pending_by_address.get(address, 0) >= self.settings.max_pending_per_address):
            await self._refuse(reader, writer, task)
            return
        self._tasks.add(task)
        self._pending += 1
        self._pending_by_address[address] = self._pending_by_address.get(address, 0) + 1
        try:
            conn = await self._handshake(reader, writer)
        finally:
            self._pending -= 1
            left = self._pending_by_address.pop(address, 1) - 1
            if left > 0:
                self._pending_by_address[address] = left
            self._tasks.discard(task)
        if conn is None:
            return
        self.connections.add(conn)
        conn.add_close_callback(self.connections.discard)
        outcome = self._on_connection(conn)
        if inspect.isawaitable(outcome):
            await outcome

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task) -> None:
        """Over a cap: close after the same random delay and read as a failed handshake (ntcp2.rst probing
        resistance), so a refusal looks like any other; past max_refusing, reset at once."""
        self.refused += 1
        if self._refusing >= self.settings.max_refusing:
            _abort(writer)
            return
        self._refusing += 1
        self._tasks.add(task)
        try:
            await _probe_resistant_close(reader, writer, self._rng, self.settings)
        finally:
            self._refusing -= 1
            self._tasks.discard(task)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> NTCP2Connection | None:
        settings = self.settings
        responder = Responder(self._static_key, self._router_hash, self._iv, netid=self._netid, clock=self._clock,
                              rng=self._rng, replay_cache=self.replay_cache, max_padding=settings.handshake_padding)
        sent = received = 0
        try:
            async with asyncio.timeout(settings.handshake_timeout):
                while not responder.complete:
                    data = await reader.read(settings.read_chunk)
                    if not data:
                        _abort(writer)
                        return None
                    received += len(data)
                    responder.feed(data)
                    out = responder.data_to_send()
                    if out:
                        writer.write(out)
                        sent += len(out)
                        await writer.drain()
        except ProtocolError as exc:
            self.handshake_failures += 1
            log.info("NTCP2 inbound handshake from %s failed: %s", writer.get_extra_info("peername"), exc)
            if responder.answered:
                _abort(writer)
            else:
                try:
                    async with asyncio.timeout(settings.probe_delay[1] + 1):
                        await _probe_resistant_close(reader, writer, self._rng, settings)
                except TimeoutError:
                    _abort(writer)
            return None
        except (TimeoutError, OSError):
            self.handshake_failures += 1
            _abort(writer)
            return None
        except asyncio.CancelledError:
            _abort(writer)
            raise
        router_info = self._router_info() if callable(self._router_info) else self._router_info
        conn = NTCP2Connection(reader, writer, responder.result, inbound=True, clock=self._clock, rng=self._rng,
                               settings=settings, bytes_sent=sent, bytes_received=received)
        conn._start(_first_frame(conn.data_phase, self._clock, settings, router_info), responder.unused_data)
        return conn


async def listen(host: str, port: int, **kwargs) -> NTCP2Listener:
    """Create and start an NTCP2Listener (keyword arguments as NTCP2Listener)."""
    listener = NTCP2Listener(**kwargs)
    await listener.start(host, port)
    return listener
