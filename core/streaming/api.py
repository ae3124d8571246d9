"""The asyncio face of streaming: readers and writers that read like asyncio networking code.

    session = StreamSession(keys, link)
    reader, writer = await session.open_connection(remote_destination)
    server = await session.start_server(handle, port=80)

A StreamSession owns one StreamManager (one local destination) on one DatagramLink and moves
packets between them, runs the timers, and wakes readers and writers.
"""
from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from core.clock import Clock, Rng, SystemClock

from .config import ConnectionLimits, StreamConfig
from .connection import Connection, State
from .link import Datagram, DatagramLink
from .manager import PROTOCOL_STREAMING, StreamManager

if TYPE_CHECKING:
    from core.data.identity import Destination
    from core.data.privatekeys import PrivateKeys

DEFAULT_LIMIT = 64 * 1024
Handler = Callable[["StreamReader", "StreamWriter"], Awaitable[None] | None]


class _Waiters:
    """Futures of readers and writers waiting for something to change on one connection."""

    __slots__ = ("futures",)

    def __init__(self) -> None:
        self.futures: list[asyncio.Future] = []

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        try:
            await future
        finally:
            if future in self.futures:
                self.futures.remove(future)

    def wake(self) -> None:
        futures, self.futures = self.futures, []
        for future in futures:
            if not future.done():
                future.set_result(None)


class StreamSession:
    def __init__(self, keys: PrivateKeys, link: DatagramLink, *, config: StreamConfig = StreamConfig(),
                 limits: ConnectionLimits = ConnectionLimits(), clock: Clock | None = None, rng: Rng = os.urandom):
        self.clock = clock or SystemClock()
        self.manager = StreamManager(keys, clock=self.clock, rng=rng, config=config, limits=limits)
        self.link = link
        self._waiters: dict[Connection, _Waiters] = {}
        self._servers: dict[int, StreamServer] = {}
        self._pings: dict[int, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._service_scheduled = False
        self._closed = False
        link.set_receiver(self._on_datagram)

    @property
    def destination(self) -> Destination:
        return self.manager.destination

    @property
    def stats(self):
        return self.manager.stats

    # ------------------------------------------------------------ public API

    async def open_connection(self, remote: Destination, port: int = 0, *, local_port: int = 0,
                              config: StreamConfig | None = None, limit: int = DEFAULT_LIMIT
                              ) -> tuple[StreamReader, StreamWriter]:
        """Connect to `remote`. With config.connect_delay > 0 this returns at once and the SYN waits
        for the first data (sent on drain(), write_eof() or when the delay ends): 0-RTT."""
        self._check_open()
        conn = self.manager.connect(remote, remote_port=port, local_port=local_port, config=config)
        reader, writer = self._wrap(conn, limit)
        self._schedule_service()
        if conn.config.connect_delay > 0:
            return reader, writer
        waiters = self._waiters[conn]
        while not conn.is_established:
            if conn.is_terminated:
                self._waiters.pop(conn, None)
                if conn.error == "connect timeout" or conn.error == "too many retransmissions":
                    raise TimeoutError(f"no answer from {remote.b32_address}")
                raise ConnectionRefusedError(f"{remote.b32_address}: {conn.error}")
            await waiters.wait()
        return reader, writer

    async def start_server(self, handler: Handler, port: int = 0, *, limit: int = DEFAULT_LIMIT) -> StreamServer:
        """Call `handler(reader, writer)` in a task for each incoming connection to `port` (0: any)."""
        self._check_open()
        if port in self._servers:
            raise OSError(f"already listening on streaming port {port}")
        server = StreamServer(self, handler, port, limit)
        self._servers[port] = server
        self.manager.listen(port)
        return server

    async def ping(self, remote: Destination, payload: bytes = b"", *, timeout: float = 30.0) -> float:
        """Round-trip seconds of a streaming ECHO; TimeoutError when no pong comes."""
        self._check_open()
        ping_id = self.manager.ping(remote, payload)
        future = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = future
        self._schedule_service()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop(ping_id, None)

    async def close(self) -> None:
        """Reset what is still open, stop the servers and the timer."""
        if self._closed:
            return
        self._closed = True
        for server in list(self._servers.values()):
            server.close()
        for conn in self.manager.connections:
            conn.reset("session closed")
        self._service()
        for waiters in self._waiters.values():
            waiters.wake()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        self.link.set_receiver(None)

    async def __aenter__(self) -> StreamSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ the pump

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError("stream session is closed")

    def _wrap(self, conn: Connection, limit: int) -> tuple[StreamReader, StreamWriter]:
        waiters = self._waiters.setdefault(conn, _Waiters())
        return StreamReader(self, conn, waiters, limit), StreamWriter(self, conn, waiters)

    def _on_datagram(self, datagram: Datagram) -> None:
        if self._closed or datagram.protocol != PROTOCOL_STREAMING:
            return  # i2p.streaming.enforceProtocol
        self.manager.receive(datagram.payload, src_port=datagram.src_port, dst_port=datagram.dst_port,
                             sender=datagram.sender)
        # hand new connections to their server at once: a burst of SYNs delivered in one loop tick would
        # otherwise fill the accept backlog before _service runs, and the rest be reset
        while (conn := self.manager.accept()) is not None:
            self._dispatch(conn)
        self._schedule_service()

    def _schedule_service(self) -> None:
        """One service per loop iteration, so writes, reads and packets of one tick share packets."""
        if not self._service_scheduled:
            self._service_scheduled = True
            asyncio.get_running_loop().call_soon(self._service)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        if not self._closed:
            self.manager.handle_timers()
        self._service()

    def _service(self) -> None:
        self._service_scheduled = False
        manager = self.manager
        if manager.failed_paths:
            # before the retransmissions go: a link that can choose paths sends them another way
            path_failed = getattr(self.link, "path_failed", None)
            for peer in manager.failed_paths:
                if path_failed is not None:
                    path_failed(peer)
            manager.failed_paths.clear()
        for out in manager.datagrams_to_send():
            self.link.send(out.payload, out.to, protocol=out.protocol, src_port=out.src_port, dst_port=out.dst_port)
        while (conn := manager.accept()) is not None:
            self._dispatch(conn)
        while manager.pongs:
            pong = manager.pongs.popleft()
            future = self._pings.get(pong.ping_id)
            if future is not None and not future.done():
                future.set_result(pong.rtt)
        for conn in manager.take_changed():
            waiters = self._waiters.get(conn)
            if waiters is not None:
                waiters.wake()
                if conn.is_finished:
                    del self._waiters[conn]
        for waiters in self._waiters.values():
            if waiters.futures:
                waiters.wake()  # flushing frees send buffers: writers re-check
        self._reschedule()

    def _reschedule(self) -> None:
        if self._closed:
            return
        deadline = self.manager.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _dispatch(self, conn: Connection) -> None:
        server = self._servers.get(conn.local_port) or self._servers.get(0)
        if server is None or server.closing:
            conn.reset("not listening")
            return
        reader, writer = self._wrap(conn, server.limit)
        task = asyncio.get_running_loop().create_task(server._run(reader, writer))
        self._tasks.add(task)
        server._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(server._tasks.discard)


class StreamServer:
    def __init__(self, session: StreamSession, handler: Handler, port: int, limit: int):
        self.session = session
        self.handler = handler
        self.port = port
        self.limit = limit
        self.closing = False
        self._tasks: set[asyncio.Task] = set()
        self._closed = asyncio.get_running_loop().create_future()

    async def _run(self, reader: StreamReader, writer: StreamWriter) -> None:
        try:
            result = self.handler(reader, writer)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.abort()
        except asyncio.CancelledError:
            writer.abort()
            raise
        except Exception:
            writer.abort()
            raise

    def is_serving(self) -> bool:
        return not self.closing

    def close(self) -> None:
        """Stop accepting; connections already handed to the handler go on."""
        if self.closing:
            return
        self.closing = True
        self.session.manager.stop_listening(self.port)
        self.session._servers.pop(self.port, None)
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def serve_forever(self) -> None:
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> StreamServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class StreamReader:
    """asyncio.StreamReader's reading methods over one connection."""

    def __init__(self, session: StreamSession, conn: Connection, waiters: _Waiters, limit: int = DEFAULT_LIMIT):
        self._session = session
        self._conn = conn
        self._waiters = waiters
        self._limit = limit
        self._buffer = bytearray()

    def _raise_if_reset(self) -> None:
        if self._conn.state is State.RESET and not self._conn.readable:
            raise ConnectionResetError(self._conn.error or "stream reset")

    async def _fill(self) -> bool:
        """Wait for more bytes into the buffer; False at end of stream."""
        conn = self._conn
        while True:
            if conn.readable:
                self._buffer += conn.read(max(self._limit, 1))
                self._session._schedule_service()   # reading may unchoke the sender
                return True
            self._raise_if_reset()
            if conn.at_eof:
                return False
            await self._waiters.wait()

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def at_eof(self) -> bool:
        return not self._buffer and self._conn.at_eof

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if n < 0:
            while await self._fill():
                pass
            return self._take(len(self._buffer))
        if not self._buffer:
            await self._fill()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not await self._fill():
                partial = self._take(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, n)
        return self._take(n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        if not separator:
            raise ValueError("separator must not be empty")
        start = 0
        while True:
            found = self._buffer.find(separator, start)
            if found >= 0:
                end = found + len(separator)
                if end > self._limit:
                    raise asyncio.LimitOverrunError("separator found but chunk is longer than limit", found)
                return self._take(end)
            start = max(0, len(self._buffer) - len(separator) + 1)
            if len(self._buffer) > self._limit:
                raise asyncio.LimitOverrunError("separator not found and chunk exceeds the limit", len(self._buffer))
            if not await self._fill():
                partial = self._take(len(self._buffer))
                raise asyncio.IncompleteReadError(partial, None)

    async def readline(self) -> bytes:
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            if self._buffer.startswith(b"\n", exc.consumed):
                del self._buffer[:exc.consumed + 1]
            else:
                self._buffer.clear()
            raise ValueError(exc.args[0]) from None

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class StreamWriter:
    """asyncio.StreamWriter's writing methods over one connection; drain() holds writers to the send buffer."""

    def __init__(self, session: StreamSession, conn: Connection, waiters: _Waiters):
        self._session = session
        self._conn = conn
        self._waiters = waiters
        self._closing = False

    @property
    def connection(self) -> Connection:
        return self._conn

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self._conn.remote, "sockname": self._session.destination,
                "connection": self._conn, "peerport": self._conn.remote_port,
                "sockport": self._conn.local_port}.get(name, default)

    def _check_writable(self) -> None:
        if self._conn.state is State.RESET:
            raise ConnectionResetError(self._conn.error or "stream reset")
        if self._closing or self._conn.is_terminated:
            raise ConnectionError("stream is closed for writing")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if data:
            self._conn.send(bytes(data))
            self._session._schedule_service()

    def writelines(self, data) -> None:
        for chunk in data:
            self.write(chunk)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Half-close: the peer reads to EOF, we can still read."""
        if not self._conn.is_terminated:
            self._conn.close()
            self._session._schedule_service()

    async def drain(self) -> None:
        conn = self._conn
        conn.flush()
        self._session._schedule_service()
        while True:
            if conn.state is State.RESET:
                raise ConnectionResetError(conn.error or "stream reset")
            if not conn.send_buffer_full or conn.is_terminated:
                return
            await self._waiters.wait()

    def is_closing(self) -> bool:
        return self._closing or self._conn.is_terminated

    def close(self) -> None:
        """Close both ways: a CLOSE follows the buffered data; received data is dropped from now on."""
        if self._closing:
            return
        self._closing = True
        if not self._conn.is_terminated:
            self._conn.close()
            self._conn.close_reading()
            self._session._schedule_service()

    def abort(self) -> None:
        """Reset the connection."""
        self._closing = True
        if not self._conn.is_terminated:
            self._conn.reset()
            self._session._schedule_service()

    async def wait_closed(self) -> None:
        """Until both CLOSEs are exchanged and acknowledged (or the stream is reset or times out)."""
        while not self._conn.is_terminated:
            await self._waiters.wait()
