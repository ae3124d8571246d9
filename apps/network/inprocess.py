"""The apps' port over this process's router: each session is a core.client destination with
streaming on it (through the same ClientBackend the SAM bridge uses), no SAM hop.

`InProcessNetwork(ClientAPI())` without a router network delivers between its own sessions
only: what unit tests of the apps run on.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

from core.client import ClientAPI
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.datagram import (PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW, Datagram1, Datagram2,
                           Datagram3, parse_datagram)
from core.data.errors import ProtocolError
from core.sam.backend import BackendError, IncomingStream as BackendStream, PeerNotFound as BackendPeerNotFound
from core.sam.backend import ReceivedDatagram
from core.sam.client_backend import ClientBackend, ClientBackendSession

from .base import (ConnectTimeout, Datagram, DatagramHandler, IncomingStream, NetworkError,
                   PeerNotFound, PeerUnreachable, PortRouter, Resolver, StreamHandler, StreamTasks, parse_address,
                   resolve_name)


DATAGRAM_PROTOCOLS = (PROTO_DATAGRAM, PROTO_RAW, PROTO_DATAGRAM2, PROTO_DATAGRAM3)


class InProcessSession:
    def __init__(self, network: InProcessNetwork, backend_session: ClientBackendSession, name: str):
        self._network = network
        self._session = backend_session
        self.name = name
        self._streams = PortRouter()
        self._datagrams = PortRouter()
        self._tasks = StreamTasks(name)
        self.stats = {"streams_out": 0, "streams_in": 0, "streams_refused": 0, "datagrams_in": 0,
                      "datagrams_out": 0}
        backend_session.set_stream_handler(self._on_stream)
        backend_session.set_datagram_handler(self._on_datagram)

    @property
    def destination(self) -> Destination:
        return self._session.destination

    @property
    def b32(self) -> str:
        return self.destination.b32_address

    @property
    def keys(self) -> PrivateKeys:
        return self._session.session.keys

    async def resolve(self, name: str | Destination, *, timeout: float = 30.0) -> Destination:
        target = parse_address(name)
        if isinstance(target, Destination):
            return target
        if isinstance(target, str):
            return await resolve_name(self._network.resolver, target)
        found = await self._network.backend.lookup(target, session=self._session, timeout=timeout)
        if found is None:
            raise PeerNotFound(f"{name}: no LeaseSet found (the destination is offline or unknown)")
        return found.destination

    async def connect(self, to: str | Destination, port: int = 0, *, from_port: int = 0,
                      timeout: float = 60.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        remote = await self.resolve(to, timeout=timeout)
        left = max(1.0, deadline - loop.time())
        self.stats["streams_out"] += 1
        try:
            return await self._session.connect(remote, from_port=from_port, to_port=port, timeout=left)
        except BackendPeerNotFound as exc:
            raise PeerNotFound(f"{_label(to)}: {exc}") from None
        except TimeoutError:
            raise ConnectTimeout(f"{_label(to)} did not answer within {timeout:.0f} s") from None
        except (ConnectionError, BackendError) as exc:
            raise PeerUnreachable(f"{_label(to)}: {exc}") from None

    async def serve(self, handler: StreamHandler, port: int = 0) -> None:
        self._streams.set(port, handler)

    async def ping(self, to: str | Destination, *, timeout: float = 30.0) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        remote = await self.resolve(to, timeout=timeout)
        try:
            return await self._session.ping(remote, timeout=max(1.0, deadline - loop.time()))
        except TimeoutError:
            raise ConnectTimeout(f"{_label(to)}: no pong within {timeout:.0f} s") from None
        except BackendError as exc:
            raise PeerUnreachable(f"{_label(to)}: {exc}") from None

    def stop_serving(self, port: int = 0) -> None:
        self._streams.set(port, None)

    def _on_stream(self, incoming: BackendStream) -> None:
        handler = self._streams.get(incoming.to_port)
        stream = IncomingStream(incoming.remote, incoming.from_port, incoming.to_port, incoming.reader,
                                incoming.writer)
        if handler is None or not self._tasks.start(handler, stream):
            self.stats["streams_refused"] += 1
            incoming.writer.abort()
            return
        self.stats["streams_in"] += 1

    def send_datagram(self, to: Destination, payload: bytes, *, repliable: bool = True, from_port: int = 0,
                      to_port: int = 0) -> None:
        protocol = PROTO_DATAGRAM if repliable else PROTO_RAW
        body = Datagram1.create(self.keys, payload).to_bytes() if repliable else payload
        self.stats["datagrams_out"] += 1
        self._session.send_datagram(protocol, body, to, from_port=from_port, to_port=to_port)

    def on_datagram(self, handler: DatagramHandler | None, port: int = 0) -> None:
        self._datagrams.set(port, handler)

    def _on_datagram(self, received: ReceivedDatagram) -> None:
        handler = self._datagrams.get(received.to_port)
        if handler is None or received.protocol not in DATAGRAM_PROTOCOLS:
            return
        sender = None
        payload = received.payload
        if received.protocol != PROTO_RAW:
            sender, payload = self._open(received)
            if sender is None:
                return
        self.stats["datagrams_in"] += 1
        handler(Datagram(payload, received.from_port, received.to_port, sender, sender is not None))

    def _open(self, received: ReceivedDatagram) -> tuple[Destination | None, bytes]:
        """The sender and payload of a repliable datagram (datagrams.rst), (None, b"") when it does not verify:
        Datagram1 and Datagram2 are signed; a Datagram3 names a sender the garlic session must be bound to."""
        try:
            datagram = parse_datagram(received.protocol, received.payload)
        except ProtocolError:
            return None, b""
        if isinstance(datagram, Datagram1):
            return (datagram.from_destination, datagram.payload) if datagram.verify() else (None, b"")
        if isinstance(datagram, Datagram2):
            now = self._session.session.clock.time()
            # datagrams.rst "Signatures": the prelude is our hash; i2pd (2.58) puts the sender's own there, which
            # binds the datagram to no target, as a Datagram1 is not: taken too, so its udpclients interwork
            verified = (datagram.verify(self.destination.hash, now)
                        or datagram.verify(datagram.from_destination.hash, now))
            return (datagram.from_destination, datagram.payload) if verified else (None, b"")
        if isinstance(datagram, Datagram3) and received.sender_hash == datagram.from_hash:
            return self._known_destination(datagram.from_hash), datagram.payload
        return None, b""

    def _known_destination(self, dest_hash: bytes) -> Destination | None:
        """A destination by hash: from its cached LeaseSet, or a session of this process."""
        leaseset = self._session.session.remote_leaseset(dest_hash)
        if leaseset is not None:
            return leaseset.destination
        local = self._network.api.local_session(dest_hash)
        return local.destination if local is not None else None

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "b32": self.b32, "ready": self._session.session.leaseset is not None,
                **self.stats}

    async def close(self) -> None:
        await self._tasks.close()
        self._network._sessions.discard(self)
        await self._session.close()


class InProcessNetwork:
    """I2PNetwork over a ClientAPI (the router's `router.client`)."""

    def __init__(self, api: ClientAPI, *, resolver: Resolver | None = None, ready_timeout: float = 180.0):
        self.api = api
        self.backend = ClientBackend(api, ready_timeout=ready_timeout)
        self.resolver = resolver
        self._sessions: set[InProcessSession] = set()

    async def open_session(self, keys: PrivateKeys | None = None, options: Mapping[str, str] | None = None,
                           name: str | None = None) -> InProcessSession:
        keys = keys or PrivateKeys.generate(rng=self.api.rng)
        try:
            backend_session = await self.backend.create_session(keys, dict(options or {}))
        except BackendError as exc:
            raise NetworkError(f"cannot open destination {name or keys.destination.b32_address}: {exc}") from None
        session = InProcessSession(self, backend_session, name or keys.destination.b32_address[:16])
        self._sessions.add(session)
        return session

    def status(self) -> dict[str, Any]:
        return {"kind": "in-process", "sessions": len(self._sessions)}

    async def close(self) -> None:
        for session in list(self._sessions):
            await session.close()


def _label(to: str | Destination) -> str:
    return to.b32_address if isinstance(to, Destination) else to
