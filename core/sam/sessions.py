"""SAM sessions and subsessions: option rules, the bridge-wide registry, routing of incoming
traffic by protocol and port (samv3.md "SAM Sessions", "PRIMARY Sessions"). No I/O here."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.datagram import PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW, PROTO_STREAMING
from core.data.privatekeys import PrivateKeys

from .parser import (DUPLICATED_DEST, DUPLICATED_ID, I2P_ERROR, INVALID_ID, Command, SamError, parse_bool,
                     parse_int)

if TYPE_CHECKING:
    from .backend import BackendSession

STREAM = "STREAM"
DATAGRAM = "DATAGRAM"
RAW = "RAW"
DATAGRAM2 = "DATAGRAM2"
DATAGRAM3 = "DATAGRAM3"
PRIMARY = "PRIMARY"
SUBSESSION_STYLES = (STREAM, DATAGRAM, RAW, DATAGRAM2, DATAGRAM3)
DATAGRAM_STYLES = (DATAGRAM, RAW, DATAGRAM2, DATAGRAM3)
STYLE_PROTOCOL = {STREAM: PROTO_STREAMING, DATAGRAM: PROTO_DATAGRAM, DATAGRAM2: PROTO_DATAGRAM2,
                  DATAGRAM3: PROTO_DATAGRAM3, RAW: PROTO_RAW}
FORBIDDEN_RAW_PROTOCOLS = frozenset({PROTO_STREAMING, PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3})
# samv3.md "Sending Repliable or Raw Datagrams", "SAM Anonymous (Raw) Datagrams"
MAX_REPLIABLE_SIZE = 31744
MAX_RAW_SIZE = 32768

# options the bridge reads itself; everything else goes to the router as I2CP/streaming options
SAM_OPTIONS = frozenset({"STYLE", "ID", "DESTINATION", "SIGNATURE_TYPE", "CRYPTO_TYPE", "PORT", "HOST", "FROM_PORT",
                         "TO_PORT", "PROTOCOL", "HEADER", "LISTEN_PORT", "LISTEN_PROTOCOL", "SILENT",
                         "sam.udp.host", "sam.udp.port"})
_PRIMARY_FORBIDDEN = ("PORT", "HOST", "FROM_PORT", "TO_PORT", "PROTOCOL", "LISTEN_PORT", "LISTEN_PROTOCOL", "HEADER")


def parse_style(text: str | None, *, allow_primary: bool) -> str:
    if text is None:
        raise SamError(I2P_ERROR, "STYLE is missing")
    style = text.upper()
    if style == "MASTER":
        style = PRIMARY  # the name before 0.9.47, still used by i2pd
    if style in SUBSESSION_STYLES or (allow_primary and style == PRIMARY):
        return style
    raise SamError(I2P_ERROR, f"unknown STYLE {text!r}")


def check_nickname(text: str | None) -> str:
    if text is None:
        raise SamError(I2P_ERROR, "ID is missing")
    if any(ch.isspace() for ch in text) or len(text) > 256:
        raise SamError(I2P_ERROR, "ID must be one word of at most 256 characters")
    return text


@dataclass(frozen=True, slots=True)
class SubsessionSpec:
    """The SAM options of one (sub)session: ports, protocol, where datagrams are forwarded."""

    style: str
    nickname: str
    from_port: int = 0
    to_port: int = 0
    protocol: int = PROTO_RAW
    listen_port: int = 0
    listen_protocol: int = 0
    header: bool = False
    forward_port: int | None = None
    forward_host: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def send_protocol(self) -> int:
        return self.protocol if self.style == RAW else STYLE_PROTOCOL[self.style]


def router_options(command: Command) -> dict[str, str]:
    """The options the router gets: all but the ones SAM interprets."""
    return {key: value for key, value in command.options.items() if key not in SAM_OPTIONS}


def subsession_spec(command: Command, style: str, *, is_add: bool) -> SubsessionSpec:
    """Validate a SESSION CREATE (non-PRIMARY) or SESSION ADD line; SamError with the reason."""
    nickname = check_nickname(command.get("ID"))
    is_stream = style == STREAM
    forward_port = parse_int(command, "PORT", low=1, high=65535)
    host = command.get("HOST")
    if is_stream and (forward_port is not None or host is not None):
        raise SamError(I2P_ERROR, "PORT and HOST are not for STYLE=STREAM")
    if is_add and not is_stream and forward_port is None:
        raise SamError(I2P_ERROR, "PORT is required for a datagram subsession")
    if host is not None and forward_port is None:
        raise SamError(I2P_ERROR, "HOST needs PORT")
    from_port = parse_int(command, "FROM_PORT", low=0, high=65535, default=0)
    to_port = parse_int(command, "TO_PORT", low=0, high=65535, default=0)
    if style == RAW:
        protocol = parse_int(command, "PROTOCOL", low=0, high=255, default=PROTO_RAW)
        if protocol in FORBIDDEN_RAW_PROTOCOLS:
            raise SamError(I2P_ERROR, f"PROTOCOL={protocol} is not allowed for RAW")
        header = parse_bool(command, "HEADER")
        listen_protocol = parse_int(command, "LISTEN_PROTOCOL", low=0, high=255, default=protocol)
        if listen_protocol == PROTO_STREAMING:
            raise SamError(I2P_ERROR, "LISTEN_PROTOCOL=6 is not allowed")
    else:
        for key in ("PROTOCOL", "HEADER", "LISTEN_PROTOCOL"):
            if command.get(key) is not None:
                raise SamError(I2P_ERROR, f"{key} is only for STYLE=RAW")
        protocol, header, listen_protocol = STYLE_PROTOCOL[style], False, 0
    # an ADD listens on FROM_PORT unless told otherwise; a plain session on every port
    listen_port = parse_int(command, "LISTEN_PORT", low=0, high=65535, default=from_port if is_add else 0)
    if is_stream and listen_port not in (0, from_port):
        raise SamError(I2P_ERROR, "LISTEN_PORT of a STREAM subsession must be 0 or FROM_PORT")
    return SubsessionSpec(style, nickname, from_port, to_port, protocol, listen_port, listen_protocol, header,
                          forward_port, host, router_options(command))


def check_primary_options(command: Command) -> None:
    for key in _PRIMARY_FORBIDDEN:
        if command.get(key) is not None:
            raise SamError(I2P_ERROR, f"{key} is not allowed on a PRIMARY session")


def route(subsessions: list[Subsession], protocol: int, to_port: int) -> Subsession | None:
    """The subsession incoming traffic goes to: same style (or a RAW listening on that protocol),
    exact listen port before port 0, exact protocol before protocol 0; None drops it."""
    best: Subsession | None = None
    best_score = -1
    for sub in subsessions:
        spec = sub.spec
        if protocol == PROTO_STREAMING:
            if spec.style != STREAM:
                continue
            protocol_exact = True
        elif spec.style == RAW:
            if spec.listen_protocol not in (protocol, 0):
                continue
            protocol_exact = spec.listen_protocol == protocol
        elif spec.style == STREAM or STYLE_PROTOCOL[spec.style] != protocol:
            continue
        else:
            protocol_exact = True
        if spec.listen_port not in (to_port, 0):
            continue
        score = (spec.listen_port == to_port and to_port != 0) * 4 + protocol_exact * 2 + (spec.style != RAW)
        if score > best_score:
            best, best_score = sub, score
    return best


class Subsession:
    """A nickname traffic is sent and received under; a plain session is its own single subsession."""

    def __init__(self, spec: SubsessionSpec, owner: DestinationSession):
        self.spec = spec
        self.owner = owner
        self.accept_waiters: deque[Any] = deque()
        """Futures of pending STREAM ACCEPTs, oldest first."""
        self.backlog: deque[Any] = deque()
        """Incoming streams waiting for an ACCEPT."""
        self.forward: Any = None
        """The active STREAM FORWARD, if any."""
        self.udp_target: tuple[str, int] | None = None
        self.closed = False

    @property
    def nickname(self) -> str:
        return self.spec.nickname

    @property
    def style(self) -> str:
        return self.spec.style

    def listen_key(self) -> tuple[str, int, int]:
        return self.spec.style, self.spec.listen_port, self.spec.listen_protocol


class DestinationSession:
    """What one SESSION CREATE made: keys, the router session, and its subsessions."""

    def __init__(self, nickname: str, style: str, keys: PrivateKeys, control: Any, version: tuple[int, int]):
        self.nickname = nickname
        self.style = style
        self.keys = keys
        self.control = control
        """The control connection; the session lives as long as it does."""
        self.version = version
        self.backend: BackendSession | None = None
        self.subsessions: dict[str, Subsession] = {}
        self.closed = False

    @property
    def is_primary(self) -> bool:
        return self.style == PRIMARY

    def route(self, protocol: int, to_port: int) -> Subsession | None:
        return route(list(self.subsessions.values()), protocol, to_port)

    def check_add(self, spec: SubsessionSpec) -> None:
        key = (spec.style, spec.listen_port, spec.listen_protocol)
        if any(sub.listen_key() == key for sub in self.subsessions.values()):
            raise SamError(I2P_ERROR, "a subsession of that style already listens on that port and protocol")
        if spec.style == DATAGRAM and self.keys.is_offline:
            raise SamError(I2P_ERROR, "offline-signed destinations cannot send DATAGRAM (use DATAGRAM2)")


class SessionRegistry:
    """Nicknames and destinations in use on the bridge; both are unique bridge-wide."""

    def __init__(self, max_sessions: int = 256):
        self.max_sessions = max_sessions
        self._names: dict[str, Subsession | DestinationSession | None] = {}
        self._destinations: dict[bytes, DestinationSession | None] = {}

    def __len__(self) -> int:
        return len(self._destinations)

    def reserve(self, nickname: str, dest_hash: bytes | None = None) -> None:
        """Claim a nickname (and a destination) before the slow part of SESSION CREATE/ADD."""
        if nickname in self._names:
            raise SamError(DUPLICATED_ID, f"ID {nickname!r} is in use")
        if dest_hash is not None:
            if dest_hash in self._destinations:
                raise SamError(DUPLICATED_DEST, "that destination is in use")
            if len(self._destinations) >= self.max_sessions:
                raise SamError(I2P_ERROR, "too many sessions")
            self._destinations[dest_hash] = None
        self._names[nickname] = None

    def release(self, nickname: str, dest_hash: bytes | None = None) -> None:
        self._names.pop(nickname, None)
        if dest_hash is not None:
            self._destinations.pop(dest_hash, None)

    def register(self, session: DestinationSession) -> None:
        self._destinations[session.keys.destination.hash] = session
        self._names[session.nickname] = session.subsessions.get(session.nickname, session)

    def add_subsession(self, sub: Subsession) -> None:
        self._names[sub.nickname] = sub

    def remove_subsession(self, sub: Subsession) -> None:
        if self._names.get(sub.nickname) is sub:
            del self._names[sub.nickname]

    def unregister(self, session: DestinationSession) -> None:
        for sub in session.subsessions.values():
            self.remove_subsession(sub)
        if self._names.get(session.nickname) is session:
            del self._names[session.nickname]
        if self._destinations.get(session.keys.destination.hash) is session:
            del self._destinations[session.keys.destination.hash]

    def find(self, nickname: str | None) -> Subsession | DestinationSession:
        """The subsession (or PRIMARY session) of a nickname; INVALID_ID when there is none."""
        if nickname is None:
            raise SamError(I2P_ERROR, "ID is missing")
        found = self._names.get(nickname)
        if found is None:
            raise SamError(INVALID_ID, f"no session with ID {nickname!r}")
        return found

    def find_subsession(self, nickname: str | None, *styles: str) -> Subsession:
        """A subsession that can carry traffic of one of `styles`."""
        found = self.find(nickname)
        if isinstance(found, DestinationSession):
            raise SamError(I2P_ERROR, "no data on a PRIMARY session ID: use a subsession")
        if styles and found.style not in styles:
            raise SamError(I2P_ERROR, f"session {nickname!r} is STYLE={found.style}")
        return found

    def sessions(self) -> list[DestinationSession]:
        return [s for s in self._destinations.values() if s is not None]
