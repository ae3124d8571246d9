"""What the SAM bridge needs from the router: destination sessions, streams, datagrams, lookups.

The bridge builds and checks the datagram formats itself (core.datagram) and routes by
protocol and port (samv3.md "PRIMARY Sessions"); a backend only moves payloads for one
local destination, like I2CP does.

Errors a backend raises from `connect`: TimeoutError (no answer: TIMEOUT),
PeerNotFound or ConnectionError (no leaseset, refused, reset: CANT_REACH_PEER);
BackendError for anything else (I2P_ERROR).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.streaming.api import StreamReader, StreamSession, StreamWriter
from core.streaming.config import StreamConfig

LEASESET_OPTION_PREFIX = "i2cp.leaseSetOption."


class BackendError(Exception):
    """The router cannot do what was asked (no tunnels, session refused, shut down...)."""


class PeerNotFound(BackendError):
    """No leaseset for the destination could be found."""


class StreamReaderLike(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class StreamWriterLike(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class IncomingStream:
    """A stream another destination opened to us; whoever is handed it owns it and must close it."""

    remote: Destination
    from_port: int
    to_port: int
    reader: StreamReaderLike
    writer: StreamWriterLike


@dataclass(frozen=True, slots=True)
class ReceivedDatagram:
    """An I2CP message of a datagram protocol (17-20 or any raw protocol) for our destination."""

    protocol: int
    payload: bytes
    from_port: int = 0
    to_port: int = 0
    sender_hash: bytes | None = None
    """The destination the garlic session that brought it is bound to, when known (what a Datagram3 claims)."""


@dataclass(frozen=True, slots=True)
class LeaseSetInfo:
    """What a lookup found: the destination and the options its LeaseSet2 publishes (proposal 167)."""

    destination: Destination
    options: Mapping[str, str] = field(default_factory=dict)


StreamHandler = Callable[[IncomingStream], None]
DatagramHandler = Callable[[ReceivedDatagram], None]


class BackendSession(Protocol):
    """One local destination with its tunnels, ready to send and receive."""

    @property
    def destination(self) -> Destination: ...

    async def connect(self, remote: Destination, *, from_port: int = 0, to_port: int = 0,
                      timeout: float = 60.0, options: Mapping[str, str] | None = None
                      ) -> tuple[StreamReaderLike, StreamWriterLike]:
        """Open a stream; raises as the module docstring says."""
        ...

    def set_stream_handler(self, handler: StreamHandler | None) -> None:
        """Incoming streams go to `handler` (None: refuse them)."""
        ...

    def send_datagram(self, protocol: int, payload: bytes, to: Destination, *, from_port: int = 0,
                      to_port: int = 0, options: Mapping[str, Any] | None = None) -> None:
        """Send one I2CP message; best effort, like UDP. `options` carries the SAM 3.3 send
        options (SEND_TAGS, TAG_THRESHOLD, EXPIRES, SEND_LEASESET) where given."""
        ...

    def set_datagram_handler(self, handler: DatagramHandler | None) -> None:
        """Every non-streaming message for this destination goes to `handler`."""
        ...

    async def close(self) -> None:
        """Reset open streams, drop the tunnels; idempotent."""
        ...


class Backend(Protocol):
    async def create_session(self, keys: PrivateKeys, options: Mapping[str, str]) -> BackendSession:
        """Start a destination with these keys and I2CP/tunnel/streaming options; returns when it
        is ready to use (tunnels built). BackendError when it cannot."""
        ...

    def generate_keys(self, sig_type: int, crypto_type: int) -> PrivateKeys:
        """New destination keys; BackendError (or ProtocolError) for an unsupported type."""
        ...

    async def lookup(self, dest_hash: bytes, *, session: BackendSession | None = None,
                     timeout: float = 30.0) -> LeaseSetInfo | None:
        """Find the leaseset of a destination hash (through `session`'s tunnels if given); None if not found."""
        ...


def published_options(options: Mapping[str, str]) -> dict[str, str]:
    """i2cp.leaseSetOption.N=key=value entries, as Java I2P publishes them in a LeaseSet2."""
    published: dict[str, str] = {}
    for name, value in options.items():
        if name.startswith(LEASESET_OPTION_PREFIX) and "=" in value:
            key, _, text = value.partition("=")
            published[key] = text
    return published


class StreamingSessionBase:
    """What every backend session does the same way: streams over a StreamSession, handlers the bridge sets."""

    _streams: StreamSession

    def __init__(self) -> None:
        self._stream_handler: StreamHandler | None = None
        self._datagram_handler: DatagramHandler | None = None

    def set_stream_handler(self, handler: StreamHandler | None) -> None:
        self._stream_handler = handler

    def set_datagram_handler(self, handler: DatagramHandler | None) -> None:
        self._datagram_handler = handler

    async def _open_stream(self, remote: Destination, from_port: int, to_port: int,
                           timeout: float) -> tuple[StreamReader, StreamWriter]:
        config = StreamConfig(connect_timeout=timeout)
        return await self._streams.open_connection(remote, to_port, local_port=from_port, config=config)

    async def _on_stream(self, reader: StreamReader, writer: StreamWriter) -> None:
        handler = self._stream_handler
        if handler is None:
            writer.abort()
            return
        handler(IncomingStream(writer.get_extra_info("peername"), writer.get_extra_info("peerport"),
                               writer.get_extra_info("sockport"), reader, writer))

    def _deliver_datagram(self, protocol: int, payload: bytes, from_port: int, to_port: int,
                          sender_hash: bytes | None = None) -> None:
        handler = self._datagram_handler
        if handler is not None:
            handler(ReceivedDatagram(protocol, payload, from_port, to_port, sender_hash))


AddressBook = Callable[[str], "Destination | None | Awaitable[Destination | None]"]
"""Host name (e.g. example.i2p) to destination; may be a coroutine function."""
