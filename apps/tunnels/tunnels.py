"""The running tunnels: a local TCP/UDP side and an I2P session side, with bytes piped between them.

Each tunnel counts its connections and bytes, caps its open connections (`maxconns`), and fails
alone: its `error` says why (the port, the key file, the destination), the others run on.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from apps.network import (Datagram, I2PSession, IncomingStream, NameNotFound, NetworkError, Unsupported,
                          parse_address)
from core.data.errors import ProtocolError
from core.data.identity import Destination

from .config import TunnelConfig
from .http import HeadBuffer, HTTPHeadError, error_response, rewrite_request, rewrite_response
from .irc import IRCClientFilter, IRCServerRewriter, LineSplitter

log = logging.getLogger(__name__)

CHUNK = 64 * 1024                   # one read; with drain() after each write, at most this much is held per direction
HEAD_TIMEOUT = 60.0                 # a caller has this long to send an HTTP request head
UDP_MAX_PAYLOAD = 64 * 1024
UDP_SESSION_IDLE = 120.0            # i2pd's I2P_UDP_SESSION_TIMEOUT
UDP_REPLIABLE_INTERVAL = 0.1        # i2pd sends a repliable datagram when a conversation was idle this long, raw otherwise
UDP_MAX_SESSIONS = 256
UDP_MAX_QUEUED = 64                 # datagrams waiting for a UDP server tunnel's local socket to open

SessionFactory = Callable[[TunnelConfig], Awaitable[I2PSession]]


@dataclass(slots=True)
class TunnelStats:
    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    bytes_in: int = 0               # from I2P to the local side
    bytes_out: int = 0              # from the local side into I2P
    errors: int = 0
    last_error: str = ""
    keepalive_pongs: int = 0        # `keepaliveinterval` pings answered / not
    keepalive_missed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"connections_open": self.connections_open, "connections_total": self.connections_total,
                "connections_refused": self.connections_refused, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "errors": self.errors, "last_error": self.last_error,
                "keepalive_pongs": self.keepalive_pongs, "keepalive_missed": self.keepalive_missed}


class TunnelError(Exception):
    """A tunnel cannot start; the message names the port, file or destination at fault."""


Transform = Callable[[bytes], bytes]


async def pipe(reader: Any, writer: Any, count: Callable[[int], None], transform: Transform | None = None,
               half_close: bool = True) -> None:
    """Copy until EOF, then half-close; drain() after each write bounds what is held to one chunk."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        count(len(data))
        if transform is not None:
            data = transform(data)
        if data:
            writer.write(data)
            await writer.drain()
    if not half_close:
        await asyncio.Future()           # wait for the other direction to end the pair
    with contextlib.suppress(OSError, RuntimeError, ConnectionError):
        if writer.can_write_eof():
            writer.write_eof()


async def pipe_both(local: tuple[Any, Any], remote: tuple[Any, Any], stats: TunnelStats,
                    out_transform: Transform | None = None, in_transform: Transform | None = None,
                    half_close_local: bool = True) -> None:
    """Local <-> I2P until both sides ended; one side failing ends both. Without `half_close_local` the
    remote side's EOF is not passed on: the local side's answer ends the pair (HTTP servers that take a
    half-close for a hang-up)."""
    (local_reader, local_writer), (remote_reader, remote_writer) = local, remote

    def count_out(n: int) -> None:
        stats.bytes_out += n

    def count_in(n: int) -> None:
        stats.bytes_in += n

    tasks = [asyncio.ensure_future(pipe(local_reader, remote_writer, count_out, out_transform)),
             asyncio.ensure_future(pipe(remote_reader, local_writer, count_in, in_transform, half_close_local))]
    try:
        # without half-close the remote->local pipe never ends by itself: the local side's end ends both
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION if half_close_local
                                     else asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (local_writer, remote_writer):
            close_quietly(writer)


def close_quietly(writer: Any) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def line_transform(filter_line: Callable[[str], str | None]) -> Transform:
    """Bytes of a line protocol -> the filtered complete lines (CRLF-ended); partial lines wait."""
    splitter = LineSplitter()

    def transform(data: bytes) -> bytes:
        out = []
        for raw in splitter.feed(data):
            result = filter_line(raw.decode("utf-8", "surrogateescape"))
            if result is not None:
                out.append(result.encode("utf-8", "surrogateescape") + b"\r\n")
        return b"".join(out)
    return transform


class Tunnel:
    """Base: state, figures, the session it runs on."""

    def __init__(self, config: TunnelConfig, open_session: SessionFactory):
        self.config = config
        self._open_session = open_session
        self.session: I2PSession | None = None
        self.state = "stopped"
        self.error = ""
        self.stats = TunnelStats()
        self.listening = ""
        self._tasks: set[asyncio.Task] = set()
        self._ready = asyncio.Event()

    @property
    def name(self) -> str:
        return self.config.name

    async def bind(self) -> None:
        """Open the local side (a port taken fails here, at once)."""
        self.state, self.error = "starting", ""
        self._ready.clear()
        try:
            await self._bind()
        except TunnelError as exc:
            await self._release()
            self.state, self.error = "failed", str(exc)
            raise

    async def open(self) -> None:
        """Open (or share) the session and hook into it; may take as long as building tunnels does."""
        try:
            self.session = await self._open_session(self.config)
            await self._attach()
        except TunnelError as exc:
            await self._release()
            self.state, self.error = "failed", str(exc)
            raise
        except NetworkError as exc:
            await self._release()
            self.state, self.error = "failed", f"[{self.name}] {exc}"
            raise TunnelError(self.error) from None
        self.state = "running"
        self._ready.set()

    async def stop(self) -> None:
        await self._release()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.state != "failed":
            self.state = "stopped"
        self._ready.clear()

    async def _bind(self) -> None:
        """Open the local listener (client side); nothing for server tunnels."""

    async def _attach(self) -> None:
        """Hook into the session once it is open."""

    async def _release(self) -> None:
        """Close the local listener and detach from the session (the service closes the session)."""

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def admit(self) -> bool:
        """Count a new connection in (its task is cancelled by stop()), or refuse it at the cap."""
        if self.stats.connections_open >= self.config.max_connections:
            self.stats.connections_refused += 1
            return False
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        return True

    def leave(self) -> None:
        self.stats.connections_open -= 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)

    def failed_connection(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message[:200]
        log.info("%s: %s", self.name, message)

    def status(self) -> dict[str, Any]:
        c = self.config
        result: dict[str, Any] = {"name": c.name, "type": c.type, "state": self.state, "file": c.where,
                                  **self.stats.as_dict()}
        if self.error:
            result["error"] = self.error
        if self.listening:
            result["listening"] = self.listening
        if self.session is not None:
            result["b32"] = self.session.b32
        if c.destination:
            result["destination"] = f"{c.destination}:{c.destination_port}"
        if c.host:
            result["target"] = f"{c.host}:{c.port}"
        return result


def check_destination(tunnel: TunnelConfig) -> None:
    """Each destination of a client tunnel is a name, b32 or Base64 (its lookup comes later)."""
    for destination in tunnel.destinations:
        try:
            parse_address(destination)
        except NameNotFound as exc:
            raise TunnelError(f"[{tunnel.name}] destination {destination[:60]!r} ({tunnel.where}): {exc}") from None


class ClientTunnel(Tunnel):
    """Listens on address:port; each TCP connection becomes a stream to `destination`:`destinationport`."""

    def __init__(self, config: TunnelConfig, open_session: SessionFactory):
        super().__init__(config, open_session)
        self._server: asyncio.base_events.Server | None = None

    async def _bind(self) -> None:
        c = self.config
        check_destination(c)
        try:
            self._server = await asyncio.start_server(self._on_client, c.address, c.port, limit=CHUNK)
        except OSError as exc:
            raise TunnelError(f"[{c.name}] cannot listen on {c.address}:{c.port} ({c.where}): "
                              f"{exc.strerror or exc}") from None
        host, port = self._server.sockets[0].getsockname()[:2]
        self.listening = f"{host}:{port}"

    async def _attach(self) -> None:
        assert self.session is not None
        for destination in self.config.destinations:
            if isinstance(parse_address(destination), str):      # a host name: the address book must know it
                try:
                    await self.session.resolve(destination, timeout=self.config.connect_timeout)
                except NetworkError as exc:
                    raise TunnelError(f"[{self.name}] destination {destination!r} ({self.config.where}) does not "
                                      f"resolve: {exc}") from None
        if self.config.keepalive_interval:
            self.spawn(self._keep_alive())

    async def _keep_alive(self) -> None:
        """i2pd's `keepaliveinterval`: a streaming ping to the destination every so many seconds, keeping the
        garlic session, the LeaseSets both ways and the path warm between connections."""
        interval = self.config.keepalive_interval
        while self.session is not None:
            await asyncio.sleep(interval)
            if self.session is None:
                return
            destination = self.config.destinations[0]
            try:
                rtt = await self.session.ping(destination, timeout=min(interval, 30))
                self.stats.keepalive_pongs += 1
                log.debug("%s: keep-alive pong from %s in %.0f ms", self.name, destination[:16], rtt * 1000)
            except Unsupported as exc:
                log.info("%s: keepaliveinterval has no effect: %s", self.name, exc)
                return
            except NetworkError as exc:
                self.stats.keepalive_missed += 1
                log.debug("%s: keep-alive ping to %s: %s", self.name, destination[:16], exc)

    async def _release(self) -> None:
        self.listening = ""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.admit():
            writer.transport.abort()
            return
        try:
            await self._serve_client(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
            self.failed_connection(f"connection ended: {exc}")
        except NetworkError as exc:
            self.failed_connection(str(exc))
        except TimeoutError:
            self.failed_connection("the session was not ready in time")
        except asyncio.CancelledError:
            pass           # stop(): ending quietly keeps asyncio's server from logging each cancelled handler
        finally:
            self.leave()
            close_quietly(writer)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = self.config
        if not self._ready.is_set():
            await asyncio.wait_for(self._ready.wait(), c.connect_timeout)
        assert self.session is not None
        destination = random.choice(c.destinations)
        remote = await self.session.connect(destination, c.destination_port, timeout=c.connect_timeout)
        out_transform = in_transform = None
        if c.type == "ircclient":
            irc = IRCClientFilter()
            out_transform, in_transform = line_transform(irc.outbound), line_transform(irc.inbound)
        await pipe_both((reader, writer), remote, self.stats, out_transform, in_transform)


class ServerTunnel(Tunnel):
    """Streams to the session's `inport` (0: any) become TCP connections to host:port."""

    async def _attach(self) -> None:
        assert self.session is not None
        await self.session.serve(self._on_stream, port=self.config.inport)
        self.listening = ""

    async def _release(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.stop_serving(self.config.inport)

    def allowed(self, peer: Destination) -> bool:
        return not self.config.accesslist or peer.hash in self.config.accesslist

    async def _on_stream(self, stream: IncomingStream) -> None:
        c = self.config
        if not self.allowed(stream.peer):
            self.stats.connections_refused += 1
            stream.writer.abort()
            return
        if not self.admit():
            stream.writer.abort()
            return
        try:
            await self._serve_stream(stream)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError, NetworkError,
                ProtocolError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            self.failed_connection(f"{c.host}:{c.port}: {reason}")
            stream.writer.abort()
        finally:
            self.leave()
            close_quietly(stream.writer)

    async def open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        c = self.config
        local_addr = (c.address, 0) if c.address else None
        return await asyncio.wait_for(asyncio.open_connection(c.host, c.port, limit=CHUNK, local_addr=local_addr),
                                      c.connect_timeout)

    async def _serve_stream(self, stream: IncomingStream) -> None:
        upstream = await self.open_upstream()
        to_upstream = None
        if self.config.type == "irc":
            rewriter = IRCServerRewriter(stream.peer.b32_address, self.config.webirc_password)
            greeting = rewriter.greeting()
            if greeting:
                upstream[1].write(greeting.encode() + b"\r\n")
            to_upstream = line_transform(rewriter.rewrite)
        # the local side of a server tunnel is the upstream service, its remote side the caller
        await pipe_both(upstream, (stream.reader, stream.writer), self.stats, in_transform=to_upstream)


class HTTPServerTunnel(ServerTunnel):
    """A server tunnel that rewrites the request and response heads (http.py)."""

    async def _serve_stream(self, stream: IncomingStream) -> None:
        c = self.config
        buffer = HeadBuffer()
        try:
            found = None
            async with asyncio.timeout(HEAD_TIMEOUT):
                while found is None:
                    data = await stream.reader.read(CHUNK)
                    if not data:
                        return
                    self.stats.bytes_in += len(data)
                    found = buffer.feed(data)
            head, rest = found
            request = rewrite_request(head, stream.peer, host_override=c.host_override, i2p_headers=c.i2p_headers)
        except HTTPHeadError as exc:
            self.failed_connection(f"request from {stream.peer.b32_address}: {exc}")
            await self._answer(stream, exc.status, exc.reason)
            return
        except TimeoutError:              # the caller's side, not the site: say so
            self.failed_connection(f"request from {stream.peer.b32_address}: no request head within "
                                   f"{HEAD_TIMEOUT:g} s")
            stream.writer.abort()
            return
        try:
            upstream_reader, upstream_writer = await self.open_upstream()
        except (OSError, TimeoutError) as exc:
            self.failed_connection(f"{c.host}:{c.port}: {exc.strerror if isinstance(exc, OSError) else 'timeout'}")
            await self._answer(stream, 502, "the site does not answer")
            return
        upstream_writer.write(request + rest)
        response_head = HeadBuffer(too_large_status=502)
        response_done = False

        def filter_response(data: bytes) -> bytes:
            nonlocal response_done
            if response_done:
                return data
            found = response_head.feed(data)
            if found is None:
                return b""
            response_done = True
            return rewrite_response(found[0]) + found[1]

        await pipe_both((upstream_reader, upstream_writer), (stream.reader, stream.writer), self.stats,
                        out_transform=filter_response, half_close_local=False)

    async def _answer(self, stream: IncomingStream, status: int, message: str) -> None:
        with contextlib.suppress(Exception):
            stream.writer.write(error_response(status, message))
            await asyncio.wait_for(stream.writer.drain(), 10)


class UDPClientTunnel(Tunnel):
    """Datagrams to the local UDP address:port go to `destination`:`destinationport`; replies come back
    to the local sender. Like i2pd: the sender's UDP port is the datagram's from-port, repliable after
    a pause, raw within a burst."""

    def __init__(self, config: TunnelConfig, open_session: SessionFactory):
        super().__init__(config, open_session)
        self._transport: asyncio.DatagramTransport | None = None
        self._remote: Destination | None = None
        self._peers: dict[int, tuple[tuple[str, int], float]] = {}   # local sender port -> (address, last active)

    async def _bind(self) -> None:
        c = self.config
        check_destination(c)
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDPReceiver(self._from_local), local_addr=(c.address, c.port))
        except OSError as exc:
            raise TunnelError(f"[{c.name}] cannot listen on UDP {c.address}:{c.port} ({c.where}): "
                              f"{exc.strerror or exc}") from None
        host, port = self._transport.get_extra_info("sockname")[:2]
        self.listening = f"udp {host}:{port}"

    async def _attach(self) -> None:
        assert self.session is not None
        self.session.on_datagram(self._from_i2p, port=0)
        self.spawn(self._resolve())

    async def _resolve(self) -> None:
        """The destination's Destination (datagrams need its keys); retried like i2pd until it is found."""
        assert self.session is not None
        destination = self.config.destinations[0]
        while self._remote is None:
            try:
                self._remote = await self.session.resolve(destination, timeout=30)
            except NetworkError as exc:
                self.stats.last_error = f"{destination[:60]}: {exc}"[:200]
                await asyncio.sleep(5)

    async def _release(self) -> None:
        self.listening = ""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.on_datagram(None, port=0)

    def _from_local(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._remote is None or self.session is None:
            self.stats.errors += 1
            self.stats.last_error = "datagram dropped: destination not resolved yet"
            return
        now = time.monotonic()
        port = addr[1]
        last = self._peers.get(port, (addr, 0.0))[1]
        if port not in self._peers and len(self._peers) >= UDP_MAX_SESSIONS:
            self._expire(now)
            if len(self._peers) >= UDP_MAX_SESSIONS:
                self.stats.connections_refused += 1
                return
        if port not in self._peers:
            self.stats.connections_total += 1
        self._peers[port] = (addr, now)
        self.stats.connections_open = len(self._peers)
        self.stats.bytes_out += len(data)
        try:
            self.session.send_datagram(self._remote, data, repliable=now - last > UDP_REPLIABLE_INTERVAL,
                                       from_port=port, to_port=self.config.destination_port)
        except (NetworkError, ConnectionError, RuntimeError) as exc:
            self.failed_connection(f"send: {exc}")

    def _from_i2p(self, datagram: Datagram) -> None:
        if datagram.sender is not None and self._remote is not None and datagram.sender.hash != self._remote.hash:
            return                   # i2pd: "unwarranted traffic"
        peer = self._peers.get(datagram.to_port)
        if peer is None or self._transport is None:
            return
        self.stats.bytes_in += len(datagram.payload)
        self._peers[datagram.to_port] = (peer[0], time.monotonic())
        self._transport.sendto(datagram.payload, peer[0])

    def _expire(self, now: float) -> None:
        for port, (_, last) in list(self._peers.items()):
            if now - last > UDP_SESSION_IDLE:
                del self._peers[port]
        self.stats.connections_open = len(self._peers)


class _UDPReceiver(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]):
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP: %s", exc)


@dataclass(slots=True)
class _UDPConversation:
    peer: Destination
    from_port: int
    to_port: int
    transport: asyncio.DatagramTransport | None = None
    last_active: float = 0.0
    last_sent: float = 0.0
    queued: list[bytes] | None = None


class UDPServerTunnel(Tunnel):
    """Datagrams to the session's `inport` go to host:port from a local UDP socket per conversation (one per
    sender and port pair, as i2pd); what host:port answers goes back to the sender."""

    def __init__(self, config: TunnelConfig, open_session: SessionFactory):
        super().__init__(config, open_session)
        self._conversations: dict[tuple[int, int], _UDPConversation] = {}

    async def _attach(self) -> None:
        assert self.session is not None
        self.session.on_datagram(self._from_i2p, port=self.config.inport)

    async def _release(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.on_datagram(None, port=self.config.inport)
        for conversation in self._conversations.values():
            if conversation.transport is not None:
                conversation.transport.close()
        self._conversations.clear()

    def _from_i2p(self, datagram: Datagram) -> None:
        key = (datagram.from_port, datagram.to_port)
        now = time.monotonic()
        conversation = self._conversations.get(key)
        if datagram.sender is not None:
            if conversation is None or conversation.peer.hash != datagram.sender.hash:
                if conversation is not None and conversation.transport is not None:
                    conversation.transport.close()
                if conversation is None and len(self._conversations) >= UDP_MAX_SESSIONS:
                    self._expire(now)
                    if len(self._conversations) >= UDP_MAX_SESSIONS:
                        self.stats.connections_refused += 1
                        return
                if not self._allowed(datagram.sender):
                    self.stats.connections_refused += 1
                    return
                conversation = _UDPConversation(datagram.sender, datagram.from_port, datagram.to_port, queued=[])
                self._conversations[key] = conversation
                self.stats.connections_total += 1
                self.stats.connections_open = len(self._conversations)
                self.spawn(self._open_socket(key, conversation))
        elif conversation is None:
            return                   # a raw datagram we cannot place: its sender is unknown
        conversation.last_active = now
        self.stats.bytes_in += len(datagram.payload)
        if conversation.transport is None:
            if conversation.queued is not None and len(conversation.queued) < UDP_MAX_QUEUED:
                conversation.queued.append(datagram.payload)
            return
        conversation.transport.sendto(datagram.payload)

    def _allowed(self, peer: Destination) -> bool:
        return not self.config.accesslist or peer.hash in self.config.accesslist

    async def _open_socket(self, key: tuple[int, int], conversation: _UDPConversation) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDPReceiver(lambda data, addr: self._from_local(conversation, data)),
                local_addr=(c.address or "127.0.0.1", 0), remote_addr=(c.host, c.port))
        except OSError as exc:
            self.failed_connection(f"UDP {c.host}:{c.port}: {exc.strerror or exc}")
            self._conversations.pop(key, None)
            return
        if self._conversations.get(key) is not conversation:
            transport.close()
            return
        conversation.transport = transport
        for payload in conversation.queued or ():
            transport.sendto(payload)
        conversation.queued = None

    def _from_local(self, conversation: _UDPConversation, data: bytes) -> None:
        if self.session is None:
            return
        now = time.monotonic()
        repliable = now - conversation.last_sent > UDP_REPLIABLE_INTERVAL
        conversation.last_sent = conversation.last_active = now
        self.stats.bytes_out += len(data)
        try:
            self.session.send_datagram(conversation.peer, data, repliable=repliable,
                                       from_port=conversation.to_port, to_port=conversation.from_port)
        except (NetworkError, ConnectionError, RuntimeError) as exc:
            self.failed_connection(f"send: {exc}")

    def _expire(self, now: float) -> None:
        for key, conversation in list(self._conversations.items()):
            if now - conversation.last_active > UDP_SESSION_IDLE:
                if conversation.transport is not None:
                    conversation.transport.close()
                del self._conversations[key]
        self.stats.connections_open = len(self._conversations)


TUNNEL_CLASSES: dict[str, type[Tunnel]] = {
    "client": ClientTunnel, "ircclient": ClientTunnel, "server": ServerTunnel, "irc": ServerTunnel,
    "http": HTTPServerTunnel, "udpclient": UDPClientTunnel, "udpserver": UDPServerTunnel}
