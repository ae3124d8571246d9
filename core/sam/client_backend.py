"""The SAM backend of a router: each SAM session is a core.client ClientSession, with streaming
over it (core.client.open_stream_session) and every other protocol handed to the bridge raw."""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

from core.client import ClientAPI, ClientSession, ReceivedMessage, open_stream_session
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.streaming.api import StreamReader, StreamSession, StreamWriter
from core.streaming.manager import PROTOCOL_STREAMING

from .backend import BackendError, LeaseSetInfo, PeerNotFound, StreamingSessionBase, published_options

READY_POLL_S = 0.1
I2CP_PROTOCOLS = range(256)


def _leaseset_info(leaseset: Any) -> LeaseSetInfo | None:
    """Destination and options of a LeaseSet of any type; None for one that hides its destination."""
    destination = getattr(leaseset, "destination", None)
    if not isinstance(destination, Destination):
        return None
    options = getattr(leaseset, "options", None)
    return LeaseSetInfo(destination, dict(options.items) if options is not None else {})


class ClientBackendSession(StreamingSessionBase):
    def __init__(self, backend: ClientBackend, session: ClientSession):
        super().__init__()
        self._backend = backend
        self.session = session
        self.published_options = published_options(session.raw_options)
        self._streams: StreamSession = open_stream_session(session)
        for protocol in I2CP_PROTOCOLS:
            if protocol != PROTOCOL_STREAMING:
                session.set_protocol_handler(protocol, self._on_message)

    async def start(self) -> None:
        await self._streams.start_server(self._on_stream, port=0)

    @property
    def destination(self) -> Destination:
        return self.session.destination

    async def connect(self, remote: Destination, *, from_port: int = 0, to_port: int = 0,
                      timeout: float = 60.0, options: Mapping[str, str] | None = None
                      ) -> tuple[StreamReader, StreamWriter]:
        if self.session.closed:
            raise BackendError("session closed")
        if self._backend.api.local_session(remote.hash) is None:
            leaseset = self.session.remote_leaseset(remote.hash) or \
                await self._backend.find_leaseset(remote.hash, session=self, timeout=timeout)
            if leaseset is None:
                raise PeerNotFound(f"no leaseset for {remote.b32_address}")
            reason = self.session.unreachable_reason(leaseset)
            if reason is not None:   # no SYN could be encrypted to it: say so now, not after the connect timeout
                raise PeerNotFound(f"{remote.b32_address}: {reason}")
        try:
            return await self._open_stream(remote, from_port, to_port, timeout)
        except TimeoutError:
            self.session.forget_remote(remote.hash)    # its leases may be dead tunnels: look it up afresh next time
            raise

    async def ping(self, remote: Destination, *, timeout: float = 30.0) -> float:
        """Round-trip seconds of a streaming ECHO to `remote`; TimeoutError when no pong comes."""
        if self.session.closed:
            raise BackendError("session closed")
        return await self._streams.ping(remote, timeout=timeout)

    def send_datagram(self, protocol: int, payload: bytes, to: Destination, *, from_port: int = 0,
                      to_port: int = 0, options: Mapping[str, Any] | None = None) -> None:
        if self.session.closed:
            raise BackendError("session closed")
        self.session.send(to, payload, protocol=protocol, src_port=from_port, dst_port=to_port)

    def _on_message(self, message: ReceivedMessage) -> None:
        self._deliver_datagram(message.protocol, message.payload, message.src_port, message.dst_port,
                               message.sender_hash)

    async def close(self) -> None:
        for protocol in I2CP_PROTOCOLS:
            if protocol != PROTOCOL_STREAMING:
                self.session.set_protocol_handler(protocol, None)
        await self._streams.close()
        await self.session.close()


class ClientBackend:
    """SAM on a ClientAPI: `ClientBackend(ClientAPI(RouterNetwork(...)))` in a router, `ClientAPI()` alone
    for local delivery only."""

    def __init__(self, api: ClientAPI, *, ready_timeout: float = 180.0):
        self.api = api
        self.ready_timeout = ready_timeout
        """How long SESSION CREATE waits for the first tunnels (our LeaseSet) before giving up."""

    async def create_session(self, keys: PrivateKeys, options: Mapping[str, str]) -> ClientBackendSession:
        try:
            session = await self.api.open_session(keys, options)
        except (ValueError, ProtocolError) as exc:
            raise BackendError(str(exc)) from None
        try:
            if self.api.network is not None:
                await self._wait_ready(session)
            backend_session = ClientBackendSession(self, session)
            await backend_session.start()
        except BaseException:
            await session.close()
            raise
        return backend_session

    async def _wait_ready(self, session: ClientSession) -> None:
        """samv3.md "Session Creation Response": tunnels are built before SESSION STATUS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while session.leaseset is None:
            if loop.time() > deadline:
                raise BackendError("no tunnels were built in time")
            await asyncio.sleep(READY_POLL_S)

    def generate_keys(self, sig_type: int, crypto_type: int) -> PrivateKeys:
        try:
            return PrivateKeys.generate(sig_type, crypto_type, rng=self.api.rng)
        except ProtocolError as exc:
            raise BackendError(str(exc)) from None

    async def lookup(self, dest_hash: bytes, *, session: ClientBackendSession | None = None,
                     timeout: float = 30.0) -> LeaseSetInfo | None:
        local = self.api.local_session(dest_hash)
        if local is not None:
            return LeaseSetInfo(local.destination, published_options(local.raw_options))
        found = await self.find_leaseset(dest_hash, session=session, timeout=timeout)
        return _leaseset_info(found) if found is not None else None

    async def find_leaseset(self, dest_hash: bytes, *, session: ClientBackendSession | None = None,
                            timeout: float = 30.0) -> Any:
        """A remote destination's LeaseSet: the session's cached copy, else a lookup through its tunnels."""
        client = session.session if session is not None else None
        if client is not None:
            cached = client.remote_leaseset(dest_hash)
            if cached is not None:
                return cached
        network = self.api.network
        if network is None:
            return None
        handle = getattr(client, "_handle", None)
        try:
            return await asyncio.wait_for(network.lookup_leaseset(handle, dest_hash), timeout)
        except (asyncio.TimeoutError, ProtocolError):
            return None
