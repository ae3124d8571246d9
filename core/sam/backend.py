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


AddressBook = Callable[[str], "Destination | None | Awaitable[Destination | None]"]
"""Host name (e.g. example.i2p) to destination; may be a coroutine function."""
