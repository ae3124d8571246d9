"""A SAM backend in one process: destinations on a core.streaming MemoryNetwork, streams through
core.streaming, datagrams delivered locally. For tests and for trying SAM clients without a router."""
from __future__ import annotations

import asyncio
import os
from typing import Any, Mapping

from core.clock import Clock, Rng, SystemClock
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.streaming.api import StreamReader, StreamSession, StreamWriter
from core.streaming.config import StreamConfig
from core.streaming.link import Datagram, MemoryLink, MemoryNetwork, ReceiveCallback
from core.streaming.manager import PROTOCOL_STREAMING

from .backend import BackendError, LeaseSetInfo, PeerNotFound, StreamingSessionBase, published_options


class _StreamingLink:
    """The DatagramLink streaming sees: protocol-6 traffic of one MemoryLink."""

    def __init__(self, link: MemoryLink):
        self._link = link
        self.receiver: ReceiveCallback | None = None

    @property
    def destination(self) -> Destination:
        return self._link.destination

    def send(self, payload: bytes, to: Destination | bytes, *, protocol: int = PROTOCOL_STREAMING,
             src_port: int = 0, dst_port: int = 0) -> None:
        self._link.send(payload, to, protocol=protocol, src_port=src_port, dst_port=dst_port)

    def set_receiver(self, callback: ReceiveCallback | None) -> None:
        self.receiver = callback


class MemoryBackendSession(StreamingSessionBase):
    def __init__(self, backend: MemoryBackend, keys: PrivateKeys, options: Mapping[str, str]):
        super().__init__()
        self._backend = backend
        self.keys = keys
        self.options = dict(options)
        self.published_options = published_options(options)
        self._link = backend.network.attach(keys.destination)
        self._streaming_link = _StreamingLink(self._link)
        self._link.set_receiver(self._on_datagram)
        self._streams = StreamSession(keys, self._streaming_link, config=backend.stream_config,
                                      clock=backend.clock, rng=backend.rng)
        self._server = None
        self.sent_options: list[Mapping[str, Any] | None] = []
        self.closed = False

    async def start(self) -> None:
        self._server = await self._streams.start_server(self._on_stream, port=0)

    @property
    def destination(self) -> Destination:
        return self.keys.destination

    async def connect(self, remote: Destination, *, from_port: int = 0, to_port: int = 0,
                      timeout: float = 60.0, options: Mapping[str, str] | None = None
                      ) -> tuple[StreamReader, StreamWriter]:
        if self.closed:
            raise BackendError("session closed")
        if remote.hash not in self._backend.sessions:
            raise PeerNotFound(f"no leaseset for {remote.b32_address}")
        return await self._open_stream(remote, from_port, to_port, timeout)

    def send_datagram(self, protocol: int, payload: bytes, to: Destination, *, from_port: int = 0,
                      to_port: int = 0, options: Mapping[str, Any] | None = None) -> None:
        if self.closed:
            raise BackendError("session closed")
        self.sent_options.append(options)
        self._link.send(payload, to, protocol=protocol, src_port=from_port, dst_port=to_port)

    def _on_datagram(self, datagram: Datagram) -> None:
        if datagram.protocol == PROTOCOL_STREAMING:
            if self._streaming_link.receiver is not None:
                self._streaming_link.receiver(datagram)
            return
        self._deliver_datagram(datagram.protocol, datagram.payload, datagram.src_port, datagram.dst_port)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._backend.sessions.pop(self.keys.destination.hash, None)
        await self._streams.close()
        self._link.set_receiver(None)
        self._link.close()


class MemoryBackend:
    """Destinations in this process; each SESSION CREATE is one MemoryBackendSession."""

    def __init__(self, *, network: MemoryNetwork | None = None, clock: Clock | None = None, rng: Rng = os.urandom,
                 stream_config: StreamConfig = StreamConfig(), create_delay: float = 0.0):
        self.network = network or MemoryNetwork()
        self.clock = clock or SystemClock()
        self.rng = rng
        self.stream_config = stream_config
        self.create_delay = create_delay
        """Seconds SESSION CREATE takes, standing in for tunnel building."""
        self.sessions: dict[bytes, MemoryBackendSession] = {}
        self.created_options: list[dict[str, str]] = []

    async def create_session(self, keys: PrivateKeys, options: Mapping[str, str]) -> MemoryBackendSession:
        if keys.destination.hash in self.sessions:
            raise BackendError("destination already running")
        self.created_options.append(dict(options))
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if keys.destination.hash in self.sessions:
            raise BackendError("destination already running")
        session = MemoryBackendSession(self, keys, options)
        self.sessions[keys.destination.hash] = session
        try:
            await session.start()
        except BaseException:
            await session.close()
            raise
        return session

    def generate_keys(self, sig_type: int, crypto_type: int) -> PrivateKeys:
        try:
            return PrivateKeys.generate(sig_type, crypto_type, rng=self.rng)
        except ProtocolError as exc:
            raise BackendError(str(exc)) from None

    async def lookup(self, dest_hash: bytes, *, session: MemoryBackendSession | None = None,
                     timeout: float = 30.0) -> LeaseSetInfo | None:
        found = self.sessions.get(dest_hash)
        if found is None:
            return None
        return LeaseSetInfo(found.destination, dict(found.published_options))
