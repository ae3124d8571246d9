"""The client side of SAM v3, sans-I/O: the command lines a client sends and what the bridge's
replies mean (samv3.md). Lines are tokenized and formatted by core.sam.parser, the bridge's own
parser; here they become the port's errors (base.NetworkError and subclasses).

Every reply a bridge may send is checked: garbage, a reply to another command, a destination
that is not one, all raise SamProtocolError (a NetworkError), never anything else.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from core.data.encoding import b64decode, b64encode
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.sam.parser import (CANT_REACH_PEER, DUPLICATED_DEST, DUPLICATED_ID, INVALID_ID, INVALID_KEY,
                             KEY_NOT_FOUND, LEASESET_NOT_FOUND, NOVERSION, OK, PEER_NOT_FOUND, TIMEOUT, Command,
                             format_line, parse_int, parse_line, version_tuple)

from .base import ConnectTimeout, Datagram, NameNotFound, NetworkError, PeerNotFound, PeerUnreachable

MIN_VERSION = "3.1"             # samv3.md "Version 3.1 Changes": the recommended minimum (signature types)
MAX_VERSION = "3.3"
PORTS_VERSION = (3, 2)          # samv3.md "Version 3.2 Changes": FROM_PORT/TO_PORT
CONCURRENT_ACCEPT_VERSION = (3, 2)   # samv3.md "Accept Request": several pending ACCEPTs per session
PRIMARY_VERSION = (3, 3)        # samv3.md "SAM PRIMARY Sessions (V3.3 and higher)"
SIGNATURE_TYPE = "7"            # Ed25519; the SAM default (DSA_SHA1) is not what anyone wants
# i2pd publishes only the destination's own (ElGamal) key unless told: ECIES first, as Java's default
DEFAULT_OPTIONS = {"i2cp.leaseSetEncType": "4,0"}
MAX_HEADER_LINE = 16 * 1024     # a forwarded datagram's first line: a destination (with offline keys) and ports
MAX_REPLIABLE_SIZE = 31744      # samv3.md "Sending Repliable or Raw Datagrams"
MAX_RAW_SIZE = 32768            # samv3.md "SAM Anonymous (Raw) Datagrams"
_NICKNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OPTION_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# options the client sets itself: a caller's option of these names would change what the session is
_RESERVED_OPTIONS = frozenset({"STYLE", "ID", "DESTINATION", "SIGNATURE_TYPE", "PORT", "HOST", "FROM_PORT", "TO_PORT",
                               "PROTOCOL", "HEADER", "LISTEN_PORT", "LISTEN_PROTOCOL", "SILENT"})


class SamProtocolError(NetworkError):
    """The SAM bridge answered something that is not SAM, or not an answer to what was asked."""


class SamRefused(NetworkError):
    """The SAM bridge refused a command; `result` is its RESULT code."""

    def __init__(self, result: str, message: str):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------- lines the client sends

def hello(min_version: str = MIN_VERSION, max_version: str = MAX_VERSION, user: str | None = None,
          password: str | None = None) -> bytes:
    """samv3.md "SAM Connection Handshake"."""
    return format_line("HELLO", "VERSION", MIN=min_version, MAX=max_version, USER=user, PASSWORD=password)


def check_nickname(nickname: str) -> str:
    if not _NICKNAME.fullmatch(nickname):
        raise ValueError(f"SAM session ID {nickname!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return nickname


def session_options(options: Mapping[str, str]) -> list[tuple[str, str]]:
    """I2CP and streaming options as SESSION CREATE passes them; a key or value SAM cannot carry is a ValueError."""
    items = []
    for key, value in options.items():
        text = str(value)
        if not _OPTION_KEY.fullmatch(key) or key in _RESERVED_OPTIONS:
            raise ValueError(f"session option {key!r} cannot be passed over SAM")
        if any(ch in text for ch in ' \t"\\\r\n'):   # i2pd splits options at spaces and knows no quotes
            raise ValueError(f"session option {key}: value {text!r} holds a space, quote or newline")
        items.append((key, text))
    return items


def session_create(style: str, nickname: str, private_keys_b64: str | None,
                   options: Mapping[str, str] = {}, **sam_options: object) -> bytes:
    """samv3.md "Session Creation Request"; `private_keys_b64` None makes a TRANSIENT Ed25519 destination."""
    items: list[tuple[str, object]] = [("STYLE", style), ("ID", check_nickname(nickname))]
    if private_keys_b64 is None:
        items += [("DESTINATION", "TRANSIENT"), ("SIGNATURE_TYPE", SIGNATURE_TYPE)]
    else:
        items.append(("DESTINATION", private_keys_b64))
    items += list(sam_options.items())
    items += session_options({**DEFAULT_OPTIONS, **options})
    return format_line("SESSION", "CREATE", items)


def session_add(style: str, nickname: str, **sam_options: object) -> bytes:
    """samv3.md "Creating a Subsession"."""
    return format_line("SESSION", "ADD", [("STYLE", style), ("ID", check_nickname(nickname)), *sam_options.items()])


def stream_connect(nickname: str, destination: Destination, version: tuple[int, int], *, from_port: int = 0,
                   to_port: int = 0) -> bytes:
    """samv3.md "Connect Request"; ports only from 3.2 on (a 3.1 bridge may refuse unknown options)."""
    ports: dict[str, object] = {}
    if version >= PORTS_VERSION:
        ports = {"FROM_PORT": from_port, "TO_PORT": to_port}
    return format_line("STREAM", "CONNECT", ID=nickname, DESTINATION=destination.b64, SILENT="false", **ports)


def stream_accept(nickname: str) -> bytes:
    """samv3.md "Accept Request"."""
    return format_line("STREAM", "ACCEPT", ID=nickname, SILENT="false")


def naming_lookup(name: str) -> bytes:
    """samv3.md "Host Name Lookup"."""
    return format_line("NAMING", "LOOKUP", NAME=name)


def datagram_header(version: str, nickname: str, destination: Destination, *, from_port: int = 0,
                    to_port: int = 0, with_ports: bool = True) -> bytes:
    """samv3.md "Sending Repliable or Raw Datagrams": the first line of a packet to the bridge's UDP port.

    Without `with_ports` no option follows the destination: i2pd reads all that follows the
    nickname as the destination."""
    words = [version, nickname, destination.b64]
    if with_ports and (from_port or to_port):
        words += [f"FROM_PORT={from_port}", f"TO_PORT={to_port}"]
    return (" ".join(words) + "\n").encode("ascii")


# ---------------------------------------------------------------- replies

def parse_reply(line: bytes, verb: str, action: str) -> Command:
    """A reply line that must be `verb action ...`; SamProtocolError for anything else."""
    try:
        command = parse_line(line)
    except ProtocolError as exc:
        raise SamProtocolError(f"SAM bridge sent a malformed line ({exc.reason})") from None
    if (command.verb, command.action) != (verb, action):
        shown = f"{command.verb} {command.action}".strip()[:40]
        raise SamProtocolError(f"SAM bridge answered {shown!r} where {verb} {action} was expected")
    return command


def result_of(command: Command) -> tuple[str, str]:
    """(RESULT, MESSAGE) of a reply; a reply without RESULT is a protocol error."""
    result = command.get("RESULT")
    if result is None:
        raise SamProtocolError(f"SAM bridge's {command.verb} {command.action} has no RESULT")
    return result.upper(), (command.get("MESSAGE") or "")[:200]


def parse_hello_reply(line: bytes) -> tuple[int, int]:
    """The version the bridge chose; NetworkError when it has none of 3.1-3.3."""
    command = parse_reply(line, "HELLO", "REPLY")
    result, message = result_of(command)
    if result == NOVERSION:
        raise SamRefused(result, "SAM bridge speaks no version from 3.1 to 3.3")
    if result != OK:
        raise SamRefused(result, f"SAM bridge refused HELLO: {result} {message}".strip())
    text = command.get("VERSION")
    try:
        version = version_tuple(text) if text is not None else None
    except ProtocolError:
        version = None
    if version is None:
        raise SamProtocolError(f"SAM bridge's HELLO REPLY has no valid VERSION ({(text or '')[:20]!r})")
    if not (3, 1) <= version <= (3, 99):
        raise SamRefused(NOVERSION, f"SAM bridge chose version {text}, not 3.1 or later")
    return version


def parse_session_status(line: bytes, what: str) -> Command:
    """A SESSION STATUS reply that must be OK; the refusal as SamRefused (naming `what`)."""
    command = parse_reply(line, "SESSION", "STATUS")
    result, message = result_of(command)
    if result == OK:
        return command
    reasons = {DUPLICATED_ID: "the session ID is in use", DUPLICATED_DEST: "the destination is in use",
               INVALID_KEY: "the bridge does not take these private keys", INVALID_ID: "bad session ID"}
    raise SamRefused(result, f"SAM bridge refused {what}: {reasons.get(result, result)} {message}".strip())


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """What SESSION STATUS RESULT=OK DESTINATION=... gives: the private keys as the bridge sent them
    (to reuse verbatim) and, where this side can read them, parsed."""

    b64: str
    keys: PrivateKeys | None


def parse_session_keys(command: Command) -> SessionKeys:
    """samv3.md "Session Creation Response": DESTINATION=$privkey."""
    text = command.get("DESTINATION")
    if text is None:
        raise SamProtocolError("SAM bridge's SESSION STATUS has no DESTINATION")
    try:
        raw = b64decode(text)
    except (ProtocolError, ValueError):
        raise SamProtocolError("SAM bridge's SESSION STATUS DESTINATION is not Base64") from None
    try:
        keys = PrivateKeys.parse(raw)
    except ProtocolError:
        keys = None          # a key type this side cannot read: the bridge still can, and NAMING LOOKUP ME tells the rest
    return SessionKeys(text, keys)


def private_keys_b64(keys: PrivateKeys) -> str:
    """samv3.md "Session Creation Request": Destination, Private Key, Signing Private Key[, Offline Signature]."""
    return b64encode(keys.to_bytes())


def stream_error(result: str, message: str, target: str) -> NetworkError:
    """samv3.md "Connect Response": a RESULT that is not OK, as the port's error."""
    lowered = message.lower()
    if result == TIMEOUT:
        return ConnectTimeout(f"{target} did not answer in time")
    if result in (PEER_NOT_FOUND, LEASESET_NOT_FOUND, KEY_NOT_FOUND):
        return PeerNotFound(f"{target}: no LeaseSet found (the destination is offline or unknown)")
    if result == CANT_REACH_PEER:
        # i2pd says CANT_REACH_PEER, with no message or "...not found", when the LeaseSet lookup failed
        if not message or "not found" in lowered or "leaseset" in lowered or "lease set" in lowered:
            return PeerNotFound(f"{target}: no LeaseSet found (the destination is offline or unknown)")
        return PeerUnreachable(f"{target}: {message}")
    if result == INVALID_KEY:
        return NameNotFound(f"{target}: the SAM bridge does not take this destination")
    if result == INVALID_ID:
        return NetworkError(f"the SAM bridge no longer knows this session ({message or 'INVALID_ID'})")
    return PeerUnreachable(f"{target}: {result} {message}".strip())


def parse_stream_status(line: bytes, target: str) -> None:
    """STREAM STATUS of a CONNECT: returns on OK, raises the port's error otherwise."""
    command = parse_reply(line, "STREAM", "STATUS")
    result, message = result_of(command)
    if result != OK:
        raise stream_error(result, message, target)


def parse_accept_status(line: bytes) -> None:
    command = parse_reply(line, "STREAM", "STATUS")
    result, message = result_of(command)
    if result != OK:
        raise SamRefused(result, f"SAM bridge refused STREAM ACCEPT: {result} {message}".strip())


def parse_naming_reply(line: bytes, name: str) -> Destination | None:
    """NAMING REPLY: the destination, None when the bridge has none for the name (INVALID_KEY,
    KEY_NOT_FOUND: i2pd answers INVALID_KEY for a b32 whose LeaseSet it cannot find)."""
    command = parse_reply(line, "NAMING", "REPLY")
    result, message = result_of(command)
    if result in (INVALID_KEY, KEY_NOT_FOUND, LEASESET_NOT_FOUND):
        return None
    if result != OK:
        raise SamRefused(result, f"SAM bridge's lookup of {name} failed: {result} {message}".strip())
    value = command.get("VALUE")
    if value is None:
        raise SamProtocolError("SAM bridge's NAMING REPLY has no VALUE")
    return parse_destination(value)


def parse_destination(text: str) -> Destination:
    try:
        return Destination.from_b64(text)
    except (ProtocolError, ValueError):
        raise SamProtocolError("SAM bridge sent a destination that is not one") from None


@dataclass(frozen=True, slots=True)
class PeerLine:
    """samv3.md "Accept Response": `$destination [FROM_PORT=nnn TO_PORT=nnn]` (ports from 3.2 on)."""

    destination: Destination
    from_port: int | None
    to_port: int | None


def parse_peer_line(line: bytes) -> PeerLine:
    """The line before an accepted stream's data (also a forwarded datagram's first line).

    A STREAM STATUS here is samv3.md "Errors After OK": the bridge gave the ACCEPT up."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SamProtocolError("SAM bridge sent a peer line that is not ASCII") from None
    words = text.split()
    if not words:
        raise SamProtocolError("SAM bridge sent an empty peer line")
    if words[0].upper() == "STREAM":
        command = parse_reply(line, "STREAM", "STATUS")
        result, message = result_of(command)
        raise SamRefused(result, f"SAM bridge ended the ACCEPT: {result} {message}".strip())
    destination = parse_destination(words[0])
    ports: dict[str, int] = {}
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if key in ("FROM_PORT", "TO_PORT"):
            if not eq or not value.isascii() or not value.isdigit() or len(value) > 5 or int(value) > 65535:
                raise SamProtocolError(f"SAM bridge sent a bad {key}")
            ports[key] = int(value)
    return PeerLine(destination, ports.get("FROM_PORT"), ports.get("TO_PORT"))


def parse_forwarded_datagram(packet: bytes) -> tuple[PeerLine, bytes]:
    """samv3.md "Forwarding Raw or Repliable Datagrams": `$destination [FROM_PORT TO_PORT]\\n` payload."""
    newline = packet.find(b"\n", 0, MAX_HEADER_LINE)
    if newline < 0:
        raise SamProtocolError("forwarded datagram without its header line")
    return parse_peer_line(packet[:newline]), packet[newline + 1:]


def parse_forwarded_raw(packet: bytes) -> tuple[int, int, bytes]:
    """A raw datagram forwarded with HEADER=true: `FROM_PORT=n TO_PORT=n PROTOCOL=n\\n` payload."""
    newline = packet.find(b"\n", 0, 256)
    if newline < 0:
        raise SamProtocolError("forwarded raw datagram without its header line")
    ports = {"FROM_PORT": 0, "TO_PORT": 0}
    try:
        words = packet[:newline].decode("ascii").split()
    except UnicodeDecodeError:
        raise SamProtocolError("forwarded raw datagram header is not ASCII") from None
    for word in words:
        key, _, value = word.partition("=")
        if key in ports:
            if not value.isascii() or not value.isdigit() or len(value) > 5 or int(value) > 65535:
                raise SamProtocolError(f"forwarded raw datagram has a bad {key}")
            ports[key] = int(value)
    return ports["FROM_PORT"], ports["TO_PORT"], packet[newline + 1:]


def parse_received_header(line: bytes) -> tuple[Command, int]:
    """samv3.md "Receiving a Datagram" on a control socket: `DATAGRAM|RAW RECEIVED ... SIZE=n`; (line, n)."""
    try:
        command = parse_line(line)
        size = parse_int(command, "SIZE", low=1, high=MAX_RAW_SIZE)
    except ProtocolError:
        raise SamProtocolError("the SAM bridge sent a malformed DATAGRAM/RAW RECEIVED") from None
    if command.action != "RECEIVED" or command.verb not in ("DATAGRAM", "RAW") or size is None:
        raise SamProtocolError("the SAM bridge sent a DATAGRAM/RAW RECEIVED without SIZE")
    return command, size


def received_datagram(command: Command, payload: bytes) -> Datagram:
    """The datagram of a DATAGRAM/RAW RECEIVED (ports from 3.2 on, else 0)."""
    try:
        from_port = parse_int(command, "FROM_PORT", low=0, high=65535, default=0)
        to_port = parse_int(command, "TO_PORT", low=0, high=65535, default=0)
    except ProtocolError:
        raise SamProtocolError("the SAM bridge sent a datagram with bad ports") from None
    if command.verb == "RAW":
        return Datagram(payload, from_port or 0, to_port or 0)
    sender = parse_destination(command.get("DESTINATION") or "")
    return Datagram(payload, from_port or 0, to_port or 0, sender, True)


def version_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"

