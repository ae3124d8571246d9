"""The apps' port over a SAM v3 bridge (ours, i2pd's or Java I2P's): the same apps, another router.

    network = SamNetwork("127.0.0.1", 7656)             # UDP datagram port: 7655 (TCP port - 1)
    session = await network.open_session(None, {"inbound.length": "2"}, name="web")

One session is a control connection holding the SAM session (samv3.md "SAM Sessions": it lives
and dies with that socket). With SAM 3.3 it is a PRIMARY session with a STREAM subsession;
with 3.1 a STREAM session. Each outgoing stream is a new connection (STREAM CONNECT); incoming
streams come through a few pending STREAM ACCEPT connections, re-armed after each stream, and
are routed to handlers by the TO_PORT the bridge reports (3.2+; without it, to port 0's handler).
Datagrams are forwarded by the bridge to local UDP sockets and sent through its UDP port:
as DATAGRAM and RAW sessions that share the destination (i2pd), else as subsessions of the
PRIMARY session (Java, ours).

With keys of our own the DATAGRAM and RAW sessions are asked for while the bridge is still
making the PRIMARY session's destination, not after: i2pd (2.58, ClientContext::
CreateNewLocalDestination) restarts a destination's streaming part for each further session on
its keys, and a stream that reached the destination before that goes on being delivered to
the old streaming part, which has no ACCEPT: every later incoming stream is lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
from collections import OrderedDict
from typing import Any, Callable, Mapping

from core.data.encoding import b32encode
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

from . import sam_protocol as sam
from .base import (ConnectTimeout, Datagram, DatagramHandler, IncomingStream, NameNotFound, NetworkError,
                   PeerNotFound, PeerUnreachable, PortRouter, Resolver, StreamHandler, StreamTasks, parse_address,
                   resolve_name, Unsupported)
from .sam_protocol import SamProtocolError, SamRefused

log = logging.getLogger(__name__)

MAX_PENDING_ACCEPTS = 4
LOOKUP_CACHE = 256             # b32 -> Destination answers kept per network
ACCEPT_BACKOFF_MAX = 5.0
UDP_RECEIVE_BUFFER = 1 << 20
READ_LIMIT = 2 ** 16           # asyncio's default line limit; bounds every reply line
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


class SamClosed(NetworkError):
    """The SAM bridge closed a connection or the session it held."""


async def _read_line(reader: asyncio.StreamReader, timeout: float | None, what: str) -> bytes:
    """One '\\n'-terminated line from the bridge; NetworkError subclasses for silence, EOF and overlong lines."""
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readline()
    except TimeoutError:
        raise ConnectTimeout(f"the SAM bridge did not answer {what} within {timeout:.0f} s") from None
    except ValueError:       # asyncio: a line longer than the reader's limit
        raise SamProtocolError(f"the SAM bridge sent an overlong line ({what})") from None
    except (ConnectionError, OSError) as exc:
        raise SamClosed(f"the connection to the SAM bridge failed ({what}): {exc.__class__.__name__}") from None
    if not line.endswith(b"\n"):
        raise SamClosed(f"the SAM bridge closed the connection ({what})")
    return line


class SamStreamWriter(asyncio.StreamWriter):
    """asyncio's StreamWriter with the port's abort() (base.StreamWriter): a reset, not a graceful close."""

    def abort(self) -> None:
        if not self.transport.is_closing():
            self.transport.abort()


class _Connection:
    """One TCP connection to the bridge, past HELLO."""

    __slots__ = ("reader", "writer", "version")

    def __init__(self, reader: asyncio.StreamReader, writer: SamStreamWriter, version: tuple[int, int]):
        self.reader = reader
        self.writer = writer
        self.version = version

    def abort(self) -> None:
        self.writer.abort()


class _Control:
    """The connection that holds a (sub)session: commands one at a time, PING answered, death noticed."""

    def __init__(self, connection: _Connection, label: str, on_close: Callable[[str], None]):
        self.connection = connection
        self.label = label
        self.on_close = on_close
        self.on_datagram: Callable[[Datagram], None] | None = None
        self.error: str | None = None
        self.holds_session = False
        """Set once SESSION CREATE succeeded: only then does its end end the session (on_close)."""
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[bytes] | None = None
        self._task: asyncio.Task | None = None

    @property
    def closed(self) -> bool:
        return self.error is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def request(self, line: bytes, verb: str, action: str, timeout: float, what: str) -> bytes:
        """Send a command and return its reply line (checked to be `verb action`)."""
        async with self._lock:
            if self.error is not None:
                raise SamClosed(self.error)
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self.connection.writer.write(line)
            try:
                async with asyncio.timeout(timeout):
                    reply = await waiter
            except TimeoutError:
                self.fail(f"the SAM bridge did not answer {what} within {timeout:.0f} s")
                raise ConnectTimeout(self.error) from None
            finally:
                self._waiter = None
            try:
                sam.parse_reply(reply, verb, action)
            except SamProtocolError as exc:
                self.fail(str(exc))     # out of step with the bridge: nothing later could be trusted
                raise
            return reply

    async def _run(self) -> None:
        reader = self.connection.reader
        reason = "the SAM bridge closed the session's connection"
        try:
            while True:
                line = await _read_line(reader, None, f"{self.label} control")
                words = line.split(maxsplit=2)
                head = words[0].upper() if words else b""
                if head == b"PING":      # samv3.md "PING/PONG": answer with the same text
                    self.connection.writer.write(b"PONG" + line[4:].rstrip(b"\r\n") + b"\n")
                elif head in (b"DATAGRAM", b"RAW") and len(words) > 1 and words[1].upper() == b"RECEIVED":
                    await self._received(line)
                elif self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(line)
                else:
                    log.debug("SAM %s: unexpected line from the bridge dropped", self.label)
        except NetworkError as exc:
            reason = str(exc)
        except asyncio.CancelledError:
            reason = "closed"
        except asyncio.IncompleteReadError:
            reason = "the SAM bridge closed the session's connection inside a datagram"
        finally:
            self.fail(reason)

    async def _received(self, line: bytes) -> None:
        """samv3.md "Receiving a Datagram" on the control socket: `... SIZE=n` then n bytes."""
        command, size = sam.parse_received_header(line)
        payload = await self.connection.reader.readexactly(size)
        try:
            datagram = sam.received_datagram(command, payload)
        except NetworkError:
            return                  # a bad sender or port costs only this datagram
        if self.on_datagram is not None:
            self.on_datagram(datagram)

    def fail(self, reason: str) -> None:
        """The connection is done: wake whoever waits, close it, tell the session once."""
        if self.error is not None:
            return
        self.error = reason
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(SamClosed(reason))
        self.connection.abort()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        if self.holds_session:
            self.on_close(reason)

    async def close(self) -> None:
        if self.error is None:
            self.fail("closed")
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class _DatagramSocket(asyncio.DatagramProtocol):
    """A local UDP socket the bridge forwards one style of datagrams to (samv3.md "Forwarding...")."""

    def __init__(self, style: str, bridge_ip: str):
        self.session: SamSession | None = None
        """Set once the session is made: what comes before is dropped."""
        self.style = style
        self.bridge_ip = bridge_ip
        self.raw_header = False
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, style: str, local_ip: str, bridge_ip: str) -> _DatagramSocket:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(lambda: cls(style, bridge_ip),
                                                          local_addr=(local_ip, 0))
        return protocol

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):     # room for a burst the bridge forwards while we are busy
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if addr[0] != self.bridge_ip or self.session is None:   # only the bridge forwards to us
            return
        try:
            if self.style == "RAW":
                if self.raw_header:
                    from_port, to_port, payload = sam.parse_forwarded_raw(data)
                else:
                    from_port, to_port, payload = 0, 0, data
                datagram = Datagram(payload, from_port, to_port)
            else:
                peer, payload = sam.parse_forwarded_datagram(data)
                datagram = Datagram(payload, peer.from_port or 0, peer.to_port or 0, peer.destination, True)
        except NetworkError:
            self.session.stats["datagrams_dropped"] += 1
            return
        self.session._deliver_datagram(datagram)

    def error_received(self, exc: Exception) -> None:
        log.debug("SAM datagram socket: %s", exc.__class__.__name__)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SamSession:
    """One destination on the bridge (I2PSession)."""

    def __init__(self, network: SamNetwork, name: str, nickname: str, control: _Control, keys: sam.SessionKeys,
                 destination: Destination, udp: dict[str, _DatagramSocket] | None = None,
                 datagram_sessions: asyncio.Task[list[_Control]] | None = None):
        self._network = network
        self.name = name
        self.nickname = nickname
        self._control = control
        self._session_keys = keys
        self._destination = destination
        self.version = control.connection.version
        self.style = "STREAM"
        self._stream_id = nickname
        self._controls: list[_Control] = [control]
        control.on_datagram = self._deliver_datagram
        self._streams = PortRouter()
        self._datagrams = PortRouter()
        self._accept_tasks: set[asyncio.Task] = set()
        self._tasks = StreamTasks(name)
        self._udp: dict[str, _DatagramSocket] = udp if udp is not None else {}
        for socket_ in self._udp.values():
            socket_.session = self
        self._datagram_sessions = datagram_sessions
        """The DATAGRAM and RAW sessions asked for beside the PRIMARY one (SamNetwork.open_session)."""
        self._datagram_ids: dict[str, str] = {}
        self._datagram_mode = "off"
        self._datagram_ports = False
        self.error: str | None = None
        self.closed = False
        self.stats = {"streams_out": 0, "streams_in": 0, "streams_refused": 0, "datagrams_in": 0,
                      "datagrams_out": 0, "datagrams_dropped": 0}

    # ------------------------------------------------------------ identity

    @property
    def destination(self) -> Destination:
        return self._destination

    @property
    def b32(self) -> str:
        return self._destination.b32_address

    @property
    def keys(self) -> PrivateKeys | None:
        """The private keys (for a TRANSIENT session: as the bridge made them); None if of a type not readable here."""
        return self._session_keys.keys

    def _check_open(self) -> None:
        if self.closed or self.error is not None:
            raise SamClosed(f"{self.name}: the SAM session is gone ({self.error or 'closed'})")

    def _control_closed(self, reason: str) -> None:
        """A connection holding (part of) the session died: samv3.md, the session died with it."""
        if self.closed or self.error is not None:
            return
        self.error = reason
        log.warning("SAM session %s is gone: %s", self.name, reason)
        for task in list(self._accept_tasks):
            task.cancel()
        for control in self._controls:
            if not control.closed:
                control.fail("the session's other connection closed")

    # ------------------------------------------------------------ set-up

    async def _setup(self) -> None:
        network = self._network
        if self.version >= sam.PRIMARY_VERSION:
            reply = await self._control.request(sam.session_add("STREAM", f"{self.nickname}-s", FROM_PORT=0),
                                                "SESSION", "STATUS", network.reply_timeout, "SESSION ADD STREAM")
            sam.parse_session_status(reply, "the STREAM subsession")
            self.style, self._stream_id = "PRIMARY", f"{self.nickname}-s"
        if network.datagrams:
            try:
                await self._setup_datagrams()
            except NetworkError as exc:
                self._check_open()          # the session itself failed: so does opening it
                self._datagram_mode = f"unavailable: {exc}"
                self._datagram_ids = {}
                for udp in self._udp.values():
                    udp.close()
                for control in self._controls[1:]:     # a DATAGRAM session without its RAW one
                    control.holds_session = False
                    await control.close()
                del self._controls[1:]
                log.info("SAM session %s: no datagrams (%s)", self.name, exc)

    async def _setup_datagrams(self) -> None:
        network = self._network
        ids = _datagram_ids(self.nickname)
        try:
            # i2pd: sessions with the same keys share one destination (ClientContext::CreateNewLocalDestination),
            # and its PRIMARY takes STREAM subsessions only; Java and ours answer DUPLICATED_DEST
            opening, self._datagram_sessions = self._datagram_sessions, None
            if opening is None:
                opening = asyncio.ensure_future(network._open_datagram_sessions(
                    self._control, self._session_keys.b64, {}, self.nickname, self.name, self._control_closed,
                    self._udp))
            controls = await opening
            self._controls += controls
            for control in controls:
                control.on_datagram = self._deliver_datagram
                if control.closed:
                    raise SamClosed(f"the {control.label} session closed: {control.error}")
            self._datagram_mode = "sessions"
        except SamRefused as exc:
            if exc.result != sam.DUPLICATED_DEST or self.version < sam.PRIMARY_VERSION:
                raise
            for style in ("DATAGRAM", "RAW"):   # samv3.md "Creating a Subsession"
                host, port = self._udp[style].address
                extra = {"HEADER": "true"} if style == "RAW" else {}
                reply = await self._control.request(sam.session_add(style, ids[style], PORT=port, HOST=host, **extra),
                                                    "SESSION", "STATUS", network.reply_timeout,
                                                    f"SESSION ADD {style}")
                sam.parse_session_status(reply, f"the {style} subsession")
            self._udp["RAW"].raw_header = True
            self._datagram_mode = "subsessions"
            self._datagram_ports = True
        for socket_ in self._udp.values():
            socket_.session = self
        self._datagram_ids = ids
        network._bridge_udp = (self._control.connection.writer.get_extra_info("peername")[0], network.udp_port)

    async def ping(self, to: str | Destination, *, timeout: float = 30.0) -> float:
        raise Unsupported("a streaming ping is not available over SAM (SAM v3 has no command for it)")

    # ------------------------------------------------------------ names

    async def resolve(self, name: str | Destination, *, timeout: float = 30.0) -> Destination:
        target = parse_address(name)
        if isinstance(target, Destination):
            return target
        if isinstance(target, str):
            if self._network.resolver is not None:
                try:
                    return await resolve_name(self._network.resolver, target)
                except NameNotFound:
                    pass
            found = await self._network._lookup(target, timeout)
            if found is None:
                raise NameNotFound(f"{target}: neither the address book nor the SAM bridge knows it")
            return found
        return await self._network._lookup_hash(target, timeout)

    # ------------------------------------------------------------ streams

    async def connect(self, to: str | Destination, port: int = 0, *, from_port: int = 0,
                      timeout: float = 60.0) -> tuple[asyncio.StreamReader, SamStreamWriter]:
        if not (0 <= port <= 65535 and 0 <= from_port <= 65535):
            raise ValueError("ports are 0-65535")
        self._check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        remote = await self.resolve(to, timeout=timeout)
        label = _label(to)
        connection = await self._network._connect(max(1.0, deadline - loop.time()), "STREAM CONNECT")
        try:
            connection.writer.write(sam.stream_connect(self._stream_id, remote, connection.version,
                                                       from_port=from_port, to_port=port))
            try:
                line = await _read_line(connection.reader, max(1.0, deadline - loop.time()), "STREAM CONNECT")
            except ConnectTimeout:
                raise ConnectTimeout(f"{label} did not answer within {timeout:.0f} s") from None
            except SamClosed:
                self._check_open()
                raise PeerUnreachable(f"{label}: the SAM bridge closed the stream before it opened") from None
            sam.parse_stream_status(line, label)
        except BaseException:
            connection.abort()
            raise
        self.stats["streams_out"] += 1
        return connection.reader, connection.writer

    async def serve(self, handler: StreamHandler, port: int = 0) -> None:
        self._check_open()
        self._streams.set(port, handler)
        loop = asyncio.get_running_loop()
        # before 3.2 one ACCEPT at a time: i2pd 2.45.1 may hand a second stream to a busy ACCEPT socket
        wanted = self._network.pending_accepts if self.version >= sam.CONCURRENT_ACCEPT_VERSION else 1
        while len(self._accept_tasks) < wanted:
            task = loop.create_task(self._accept_loop())
            self._accept_tasks.add(task)
            task.add_done_callback(self._accept_tasks.discard)

    def stop_serving(self, port: int = 0) -> None:
        self._streams.set(port, None)
        if not self._streams:
            for task in list(self._accept_tasks):
                task.cancel()

    async def _accept_loop(self) -> None:
        """samv3.md "SAM Virtual Streams : ACCEPT": one pending ACCEPT at a time, re-armed after each stream."""
        network = self._network
        backoff = 0.0
        while not self.closed and self.error is None:
            if backoff:
                await asyncio.sleep(backoff)
            connection = None
            try:
                connection = await network._connect(network.reply_timeout, "STREAM ACCEPT")
                connection.writer.write(sam.stream_accept(self._stream_id))
                sam.parse_accept_status(await _read_line(connection.reader, network.reply_timeout, "STREAM ACCEPT"))
                peer = sam.parse_peer_line(await _read_line(connection.reader, None, "an incoming stream"))
            except NetworkError as exc:
                # i2pd 2.58 closes a queued ACCEPT younger than 3 s when another one comes: just arm a new one
                log.debug("SAM %s: STREAM ACCEPT ended: %s", self.name, exc)
                if connection is not None:
                    connection.abort()
                backoff = min(max(backoff * 2, 0.2), ACCEPT_BACKOFF_MAX)
                continue
            except BaseException:
                if connection is not None:
                    connection.abort()
                raise
            backoff = 0.0
            self._dispatch(peer, connection)

    def _dispatch(self, peer: sam.PeerLine, connection: _Connection) -> None:
        if peer.to_port is None:       # before 3.2 (and on i2pd) no ports: port 0's handler, or the only one
            handlers = self._streams.handlers
            handler = handlers.get(0) or (next(iter(handlers.values())) if len(handlers) == 1 else None)
        else:
            handler = self._streams.get(peer.to_port)
        stream = IncomingStream(peer.destination, peer.from_port or 0, peer.to_port or 0, connection.reader,
                                connection.writer)
        if handler is None or not self._tasks.start(handler, stream):
            self.stats["streams_refused"] += 1
            connection.abort()
            return
        self.stats["streams_in"] += 1

    # ------------------------------------------------------------ datagrams

    def send_datagram(self, to: Destination, payload: bytes, *, repliable: bool = True, from_port: int = 0,
                      to_port: int = 0) -> None:
        self._check_open()
        style = "DATAGRAM" if repliable else "RAW"
        limit = sam.MAX_REPLIABLE_SIZE if repliable else sam.MAX_RAW_SIZE
        if not 1 <= len(payload) <= limit:
            raise ValueError(f"a {style} datagram holds 1-{limit} bytes, not {len(payload)}")
        if not self._datagram_ids:
            raise NetworkError(f"{self.name}: no datagrams over this SAM bridge ({self._datagram_mode})")
        version = sam.version_text(self.version) if self._datagram_ports else "3.0"
        header = sam.datagram_header(version, self._datagram_ids[style], to, from_port=from_port, to_port=to_port,
                                     with_ports=self._datagram_ports)
        self.stats["datagrams_out"] += 1
        self._udp[style].transport.sendto(header + payload, self._network._bridge_udp)

    def on_datagram(self, handler: DatagramHandler | None, port: int = 0) -> None:
        self._datagrams.set(port, handler)

    def _deliver_datagram(self, datagram: Datagram) -> None:
        handler = self._datagrams.get(datagram.to_port)
        if handler is None:
            self.stats["datagrams_dropped"] += 1
            return
        self.stats["datagrams_in"] += 1
        handler(datagram)

    # ------------------------------------------------------------ the rest

    def status(self) -> dict[str, Any]:
        state = "closed" if self.closed else "failed" if self.error is not None else "open"
        status: dict[str, Any] = {"name": self.name, "b32": self.b32, "ready": state == "open", "state": state,
                                  "sam_id": self.nickname, "style": self.style,
                                  "sam_version": sam.version_text(self.version), "datagrams": self._datagram_mode,
                                  "pending_accepts": len(self._accept_tasks), **self.stats}
        if self.error is not None and not self.closed:
            status["error"] = self.error
        return status

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        accepting = list(self._accept_tasks)
        for task in accepting:
            task.cancel()
        await asyncio.gather(*accepting, return_exceptions=True)
        await self._tasks.close()
        for control in self._controls:
            await control.close()
        for udp in self._udp.values():
            udp.close()
        self._network._sessions.discard(self)


class SamNetwork:
    """I2PNetwork over a SAM v3.1-3.3 bridge at host:port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 7656, *, resolver: Resolver | None = None,
                 udp_port: int | None = None, datagrams: bool = True, pending_accepts: int = 2,
                 user: str | None = None, password: str | None = None, max_version: str = sam.MAX_VERSION,
                 reply_timeout: float = 30.0, session_timeout: float = 180.0):
        if not 1 <= pending_accepts <= MAX_PENDING_ACCEPTS:
            raise ValueError(f"pending_accepts must be 1-{MAX_PENDING_ACCEPTS}")
        self.host = host
        self.port = port
        self.udp_port = udp_port if udp_port is not None else port - 1   # the SAM default: 7655 beside 7656
        self.resolver = resolver
        self.datagrams = datagrams
        self.pending_accepts = pending_accepts
        self.user = user
        self.password = password
        self.max_version = max_version
        self.reply_timeout = reply_timeout
        self.session_timeout = session_timeout
        """samv3.md: SESSION CREATE answers once tunnels are built (i2pd: in steps of 20 s); be patient."""
        self.version: tuple[int, int] | None = None
        self._bridge_udp: tuple[str, int] = (host, self.udp_port)
        self._sessions: set[SamSession] = set()
        self._lookups: OrderedDict[bytes, Destination] = OrderedDict()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _connect(self, timeout: float, what: str) -> _Connection:
        """A new connection to the bridge, past HELLO (samv3.md "SAM Connection Handshake")."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port)
        except TimeoutError:
            raise ConnectTimeout(f"the SAM bridge at {self.address} did not accept a connection "
                                 f"within {timeout:.0f} s") from None
        except OSError as exc:
            raise NetworkError(f"cannot reach the SAM bridge at {self.address}: {exc.strerror or exc}") from None
        writer = SamStreamWriter(transport, protocol, reader, loop)
        connection = _Connection(reader, writer, (3, 0))
        try:
            writer.write(sam.hello(max_version=self.max_version, user=self.user, password=self.password))
            connection.version = sam.parse_hello_reply(await _read_line(reader, min(timeout, self.reply_timeout),
                                                                        f"HELLO before {what}"))
        except BaseException:
            connection.abort()
            raise
        self.version = connection.version
        return connection

    async def _open_control(self, make_line: Callable[[tuple[int, int]], bytes], label: str,
                            on_close: Callable[[str], None], timeout: float,
                            sent: Callable[[_Control], None] | None = None) -> tuple[_Control, bytes]:
        """A connection holding a session: SESSION CREATE (made for the version HELLO gave) sent,
        RESULT=OK read, the watcher running. Returns it and the SESSION STATUS line.
        `sent` is called once the CREATE is written, while the bridge makes the session."""
        control = _Control(await self._connect(self.reply_timeout, "SESSION CREATE"), label, on_close)
        control.start()
        request: asyncio.Future[bytes] | None = None
        try:
            request = asyncio.ensure_future(control.request(make_line(control.connection.version), "SESSION",
                                                            "STATUS", timeout, "SESSION CREATE"))
            if sent is not None:
                await asyncio.sleep(0)          # request() has written the line
                sent(control)
            reply = await request
            sam.parse_session_status(reply, f"the session {label}")
        except BaseException:
            if request is not None:
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
            await control.close()
            raise
        control.holds_session = True
        return control, reply

    async def _open_datagram_sessions(self, control: _Control, keys_b64: str, options: Mapping[str, str],
                                      nickname: str, label: str, on_close: Callable[[str], None],
                                      udp: dict[str, _DatagramSocket]) -> list[_Control]:
        """DATAGRAM and RAW sessions on the keys of the session `control` holds, asked for together (the
        module's docstring says why), each forwarding to a local UDP socket put in `udp`. All or none:
        on a failure the one made is closed, and a DUPLICATED_DEST (Java, ours) is the error raised."""
        local_ip = control.connection.writer.get_extra_info("sockname")[0]
        bridge_ip = control.connection.writer.get_extra_info("peername")[0]
        for style in ("DATAGRAM", "RAW"):
            if style not in udp:
                udp[style] = await _DatagramSocket.open(style, local_ip, bridge_ip)
        ids = _datagram_ids(nickname)
        lines = {style: sam.session_create(style, ids[style], keys_b64, options, PORT=udp[style].address[1],
                                           HOST=udp[style].address[0]) for style in ("DATAGRAM", "RAW")}
        results = await asyncio.gather(*(self._open_control(lambda version, line=line: line, f"{label} {style}",
                                                            on_close, self.session_timeout)
                                         for style, line in lines.items()), return_exceptions=True)
        made = [result[0] for result in results if not isinstance(result, BaseException)]
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            for made_control in made:
                made_control.holds_session = False
                await made_control.close()
            refused = [exc for exc in failed if isinstance(exc, SamRefused) and exc.result == sam.DUPLICATED_DEST]
            raise (refused or failed)[0]
        return made

    async def open_session(self, keys: PrivateKeys | None = None, options: Mapping[str, str] | None = None,
                           name: str | None = None) -> SamSession:
        label = name or (keys.destination.b32_address[:16] if keys is not None else "transient")
        nickname = sam.check_nickname(f"{_NAME_CHARS.sub('', label)[:24] or 'pyi2p'}-{secrets.token_hex(4)}")
        options = dict(options or {})
        sam.session_options(options)        # a bad option fails here, before anything is opened
        holder: list[SamSession] = []

        def closed(reason: str) -> None:
            if holder:
                holder[0]._control_closed(reason)

        def create(version: tuple[int, int]) -> bytes:
            style = "MASTER" if version >= sam.PRIMARY_VERSION else "STREAM"   # MASTER: i2pd knows no PRIMARY
            return sam.session_create(style, nickname, sam.private_keys_b64(keys) if keys is not None else None,
                                      options)

        udp: dict[str, _DatagramSocket] = {}
        opening: list[asyncio.Task[list[_Control]]] = []

        def sent(control: _Control) -> None:
            if keys is not None and self.datagrams:     # made now, with the destination (the module docstring)
                opening.append(asyncio.get_running_loop().create_task(self._open_datagram_sessions(
                    control, sam.private_keys_b64(keys), options, nickname, label, closed, udp)))

        try:
            control, reply = await self._open_control(create, label, closed, self.session_timeout, sent)
        except BaseException:
            await _drop_datagram_sessions(opening, udp)
            raise
        try:
            session_keys = sam.parse_session_keys(sam.parse_reply(reply, "SESSION", "STATUS"))
            if session_keys.keys is not None:
                destination = session_keys.keys.destination
            else:
                answer = await control.request(sam.naming_lookup("ME"), "NAMING", "REPLY", self.reply_timeout,
                                               "NAMING LOOKUP ME")
                found = sam.parse_naming_reply(answer, "ME")
                if found is None:
                    raise SamProtocolError("the SAM bridge does not tell this session's destination")
                destination = found
            if keys is not None and destination != keys.destination:
                raise SamProtocolError("the SAM bridge opened another destination than the one asked for")
            session = SamSession(self, label, nickname, control, session_keys, destination, udp,
                                 opening[0] if opening else None)
            holder.append(session)
            if control.closed:
                raise SamClosed(control.error or "closed")
            await session._setup()
        except BaseException:
            if holder:
                await holder[0].close()
            else:
                await control.close()
            await _drop_datagram_sessions(opening, udp)
            raise
        self._sessions.add(session)
        return session

    async def _lookup(self, name: str, timeout: float) -> Destination | None:
        """NAMING LOOKUP on a connection of its own, so a slow lookup holds up nothing else."""
        connection = await self._connect(timeout, "NAMING LOOKUP")
        try:
            connection.writer.write(sam.naming_lookup(name))
            try:
                line = await _read_line(connection.reader, timeout, f"NAMING LOOKUP {name}")
            except ConnectTimeout:
                return None
            return sam.parse_naming_reply(line, name)
        finally:
            connection.abort()

    async def _lookup_hash(self, dest_hash: bytes, timeout: float) -> Destination:
        found = self._lookups.get(dest_hash)
        if found is not None:
            self._lookups.move_to_end(dest_hash)
            return found
        b32 = b32encode(dest_hash) + ".b32.i2p"
        found = await self._lookup(b32, timeout)
        if found is None:
            raise PeerNotFound(f"{b32}: no LeaseSet found (the destination is offline or unknown)")
        if found.hash != dest_hash:
            raise SamProtocolError(f"the SAM bridge answered the lookup of {b32[:16]}... with another destination")
        self._lookups[dest_hash] = found
        while len(self._lookups) > LOOKUP_CACHE:
            self._lookups.popitem(last=False)
        return found

    def status(self) -> dict[str, Any]:
        return {"kind": "sam", "bridge": self.address,
                "sam_version": sam.version_text(self.version) if self.version else None,
                "sessions": len(self._sessions)}

    async def close(self) -> None:
        for session in list(self._sessions):
            await session.close()


def _datagram_ids(nickname: str) -> dict[str, str]:
    """The SAM IDs of a session's DATAGRAM and RAW (sub)sessions."""
    return {"DATAGRAM": f"{nickname}-d", "RAW": f"{nickname}-r"}


async def _drop_datagram_sessions(opening: list[asyncio.Task[list[_Control]]], udp: dict[str, _DatagramSocket]) -> None:
    """A session that failed to open: the DATAGRAM and RAW sessions asked for beside it go too."""
    for task in opening:
        task.cancel()
        for result in await asyncio.gather(task, return_exceptions=True):
            if isinstance(result, list):
                for control in result:
                    control.holds_session = False
                    await control.close()
    for socket_ in udp.values():
        socket_.close()


def _label(to: str | Destination) -> str:
    return to.b32_address if isinstance(to, Destination) else to
