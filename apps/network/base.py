"""The apps' one port to I2P: what every app may ask of the network, whoever carries it.

    network = InProcessNetwork(router.client)          # or SamNetwork("127.0.0.1", 7656)
    session = await network.open_session(keys, {"inbound.length": "2"}, name="web")
    reader, writer = await session.connect("example.i2p", 80)
    await session.serve(handle_stream, port=80)        # handle_stream(IncomingStream)
    session.send_datagram(peer, b"hi", to_port=53)

Names: `x.b32.i2p` and I2P-Base64 destinations are understood by every adapter; other
`.i2p` names go to `network.resolver` (the address book plugs in there).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from core.data.encoding import b32decode
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

log = logging.getLogger(__name__)

MAX_STREAM_TASKS = 1024        # per session: incoming streams being handled at once; more are reset
B32_NAME = re.compile(r"[a-z2-7]{52}\.b32\.i2p")
B33_NAME = re.compile(r"[a-z2-7]{56,}\.b32\.i2p")
B64_MIN_CHARS = 516            # 387 bytes: the smallest Destination (no key certificate)


class NetworkError(Exception):
    """The network could not do what an app asked; the message says what, in plain words."""


class NameNotFound(NetworkError):
    """A name that neither the address book nor its own form (b32, Base64) resolves."""


class PeerNotFound(NetworkError):
    """No LeaseSet for the destination could be found: it is offline or unknown to the netDb."""


class PeerUnreachable(NetworkError):
    """The destination was found but refused or reset the stream."""


class ConnectTimeout(NetworkError, TimeoutError):
    """The destination did not answer in time."""


class Unsupported(NetworkError):
    """This adapter cannot do it at all (a streaming ping over SAM)."""


class StreamReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...

    async def readexactly(self, n: int) -> bytes: ...

    async def readline(self) -> bytes: ...

    async def readuntil(self, separator: bytes = b"\n") -> bytes: ...

    def at_eof(self) -> bool: ...


class StreamWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    async def wait_closed(self) -> None: ...


@dataclass(slots=True)
class IncomingStream:
    """A stream another destination opened to one of our ports; the handler owns it and closes it."""

    peer: Destination
    from_port: int
    to_port: int
    reader: StreamReader
    writer: StreamWriter


@dataclass(frozen=True, slots=True)
class Datagram:
    """A datagram for our destination. `sender` is known (signed) for repliable datagrams only."""

    payload: bytes
    from_port: int = 0
    to_port: int = 0
    sender: Destination | None = None
    repliable: bool = False


StreamHandler = Callable[[IncomingStream], Awaitable[None]]
DatagramHandler = Callable[[Datagram], None]
Resolver = Callable[[str], "Destination | None | Awaitable[Destination | None]"]


class I2PSession(Protocol):
    """One local destination with its tunnels."""

    @property
    def destination(self) -> Destination: ...

    @property
    def b32(self) -> str: ...

    async def connect(self, to: str | Destination, port: int = 0, *, from_port: int = 0,
                      timeout: float = 60.0) -> tuple[StreamReader, StreamWriter]:
        """A stream to a name, b32, Base64 or Destination; raises a NetworkError subclass."""
        ...

    async def serve(self, handler: StreamHandler, port: int = 0) -> None:
        """Streams to `port` (0: every port without a handler of its own) go to `handler`, each in a task."""
        ...

    def stop_serving(self, port: int = 0) -> None: ...

    async def resolve(self, name: str | Destination, *, timeout: float = 30.0) -> Destination:
        """A name's destination, looked up through this session's tunnels; raises NameNotFound/PeerNotFound."""
        ...

    async def ping(self, to: str | Destination, *, timeout: float = 30.0) -> float:
        """Round-trip seconds of a streaming ping (streaming.md "ECHO"); ConnectTimeout when no pong comes,
        Unsupported where the adapter cannot ping (SAM has no command for it)."""
        ...

    def send_datagram(self, to: Destination, payload: bytes, *, repliable: bool = True, from_port: int = 0,
                      to_port: int = 0) -> None:
        """Best effort, like UDP: repliable (signed, datagrams.rst "Datagram1") or raw."""
        ...

    def on_datagram(self, handler: DatagramHandler | None, port: int = 0) -> None:
        """Datagrams to `port` (0: every port without a handler of its own) go to `handler`."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None:
        """Reset open streams, release the tunnels; idempotent."""
        ...


class I2PNetwork(Protocol):
    resolver: Resolver | None

    async def open_session(self, keys: PrivateKeys | None = None, options: Mapping[str, str] | None = None,
                           name: str | None = None) -> I2PSession:
        """Host a destination (`keys`, or a new transient one); returns once it is reachable (tunnels built)."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


def parse_address(text: str | Destination) -> Destination | bytes | str:
    """What an address names: a Destination (Base64, or given as one), a destination hash (b32), or a host
    name to resolve.

    `http://i2p/<b64>`-style Base64 with a trailing `.i2p` is accepted too. Raises NameNotFound for
    text that is none of these (b33 encrypted-LeaseSet names are not resolved here)."""
    if isinstance(text, Destination):
        return text
    name = text.strip().rstrip(".")
    lowered = name.lower()
    if B32_NAME.fullmatch(lowered):
        return b32decode(lowered[:-8])
    if B33_NAME.fullmatch(lowered):
        raise NameNotFound(f"{text}: an encrypted LeaseSet address (b33) needs its blinded lookup")
    if lowered.endswith(".i2p") and len(name) < B64_MIN_CHARS:
        if not 5 <= len(lowered) <= 67 or not re.fullmatch(r"[a-z0-9.-]+", lowered):
            raise NameNotFound(f"{text}: not a valid I2P host name")
        return lowered
    b64 = name[:-4] if lowered.endswith(".i2p") else name
    if len(b64) >= B64_MIN_CHARS:
        try:
            return Destination.from_b64(b64)
        except (ProtocolError, ValueError):
            raise NameNotFound(f"{text[:40]}...: not a valid Base64 destination") from None
    raise NameNotFound(f"{text}: not an I2P address (name.i2p, b32 or Base64 destination)")


@dataclass(slots=True)
class PortRouter:
    """Handlers by local port, with port 0 as the catch-all: what serve() and on_datagram() keep."""

    handlers: dict[int, Any] = field(default_factory=dict)

    def set(self, port: int, handler: Any) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is not 0-65535")
        if handler is None:
            self.handlers.pop(port, None)
        else:
            self.handlers[port] = handler

    def get(self, port: int) -> Any:
        return self.handlers.get(port) or self.handlers.get(0)

    def __bool__(self) -> bool:
        return bool(self.handlers)


async def resolve_name(resolver: Resolver | None, name: str) -> Destination:
    """A host name through the address book (`resolver`); NameNotFound when it has none."""
    if resolver is None:
        raise NameNotFound(f"{name}: unknown host (no address book)")
    found = resolver(name)
    if inspect.isawaitable(found):
        found = await found
    if found is None:
        raise NameNotFound(f"{name}: not in the address book")
    return found


class StreamTasks:
    """The incoming streams a session's handlers work on, each in a task, at most MAX_STREAM_TASKS."""

    def __init__(self, name: str, limit: int = MAX_STREAM_TASKS):
        self.name = name
        self.limit = limit
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, handler: StreamHandler, stream: IncomingStream) -> bool:
        """Hand `stream` to `handler` in a task; False (the caller resets the stream) when full."""
        if len(self._tasks) >= self.limit:
            return False
        task = asyncio.get_running_loop().create_task(self._handle(handler, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _handle(self, handler: StreamHandler, stream: IncomingStream) -> None:
        try:
            await handler(stream)
        except (ConnectionError, asyncio.IncompleteReadError, NetworkError):
            stream.writer.abort()
        except Exception:
            log.exception("%s: stream handler for port %d failed", self.name, stream.to_port)
            stream.writer.abort()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
