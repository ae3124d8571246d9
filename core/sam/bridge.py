"""The SAM v3.3 bridge: a TCP control port (7656) and a UDP datagram port (7655) on a Backend.

    bridge = SamBridge(backend, SamConfig(port=7656, udp_port=7655))
    await bridge.start()
    ...
    await bridge.stop()

Each TCP connection starts with HELLO, then is either a control socket (SESSION CREATE makes it
own a session until it closes), a stream socket (STREAM CONNECT/ACCEPT turn it into the data
of one I2P stream), a forwarding socket (STREAM FORWARD), or a utility socket (NAMING, DEST...).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from core.clock import Clock, Rng, SystemClock
from core.data.encoding import b32decode, b64decode, b64encode
from core.data.errors import ParseError, ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.datagram import PROTO_STREAMING, Datagram1, Datagram2, Datagram3

from .backend import AddressBook, Backend, BackendError, IncomingStream, PeerNotFound, ReceivedDatagram
from .parser import (CANT_REACH_PEER, I2P_ERROR, INVALID_ID, INVALID_KEY, KEY_NOT_FOUND, LEASESET_NOT_FOUND, MAX_LINE,
                     NOVERSION, OK, TIMEOUT, Command, LineBuffer, LineTooLong, SamError, format_error, format_line,
                     negotiate_version, parse_bool, parse_datagram_header, parse_int, parse_line, parse_sig_type,
                     version_tuple)
from .sessions import (DATAGRAM, DATAGRAM2, DATAGRAM3, DATAGRAM_STYLES, FORBIDDEN_RAW_PROTOCOLS, MAX_RAW_SIZE,
                       MAX_REPLIABLE_SIZE, PRIMARY, RAW, STREAM, DestinationSession, SessionRegistry, Subsession,
                       SubsessionSpec, check_nickname, check_primary_options, parse_style, router_options,
                       subsession_spec)

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
PORTS_VERSION = (3, 2)
"""samv3.md: FROM_PORT/TO_PORT in received-stream and datagram headers from SAM 3.2 on."""
_HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_DEST_B64_MIN = 516   # samv3.md: a Destination is 516 or more base 64 characters
HELP_TEXT = ("HELLO VERSION, SESSION CREATE|ADD|REMOVE, STREAM CONNECT|ACCEPT|FORWARD, DATAGRAM SEND, RAW SEND, "
             "NAMING LOOKUP, DEST GENERATE, AUTH ENABLE|DISABLE|ADD|REMOVE, PING, QUIT|STOP|EXIT, HELP")


@dataclass(frozen=True, slots=True)
class SamConfig:
    host: str = "127.0.0.1"
    port: int = 7656
    udp_host: str = "127.0.0.1"
    udp_port: int | None = 7655
    """None: no UDP port (datagrams only on the control socket)."""
    max_line: int = MAX_LINE
    max_connections: int = 512
    max_sessions: int = 128
    hello_timeout: float = 60.0
    idle_timeout: float = 300.0
    """A connection without a session, stream or forward that sends no full line this long is dropped."""
    session_create_timeout: float = 600.0
    connect_timeout: float = 60.0
    lookup_timeout: float = 30.0
    accept_hold: float = 10.0
    """How long an incoming stream waits for a STREAM ACCEPT before it is reset."""
    max_backlog: int = 32
    max_pending_accepts: int = 64
    forward_connect_timeout: float = 3.0
    max_control_backlog: int = 1024 * 1024
    """Bytes queued to a control socket beyond which received datagrams are dropped."""
    max_udp_lookups: int = 16
    default_sig_type: int = 0
    """samv3.md: DSA_SHA1 when SIGNATURE_TYPE is not given (clients should ask for 7)."""
    default_crypto_type: int = 0


class SamAuth:
    """USER/PASSWORD checking for HELLO (samv3.md "Authorization"); passwords are kept only as HMACs."""

    def __init__(self, users: dict[str, str] | None = None, *, enabled: bool = False,
                 on_change: Callable[[SamAuth], None] | None = None):
        self._key = os.urandom(32)
        self._users: dict[str, bytes] = {}
        for user, password in (users or {}).items():
            self._users[user] = self._digest(password)
        self.enabled = enabled and bool(self._users)
        self.on_change = on_change

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    def check(self, user: str | None, password: str | None) -> bool:
        if not self.enabled:
            return True
        if user is None or password is None:
            return False
        expected = self._users.get(user)
        given = self._digest(password)
        return expected is not None and hmac.compare_digest(expected, given)

    def enable(self) -> None:
        if not self._users:
            raise SamError(I2P_ERROR, "add a user before enabling authorization")
        self.enabled = True
        self._changed()

    def disable(self) -> None:
        self.enabled = False
        self._changed()

    def add(self, user: str, password: str) -> None:
        self._users[user] = self._digest(password)
        self._changed()

    def remove(self, user: str) -> None:
        if user not in self._users:
            raise SamError(I2P_ERROR, f"no user {user!r}")
        if self.enabled and len(self._users) == 1:
            raise SamError(I2P_ERROR, "cannot remove the last user while authorization is enabled")
        del self._users[user]
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


class _ClientGone(Exception):
    """The client closed its connection while a command was pending."""


class _SessionClosed(Exception):
    """The session a pending STREAM ACCEPT waited on has closed."""


def _dest_line(remote: Destination, from_port: int, to_port: int, version: tuple[int, int]) -> bytes:
    """samv3.md "Accept Response": the peer's destination, with ports from 3.2 on."""
    if version >= PORTS_VERSION:
        return f"{remote.b64} FROM_PORT={from_port} TO_PORT={to_port}\n".encode("ascii")
    return f"{remote.b64}\n".encode("ascii")


async def _pump(i2p_reader: Any, i2p_writer: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                prefix: bytes = b"") -> None:
    """Move bytes both ways until both sides have closed; an error on either side resets both."""

    async def upstream() -> None:
        if prefix:
            i2p_writer.write(prefix)
            await i2p_writer.drain()
        while data := await reader.read(READ_CHUNK):
            i2p_writer.write(data)
            await i2p_writer.drain()
        i2p_writer.write_eof()

    async def downstream() -> None:
        while data := await i2p_reader.read(READ_CHUNK):
            writer.write(data)
            await writer.drain()
        if not writer.is_closing() and writer.can_write_eof():
            writer.write_eof()

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    failed = False
    try:
        for future in asyncio.as_completed(tasks):
            try:
                await future
            except Exception as exc:  # noqa: BLE001 - any failure ends the stream both ways
                log.debug("SAM stream ended: %s", exc.__class__.__name__)
                failed = True
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failed:
            i2p_writer.abort()
            if writer.transport is not None:
                writer.transport.abort()
        else:
            i2p_writer.close()
            writer.close()


class SamBridge:
    def __init__(self, backend: Backend, config: SamConfig = SamConfig(), *, address_book: AddressBook | None = None,
                 auth: SamAuth | None = None, clock: Clock | None = None, rng: Rng = os.urandom):
        self.backend = backend
        self.config = config
        self.address_book = address_book
        self.auth = auth or SamAuth()
        self.clock = clock or SystemClock()
        self.rng = rng
        self.registry = SessionRegistry(config.max_sessions)
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task] = set()
        self._udp_lookups = 0
        self.dropped_datagrams = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; an OSError names the address that could not be bound (TCP commands or UDP datagrams)."""
        cfg = self.config
        try:
            self._server = await asyncio.start_server(self._on_client, cfg.host, cfg.port, limit=READ_CHUNK)
        except OSError as exc:
            raise OSError(exc.errno, f"SAM TCP port {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
        if cfg.udp_port is not None:
            loop = asyncio.get_running_loop()
            try:
                self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                                   local_addr=(cfg.udp_host, cfg.udp_port))
            except OSError as exc:
                self._server.close()
                raise OSError(exc.errno, f"SAM UDP datagram port {cfg.udp_host}:{cfg.udp_port}: "
                                         f"{exc.strerror or exc} (--sam-udp-port, or sam_udp_port in config.toml, "
                                         "changes it)") from None
            except BaseException:
                self._server.close()
                raise
        log.info("SAM bridge on %s:%d, datagrams on %s", cfg.host, self.port, self.udp_address)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1] if self._server else self.config.port

    @property
    def udp_address(self) -> tuple[str, int] | None:
        return self._udp.get_extra_info("sockname")[:2] if self._udp is not None else None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.abort()
        tasks = [c.task for c in self._clients if c.task is not None] + list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for session in self.registry.sessions():
            await self._close_session(session)
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SamBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(self, reader, writer)
        if len(self._clients) >= self.config.max_connections:
            writer.write(format_line("HELLO", "REPLY", RESULT=I2P_ERROR, MESSAGE="too many connections"))
            writer.close()
            return
        self._clients.add(client)
        client.task = asyncio.current_task()
        try:
            await client.run()
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - one client's failure must not touch the others
            log.exception("SAM connection failed")
        finally:
            self._clients.discard(client)
            await client.cleanup()

    # ------------------------------------------------------------ sessions

    def _attach(self, session: DestinationSession) -> None:
        backend = session.backend
        backend.set_stream_handler(lambda incoming: self._on_incoming_stream(session, incoming))
        backend.set_datagram_handler(lambda received: self._on_datagram(session, received))

    async def _close_session(self, session: DestinationSession) -> None:
        if session.closed:
            return
        session.closed = True
        self.registry.unregister(session)
        for sub in list(session.subsessions.values()):
            self._close_subsession(sub)
        if session.backend is not None:
            session.backend.set_stream_handler(None)
            session.backend.set_datagram_handler(None)
            try:
                await session.backend.close()
            except Exception:  # noqa: BLE001 - the session is gone either way
                log.exception("closing a SAM session's router session failed")
        log.info("SAM session %s closed", session.nickname)

    def _close_subsession(self, sub: Subsession) -> None:
        sub.closed = True
        while sub.accept_waiters:
            waiter = sub.accept_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_SessionClosed())
        while sub.backlog:
            incoming, timer = sub.backlog.popleft()
            timer.cancel()
            incoming.writer.abort()
        forward, sub.forward = sub.forward, None
        if forward is not None:
            forward.client.abort()

    async def _udp_target(self, spec: SubsessionSpec, peer_host: str) -> tuple[str, int] | None:
        if spec.forward_port is None:
            return None
        host = spec.forward_host or peer_host
        try:
            ipaddress.ip_address(host)
            return host, spec.forward_port
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, spec.forward_port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise SamError(I2P_ERROR, f"cannot resolve HOST {host!r}: {exc}") from None
        for family, _, _, _, address in infos:
            if family == socket.AF_INET or (family == socket.AF_INET6 and self._udp_family() == socket.AF_INET6):
                return address[0], address[1]
        raise SamError(I2P_ERROR, f"no usable address for HOST {host!r}")

    def _udp_family(self) -> int:
        if self._udp is None:
            return socket.AF_INET
        return self._udp.get_extra_info("socket").family

    # ------------------------------------------------------------ naming

    async def resolve(self, name: str, session: DestinationSession | None = None) -> Destination | None:
        """A destination from base64, a .b32.i2p address or a host name; None when it is not found,
        SamError(INVALID_KEY) when the name cannot be one."""
        lowered = name.lower()
        if lowered.endswith(".b32.i2p"):
            label = lowered[:-len(".b32.i2p")]
            if len(label) != 52:
                raise SamError(INVALID_KEY, "b33 (encrypted leaseset) addresses are not supported"
                               if len(label) >= 56 else "bad b32 address")
            try:
                dest_hash = b32decode(label)
            except ParseError:
                raise SamError(INVALID_KEY, "bad b32 address") from None
            info = await self.backend.lookup(dest_hash, session=session.backend if session else None,
                                             timeout=self.config.lookup_timeout)
            return info.destination if info is not None else None
        if len(name) >= _DEST_B64_MIN and not lowered.endswith(".i2p"):
            try:
                return Destination.from_b64(name)
            except ProtocolError:
                raise SamError(INVALID_KEY, "not a valid destination") from None
        if not lowered or len(lowered) > 255 or not set(lowered) <= _HOSTNAME_CHARS:
            raise SamError(INVALID_KEY, "not a valid host name")
        if self.address_book is None:
            return None
        found = self.address_book(lowered)
        if asyncio.iscoroutine(found) or isinstance(found, asyncio.Future):
            found = await found
        return found

    async def resolve_for_sending(self, name: str, session: DestinationSession | None) -> Destination:
        """resolve() for STREAM CONNECT and datagrams: unknown b32 is CANT_REACH_PEER, unknown host INVALID_KEY."""
        destination = await self.resolve(name, session)
        if destination is None:
            if name.lower().endswith(".b32.i2p"):
                raise SamError(CANT_REACH_PEER, "no leaseset found for that address")
            raise SamError(INVALID_KEY, "unknown host name")
        return destination

    # ------------------------------------------------------------ incoming streams

    def _on_incoming_stream(self, session: DestinationSession, incoming: IncomingStream) -> None:
        sub = None if session.closed else session.route(PROTO_STREAMING, incoming.to_port)
        if sub is None or sub.closed:
            incoming.writer.abort()
            return
        if sub.forward is not None:
            self._spawn(sub.forward.serve(incoming))
            return
        self._hand_to_acceptor(sub, incoming)

    def _hand_to_acceptor(self, sub: Subsession, incoming: IncomingStream) -> None:
        while sub.accept_waiters:
            waiter = sub.accept_waiters.popleft()
            if not waiter.done():
                waiter.set_result(incoming)
                return
        if len(sub.backlog) >= self.config.max_backlog:
            incoming.writer.abort()
            return
        loop = asyncio.get_running_loop()
        entry: list[Any] = [incoming, None]
        entry[1] = loop.call_later(self.config.accept_hold, self._expire_held, sub, entry)
        sub.backlog.append(entry)

    def _expire_held(self, sub: Subsession, entry: list[Any]) -> None:
        try:
            sub.backlog.remove(entry)
        except ValueError:
            return
        entry[0].writer.abort()

    def _serve_backlog(self, sub: Subsession) -> None:
        """A new ACCEPT or FORWARD takes the streams that arrived before it."""
        while sub.backlog and (sub.forward is not None or any(not w.done() for w in sub.accept_waiters)):
            incoming, timer = sub.backlog.popleft()
            timer.cancel()
            if sub.forward is not None:
                self._spawn(sub.forward.serve(incoming))
            else:
                self._hand_to_acceptor(sub, incoming)

    # ------------------------------------------------------------ datagrams

    def _decode(self, session: DestinationSession, sub: Subsession, received: ReceivedDatagram
                ) -> tuple[str, bytes] | None:
        """(the sender as SAM shows it, payload); the sender is a base64 destination, or for Datagram3
        the base64 of its hash (samv3.md "Datagram 2/3"). None for a malformed or forged datagram."""
        try:
            if sub.style == DATAGRAM:
                datagram = Datagram1.parse(received.payload)
                if not datagram.verify():
                    return None
                return datagram.from_destination.b64, datagram.payload
            if sub.style == DATAGRAM2:
                datagram2 = Datagram2.parse(received.payload)
                if not datagram2.verify(session.keys.destination.hash, self.clock.time()):
                    return None
                return datagram2.from_destination.b64, datagram2.payload
            datagram3 = Datagram3.parse(received.payload)
            return b64encode(datagram3.from_hash), datagram3.payload
        except ProtocolError:
            return None

    def _on_datagram(self, session: DestinationSession, received: ReceivedDatagram) -> None:
        sub = None if session.closed else session.route(received.protocol, received.to_port)
        if sub is None:
            self.dropped_datagrams += 1
            return
        with_ports = session.version >= PORTS_VERSION
        ports = {"FROM_PORT": received.from_port, "TO_PORT": received.to_port} if with_ports else {}
        if sub.style == RAW:
            payload = received.payload
            if sub.udp_target is not None:
                header = b""
                if sub.spec.header:   # samv3.md "Forwarding Raw or Repliable Datagrams", HEADER=true
                    header = (f"FROM_PORT={received.from_port} TO_PORT={received.to_port} "
                              f"PROTOCOL={received.protocol}\n").encode("ascii")
                self._send_udp(header + payload, sub.udp_target)
            else:
                extra = dict(ports, PROTOCOL=received.protocol) if with_ports else {}
                session.control.send_datagram(format_line("RAW", "RECEIVED", SIZE=len(payload), **extra) + payload)
            return
        decoded = self._decode(session, sub, received)
        if decoded is None:
            self.dropped_datagrams += 1
            return
        sender, payload = decoded
        if sub.udp_target is not None:
            port_text = f" FROM_PORT={received.from_port} TO_PORT={received.to_port}" if with_ports else ""
            self._send_udp(f"{sender}{port_text}\n".encode("ascii") + payload, sub.udp_target)
        else:
            session.control.send_datagram(format_line("DATAGRAM", "RECEIVED", DESTINATION=sender, SIZE=len(payload),
                                                      **ports) + payload)

    def _send_udp(self, packet: bytes, target: tuple[str, int]) -> None:
        if self._udp is None:
            self.dropped_datagrams += 1
            return
        try:
            self._udp.sendto(packet, target)
        except OSError:
            self.dropped_datagrams += 1

    def send_datagram(self, sub: Subsession, remote: Destination, payload: bytes, options: Command) -> None:
        """One datagram of `sub`'s style; per-datagram options override the session's (samv3.md 3.2/3.3)."""
        spec = sub.spec
        limit = MAX_RAW_SIZE if sub.style == RAW else MAX_REPLIABLE_SIZE
        if not 1 <= len(payload) <= limit:
            raise SamError(I2P_ERROR, f"datagram size must be 1-{limit}, got {len(payload)}")
        from_port = parse_int(options, "FROM_PORT", low=0, high=65535, default=spec.from_port)
        to_port = parse_int(options, "TO_PORT", low=0, high=65535, default=spec.to_port)
        protocol = spec.send_protocol
        if sub.style == RAW:
            protocol = parse_int(options, "PROTOCOL", low=0, high=255, default=spec.protocol)
            if protocol in FORBIDDEN_RAW_PROTOCOLS:
                raise SamError(I2P_ERROR, f"PROTOCOL={protocol} is not allowed for RAW")
        send_options: dict[str, Any] = {}
        for key in ("SEND_TAGS", "TAG_THRESHOLD", "EXPIRES"):
            value = parse_int(options, key, low=0, high=2**31 - 1)
            if value is not None:
                send_options[key] = value
        if options.get("SEND_LEASESET") is not None:
            send_options["SEND_LEASESET"] = parse_bool(options, "SEND_LEASESET")
        keys = sub.owner.keys
        if sub.style == DATAGRAM:
            data = Datagram1.create(keys, payload).to_bytes()
        elif sub.style == DATAGRAM2:
            data = Datagram2.create(keys, payload, remote.hash).to_bytes()
        elif sub.style == DATAGRAM3:
            data = Datagram3(keys.destination.hash, payload).to_bytes()
        else:
            data = payload
        backend = sub.owner.backend
        if backend is None or sub.closed:
            raise SamError(I2P_ERROR, "session closed")
        try:
            backend.send_datagram(protocol, data, remote, from_port=from_port, to_port=to_port,
                                  options=send_options or None)
        except BackendError as exc:
            raise SamError(I2P_ERROR, str(exc)) from None

    def _on_udp(self, packet: bytes, addr: Any) -> None:
        """samv3.md "Sending Repliable or Raw Datagrams" through the UDP port; bad packets are dropped."""
        try:
            header, payload = parse_datagram_header(packet)
            sub = self.registry.find_subsession(header.nickname, *DATAGRAM_STYLES)
        except ProtocolError as exc:
            log.debug("SAM UDP packet dropped: %s", exc.reason)
            self.dropped_datagrams += 1
            return
        options = Command("DATAGRAM", "SEND", header.options)
        name = header.destination
        if len(name) >= _DEST_B64_MIN and not name.lower().endswith(".i2p"):
            try:
                self.send_datagram(sub, Destination.from_b64(name), payload, options)
            except ProtocolError as exc:
                log.debug("SAM UDP datagram not sent: %s", exc.reason)
                self.dropped_datagrams += 1
            return
        if self._udp_lookups >= self.config.max_udp_lookups:
            self.dropped_datagrams += 1
            return
        self._udp_lookups += 1
        self._spawn(self._send_after_lookup(sub, name, payload, options))

    async def _send_after_lookup(self, sub: Subsession, name: str, payload: bytes, options: Command) -> None:
        try:
            remote = await self.resolve_for_sending(name, sub.owner)
            self.send_datagram(sub, remote, payload, options)
        except ProtocolError as exc:
            log.debug("SAM UDP datagram not sent: %s", exc.reason)
            self.dropped_datagrams += 1
        finally:
            self._udp_lookups -= 1


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, bridge: SamBridge):
        self.bridge = bridge

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.bridge._on_udp(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SAM UDP socket error: %s", exc)


class _Forward:
    """An active STREAM FORWARD: incoming streams are connected to host:port."""

    def __init__(self, bridge: SamBridge, client: _Client, host: str, port: int, silent: bool, use_ssl: bool):
        self.bridge = bridge
        self.client = client
        self.host = host
        self.port = port
        self.silent = silent
        self.use_ssl = use_ssl

    async def serve(self, incoming: IncomingStream) -> None:
        context = None
        if self.use_ssl:
            # the local server is the client's own; like Java I2P, its certificate is not checked
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=context, limit=READ_CHUNK),
                self.bridge.config.forward_connect_timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            log.debug("SAM forward to %s:%d failed: %s", self.host, self.port, exc)
            incoming.writer.abort()
            return
        if not self.silent:
            writer.write(_dest_line(incoming.remote, incoming.from_port, incoming.to_port, self.client.version))
        await _pump(incoming.reader, incoming.writer, reader, writer)


class _Client:
    """One TCP connection to the bridge."""

    def __init__(self, bridge: SamBridge, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.bridge = bridge
        self.reader = reader
        self.writer = writer
        self.buffer = LineBuffer(bridge.config.max_line)
        self.version: tuple[int, int] = (3, 0)
        self.session: DestinationSession | None = None
        self.forwarding: Subsession | None = None
        self.task: asyncio.Task | None = None
        self.eof = False
        self.handed_off = False
        peer = writer.get_extra_info("peername")
        self.peer_host = peer[0] if isinstance(peer, tuple) else "127.0.0.1"

    # ------------------------------------------------------------ I/O

    async def _fill(self) -> None:
        try:
            data = await self.reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            data = b""
        if data:
            self.buffer.feed(data)
        else:
            self.eof = True

    async def read_line(self, timeout: float | None) -> bytes | None:
        """The next line; None at end of input. TimeoutError, LineTooLong."""
        async with asyncio.timeout(timeout):
            while True:
                line = self.buffer.next_line()
                if line is not None:
                    return line
                if self.eof:
                    return None
                await self._fill()

    async def read_exact(self, n: int, timeout: float | None) -> bytes | None:
        async with asyncio.timeout(timeout):
            while True:
                data = self.buffer.take(n)
                if data is not None:
                    return data
                if self.eof:
                    return None
                await self._fill()

    async def watching(self, awaitable: Awaitable[Any]) -> Any:
        """Await while reading ahead, so a client that goes away cancels what it asked for."""
        task = asyncio.ensure_future(awaitable)
        try:
            while not task.done():
                if self.eof or len(self.buffer) > self.bridge.config.max_line + READ_CHUNK:
                    await asyncio.wait({task})
                    break
                reading = asyncio.ensure_future(self._fill())
                await asyncio.wait({task, reading}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)
                if self.eof and not task.done():
                    raise _ClientGone()
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            self.eof = True

    async def reply(self, verb: str, action: str, **options: Any) -> None:
        await self.send(format_line(verb, action, **options))

    async def error(self, verb: str, exc: SamError) -> None:
        await self.send(format_error(verb, exc.result, exc.reason))

    def send_datagram(self, data: bytes) -> None:
        """A DATAGRAM/RAW RECEIVED for the control socket; dropped when the client does not read."""
        transport = self.writer.transport
        if self.writer.is_closing() or transport.get_write_buffer_size() > self.bridge.config.max_control_backlog:
            self.bridge.dropped_datagrams += 1
            return
        self.writer.write(data)

    def abort(self) -> None:
        if self.writer.transport is not None and not self.writer.transport.is_closing():
            self.writer.transport.abort()

    async def cleanup(self) -> None:
        forwarding, self.forwarding = self.forwarding, None
        if forwarding is not None and forwarding.forward is not None and forwarding.forward.client is self:
            forwarding.forward = None
        session, self.session = self.session, None
        if session is not None:
            await self.bridge._close_session(session)
        if not self.handed_off and not self.writer.is_closing():
            self.writer.close()

    # ------------------------------------------------------------ the conversation

    async def run(self) -> None:
        if not await self._hello():
            return
        cfg = self.bridge.config
        while True:
            idle = self.session is None and self.forwarding is None
            try:
                line = await self.read_line(cfg.idle_timeout if idle else None)
            except TimeoutError:
                await self.reply("SESSION", "STATUS", RESULT=I2P_ERROR, MESSAGE="timeout waiting for a command")
                return
            except LineTooLong as exc:
                await self.reply("SESSION", "STATUS", RESULT=I2P_ERROR, MESSAGE=exc.reason)
                return
            if line is None:
                return
            if not line.strip():
                continue
            try:
                command = parse_line(line)
            except ParseError as exc:
                verb = line.split(maxsplit=1)[0].decode("utf-8", "replace").upper() if line.split() else ""
                await self.send(format_error(verb, I2P_ERROR, exc.reason))
                continue
            log.debug("SAM command %.20s %.20s", command.verb, command.action)
            try:
                keep_going = await self._dispatch(command)
            except _ClientGone:
                return
            except SamError as exc:
                await self.error(command.verb, exc)
                keep_going = True
            if not keep_going or self.eof and not len(self.buffer):
                return

    async def _hello(self) -> bool:
        cfg = self.bridge.config
        try:
            line = await self.read_line(cfg.hello_timeout)
        except TimeoutError:
            await self.reply("HELLO", "REPLY", RESULT=I2P_ERROR, MESSAGE="timeout waiting for HELLO")
            return False
        except LineTooLong as exc:
            await self.reply("HELLO", "REPLY", RESULT=I2P_ERROR, MESSAGE=exc.reason)
            return False
        if line is None:
            return False
        try:
            command = parse_line(line)
            if (command.verb, command.action) != ("HELLO", "VERSION"):
                raise SamError(I2P_ERROR, "must start with HELLO VERSION")
            version = negotiate_version(command.get("MIN"), command.get("MAX"))
        except (ParseError, SamError) as exc:
            await self.reply("HELLO", "REPLY", RESULT=I2P_ERROR, MESSAGE=exc.reason)
            return False
        if version is None:
            await self.reply("HELLO", "REPLY", RESULT=NOVERSION)
            return False
        if not self.bridge.auth.check(command.options.get("USER"), command.options.get("PASSWORD")):
            await self.reply("HELLO", "REPLY", RESULT=I2P_ERROR, MESSAGE="authorization failed")
            return False
        self.version = version_tuple(version)
        await self.reply("HELLO", "REPLY", RESULT=OK, VERSION=version)
        return True

    async def _dispatch(self, command: Command) -> bool:
        """Run one command; False closes the connection."""
        verb, action = command.verb, command.action
        handler = _HANDLERS.get((verb, action)) or _HANDLERS.get((verb, ""))
        if handler is None:
            what = f"{verb} {action}".strip()
            raise SamError(I2P_ERROR, f"unknown command {what}")
        return await handler(self, command)

    # ------------------------------------------------------------ simple commands

    async def _again_hello(self, command: Command) -> bool:
        raise SamError(I2P_ERROR, "HELLO was already done")

    async def _ping(self, command: Command) -> bool:
        await self.send(("PONG " + command.text if command.text else "PONG").encode("utf-8") + b"\n")
        return True

    async def _pong(self, command: Command) -> bool:
        return True

    async def _quit(self, command: Command) -> bool:
        return False

    async def _help(self, command: Command) -> bool:
        await self.reply("HELP", "REPLY", RESULT=OK, MESSAGE=HELP_TEXT)
        return True

    async def _dest_generate(self, command: Command) -> bool:
        cfg = self.bridge.config
        text = command.get("SIGNATURE_TYPE")
        sig_type = parse_sig_type(text) if text is not None else cfg.default_sig_type
        crypto_type = parse_int(command, "CRYPTO_TYPE", low=0, high=65535, default=cfg.default_crypto_type)
        try:
            keys = self.bridge.backend.generate_keys(sig_type, crypto_type)
        except (BackendError, ProtocolError) as exc:
            raise SamError(I2P_ERROR, f"cannot generate keys: {exc}") from None
        await self.reply("DEST", "REPLY", PUB=keys.destination.b64, PRIV=b64encode(keys.to_bytes()))
        return True

    async def _naming_lookup(self, command: Command) -> bool:
        name = command.get("NAME")
        if name is None:
            raise SamError(INVALID_KEY, "NAME is missing")
        want_options = parse_bool(command, "OPTIONS")
        try:
            if name == "ME":
                if self.session is None:
                    raise SamError(KEY_NOT_FOUND, "no session on this connection")
                destination = self.session.keys.destination
            else:
                destination = await self.watching(self.bridge.resolve(name, self.session))
            if destination is None:
                raise SamError(KEY_NOT_FOUND, "name not found")
            options: list[tuple[str, str]] = []
            if want_options:
                info = await self.watching(self.bridge.backend.lookup(
                    destination.hash, session=self.session.backend if self.session else None,
                    timeout=self.bridge.config.lookup_timeout))
                if info is None:
                    raise SamError(LEASESET_NOT_FOUND, "leaseset not found")
                # proposal 167: keys with '=' and anything with a newline are left out
                options = [("OPTION:" + k, v) for k, v in info.options.items()
                           if k and not any(c in k for c in '= \t"\\\n\r') and "\n" not in v and "\r" not in v]
        except SamError as exc:
            await self.reply("NAMING", "REPLY", RESULT=exc.result, NAME=name, MESSAGE=exc.reason)
            return True
        await self.send(format_line("NAMING", "REPLY", [("RESULT", OK), ("NAME", name),
                                                       ("VALUE", destination.b64), *options]))
        return True

    async def _auth(self, command: Command) -> bool:
        auth = self.bridge.auth
        action = command.action
        if action == "ENABLE":
            auth.enable()
        elif action == "DISABLE":
            auth.disable()
        elif action == "ADD":
            user, password = command.options.get("USER"), command.options.get("PASSWORD")
            if not user or password is None:
                raise SamError(I2P_ERROR, "USER and PASSWORD are required")
            auth.add(user, password)
        elif action == "REMOVE":
            user = command.options.get("USER")
            if not user:
                raise SamError(I2P_ERROR, "USER is required")
            auth.remove(user)
        else:
            raise SamError(I2P_ERROR, f"unknown command AUTH {action}".strip())
        await self.reply("AUTH", "STATUS", RESULT=OK)
        return True

    # ------------------------------------------------------------ sessions

    def _keys(self, command: Command, style: str) -> PrivateKeys:
        text = command.get("DESTINATION")
        if text is None:
            raise SamError(I2P_ERROR, "DESTINATION is missing")
        cfg = self.bridge.config
        if text.upper() == "TRANSIENT":
            sig_text = command.get("SIGNATURE_TYPE")
            sig_type = parse_sig_type(sig_text) if sig_text is not None else cfg.default_sig_type
            crypto_type = parse_int(command, "CRYPTO_TYPE", low=0, high=65535, default=cfg.default_crypto_type)
            try:
                return self.bridge.backend.generate_keys(sig_type, crypto_type)
            except (BackendError, ProtocolError) as exc:
                raise SamError(I2P_ERROR, f"cannot generate keys: {exc}") from None
        try:
            keys = PrivateKeys.parse(b64decode(text))
        except ProtocolError as exc:
            raise SamError(INVALID_KEY, f"not a valid private key: {exc.reason}") from None
        if keys.transient is not None:
            if style == DATAGRAM:
                raise SamError(I2P_ERROR, "offline signatures are not supported for STYLE=DATAGRAM")
            if keys.transient.expires <= self.bridge.clock.time():
                raise SamError(INVALID_KEY, "the offline signature has expired")
        return keys

    async def _session_create(self, command: Command) -> bool:
        bridge = self.bridge
        if self.session is not None:
            raise SamError(I2P_ERROR, "this connection already has a session")
        if self.forwarding is not None:
            raise SamError(I2P_ERROR, "this connection is forwarding a session")
        style = parse_style(command.get("STYLE"), allow_primary=True)
        nickname = check_nickname(command.get("ID"))
        spec = None
        if style == PRIMARY:
            check_primary_options(command)
        else:
            spec = subsession_spec(command, style, is_add=False)
        keys = self._keys(command, style)
        dest_hash = keys.destination.hash
        bridge.registry.reserve(nickname, dest_hash)
        session = DestinationSession(nickname, style, keys, self, self.version)
        try:
            if spec is not None:
                sub = Subsession(spec, session)
                sub.udp_target = await bridge._udp_target(spec, self.peer_host)
                session.subsessions[nickname] = sub
            try:
                session.backend = await self.watching(asyncio.wait_for(
                    bridge.backend.create_session(keys, router_options(command)),
                    bridge.config.session_create_timeout))
            except asyncio.TimeoutError:
                raise SamError(I2P_ERROR, "the router did not get the session ready in time") from None
            except BackendError as exc:
                raise SamError(I2P_ERROR, str(exc) or "the router refused the session") from None
        except BaseException:
            bridge.registry.release(nickname, dest_hash)
            raise
        bridge.registry.register(session)
        self.session = session
        bridge._attach(session)
        log.info("SAM session %s created, STYLE=%s", nickname, style)
        await self.reply("SESSION", "STATUS", RESULT=OK, DESTINATION=b64encode(keys.to_bytes()))
        return True

    async def _session_add(self, command: Command) -> bool:
        bridge = self.bridge
        primary = self.session
        if primary is None or not primary.is_primary:
            raise SamError(I2P_ERROR, "SESSION ADD needs a PRIMARY session on this connection")
        if command.get("DESTINATION") is not None:
            raise SamError(I2P_ERROR, "a subsession uses the PRIMARY session's destination")
        style = parse_style(command.get("STYLE"), allow_primary=False)
        spec = subsession_spec(command, style, is_add=True)
        bridge.registry.reserve(spec.nickname)
        try:
            primary.check_add(spec)
            sub = Subsession(spec, primary)
            sub.udp_target = await bridge._udp_target(spec, self.peer_host)
        except BaseException:
            bridge.registry.release(spec.nickname)
            raise
        primary.subsessions[spec.nickname] = sub
        bridge.registry.add_subsession(sub)
        await self.reply("SESSION", "STATUS", RESULT=OK, ID=spec.nickname, MESSAGE=f"ADD {spec.nickname}")
        return True

    async def _session_remove(self, command: Command) -> bool:
        primary = self.session
        if primary is None or not primary.is_primary:
            raise SamError(I2P_ERROR, "SESSION REMOVE needs a PRIMARY session on this connection")
        nickname = check_nickname(command.get("ID"))
        if set(command.options) - {"ID"}:
            raise SamError(I2P_ERROR, "SESSION REMOVE takes only ID")
        sub = primary.subsessions.pop(nickname, None)
        if sub is None:
            raise SamError(INVALID_ID, f"no subsession {nickname!r} in this session")
        self.bridge.registry.remove_subsession(sub)
        self.bridge._close_subsession(sub)
        await self.reply("SESSION", "STATUS", RESULT=OK, ID=nickname, MESSAGE=f"REMOVE {nickname}")
        return True

    # ------------------------------------------------------------ streams

    def _stream_subsession(self, command: Command) -> Subsession:
        if self.session is not None:
            raise SamError(I2P_ERROR, "open a new connection for STREAM commands; this one holds the session")
        return self.bridge.registry.find_subsession(check_nickname(command.get("ID")), STREAM)

    async def _stream_failed(self, exc: SamError, silent: bool) -> bool:
        """samv3.md: a failed STREAM command closes its socket, unless that socket holds the session."""
        if not silent or self.session is not None:
            await self.error("STREAM", exc)
        return self.session is not None

    async def _stream_connect(self, command: Command) -> bool:
        bridge = self.bridge
        try:
            silent = parse_bool(command, "SILENT")
        except SamError as exc:
            return await self._stream_failed(exc, False)
        try:
            sub = self._stream_subsession(command)
            name = command.get("DESTINATION")
            if name is None:
                raise SamError(I2P_ERROR, "DESTINATION is missing")
            from_port = parse_int(command, "FROM_PORT", low=0, high=65535, default=sub.spec.from_port)
            to_port = parse_int(command, "TO_PORT", low=0, high=65535, default=sub.spec.to_port)
            remote = await self.watching(bridge.resolve_for_sending(name, sub.owner))
            backend = sub.owner.backend
            timeout = bridge.config.connect_timeout
            try:
                i2p_reader, i2p_writer = await self.watching(asyncio.wait_for(
                    backend.connect(remote, from_port=from_port, to_port=to_port, timeout=timeout,
                                    options=sub.spec.options), timeout + 5.0))
            except (TimeoutError, asyncio.TimeoutError):
                raise SamError(TIMEOUT, "the peer did not answer") from None
            except (PeerNotFound, ConnectionError) as exc:
                raise SamError(CANT_REACH_PEER, str(exc) or "cannot reach the peer") from None
            except BackendError as exc:
                raise SamError(I2P_ERROR, str(exc) or "the router failed") from None
        except SamError as exc:
            return await self._stream_failed(exc, silent)
        if not silent:
            await self.reply("STREAM", "STATUS", RESULT=OK)
        await self._become_stream(i2p_reader, i2p_writer)
        return False

    async def _become_stream(self, i2p_reader: Any, i2p_writer: Any) -> None:
        self.handed_off = True
        await _pump(i2p_reader, i2p_writer, self.reader, self.writer, self.buffer.take_all())

    async def _stream_accept(self, command: Command) -> bool:
        bridge = self.bridge
        try:
            silent = parse_bool(command, "SILENT")
        except SamError as exc:
            return await self._stream_failed(exc, False)
        try:
            sub = self._stream_subsession(command)
            if sub.forward is not None:
                raise SamError(I2P_ERROR, "the session is forwarding: no ACCEPT while a FORWARD is active")
            pending = sum(1 for w in sub.accept_waiters if not w.done())
            if pending >= bridge.config.max_pending_accepts:
                raise SamError(I2P_ERROR, "too many pending ACCEPTs")
        except SamError as exc:
            return await self._stream_failed(exc, silent)
        waiter = asyncio.get_running_loop().create_future()
        sub.accept_waiters.append(waiter)
        if not silent:
            await self.reply("STREAM", "STATUS", RESULT=OK)
        bridge._serve_backlog(sub)
        try:
            incoming: IncomingStream = await self.watching(waiter)
        except _ClientGone:
            return False
        except _SessionClosed:
            if not silent:
                await self.reply("STREAM", "STATUS", RESULT=I2P_ERROR, MESSAGE="the session closed")
            return False
        finally:
            if waiter in sub.accept_waiters:
                sub.accept_waiters.remove(waiter)
        if not silent:
            await self.send(_dest_line(incoming.remote, incoming.from_port, incoming.to_port, self.version))
        await self._become_stream(incoming.reader, incoming.writer)
        return False

    async def _stream_forward(self, command: Command) -> bool:
        bridge = self.bridge
        try:
            silent = parse_bool(command, "SILENT")
            use_ssl = parse_bool(command, "SSL")
            sub = self._stream_subsession(command)
            port = parse_int(command, "PORT", low=1, high=65535)
            if port is None:
                raise SamError(I2P_ERROR, "PORT is missing")
            host = command.get("HOST") or self.peer_host
            if sub.forward is not None:
                raise SamError(I2P_ERROR, "the session is already forwarding")
            if any(not w.done() for w in sub.accept_waiters):
                raise SamError(I2P_ERROR, "an ACCEPT is pending on the session")
        except SamError as exc:
            return await self._stream_failed(exc, False)
        sub.forward = _Forward(bridge, self, host, port, silent, use_ssl)
        self.forwarding = sub
        await self.reply("STREAM", "STATUS", RESULT=OK)   # answered even with SILENT=true
        bridge._serve_backlog(sub)
        return True

    # ------------------------------------------------------------ datagrams on the control socket

    async def _datagram_send(self, command: Command) -> bool:
        """samv3.md "DATAGRAM SEND, RAW SEND": `... SIZE=n` then n bytes on the control socket."""
        raw = command.verb == "RAW"
        try:
            size = parse_int(command, "SIZE", low=1, high=MAX_RAW_SIZE if raw else MAX_REPLIABLE_SIZE)
            if size is None:
                raise SamError(I2P_ERROR, "SIZE is missing")
        except SamError as exc:
            await self.error(command.verb, exc)
            return False      # the payload length is unknown: the stream cannot be resynchronised
        try:
            payload = await self.read_exact(size, self.bridge.config.idle_timeout)
        except TimeoutError:
            payload = None
        if payload is None:
            return False
        try:
            sub = self._datagram_subsession(command, raw)
            name = command.get("DESTINATION")
            if name is None:
                raise SamError(I2P_ERROR, "DESTINATION is missing")
            remote = await self.watching(self.bridge.resolve_for_sending(name, sub.owner))
            self.bridge.send_datagram(sub, remote, payload, command)
        except SamError as exc:
            await self.error(command.verb, exc)
        return True

    def _datagram_subsession(self, command: Command, raw: bool) -> Subsession:
        session = self.session
        if session is None:
            raise SamError(I2P_ERROR, "no session on this connection")
        styles = (RAW,) if raw else (DATAGRAM, DATAGRAM2, DATAGRAM3)
        if session.is_primary:
            nickname = command.get("ID")
            sub = session.subsessions.get(nickname) if nickname is not None else None
            if sub is None:
                raise SamError(INVALID_ID, "name a subsession of this PRIMARY session with ID")
        else:
            sub = session.subsessions[session.nickname]
        if sub.style not in styles:
            raise SamError(I2P_ERROR, f"session {sub.nickname!r} is STYLE={sub.style}")
        return sub


_HANDLERS: dict[tuple[str, str], Callable[[_Client, Command], Awaitable[bool]]] = {
    ("HELLO", "VERSION"): _Client._again_hello,
    ("PING", ""): _Client._ping,
    ("PONG", ""): _Client._pong,
    ("QUIT", ""): _Client._quit,
    ("STOP", ""): _Client._quit,
    ("EXIT", ""): _Client._quit,
    ("HELP", ""): _Client._help,
    ("DEST", "GENERATE"): _Client._dest_generate,
    ("NAMING", "LOOKUP"): _Client._naming_lookup,
    ("AUTH", "ENABLE"): _Client._auth,
    ("AUTH", "DISABLE"): _Client._auth,
    ("AUTH", "ADD"): _Client._auth,
    ("AUTH", "REMOVE"): _Client._auth,
    ("SESSION", "CREATE"): _Client._session_create,
    ("SESSION", "ADD"): _Client._session_add,
    ("SESSION", "REMOVE"): _Client._session_remove,
    ("STREAM", "CONNECT"): _Client._stream_connect,
    ("STREAM", "ACCEPT"): _Client._stream_accept,
    ("STREAM", "FORWARD"): _Client._stream_forward,
    ("DATAGRAM", "SEND"): _Client._datagram_send,
    ("RAW", "SEND"): _Client._datagram_send,
}
