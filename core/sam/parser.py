"""SAM v3 command lines, sans-I/O: tokenizing, reply formatting, version choice, line buffering.

samv3.md "Encoding and Escaping": one command per '\\n'-terminated UTF-8 line,
`COMMAND [SUBCOMMAND] [key=value]...`, values in double quotes when they hold spaces,
`\\"` and `\\\\` escapes (3.2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.data.errors import ParseError, ProtocolError
from core.data.keytypes import SIG_TYPES

MAX_LINE = 64 * 1024
SUPPORTED_VERSIONS = ((3, 0), (3, 1), (3, 2), (3, 3))
_QUOTE_NEEDED = frozenset(' \t"\\')   # '=' needs no quotes: base64 values end in it
_BAD_KEY_CHARS = frozenset(' \t"\\=')

# samv3.md "RESULT Values"
OK = "OK"
CANT_REACH_PEER = "CANT_REACH_PEER"
DUPLICATED_DEST = "DUPLICATED_DEST"
DUPLICATED_ID = "DUPLICATED_ID"
I2P_ERROR = "I2P_ERROR"
INVALID_ID = "INVALID_ID"
INVALID_KEY = "INVALID_KEY"
KEY_NOT_FOUND = "KEY_NOT_FOUND"
PEER_NOT_FOUND = "PEER_NOT_FOUND"
TIMEOUT = "TIMEOUT"
NOVERSION = "NOVERSION"
LEASESET_NOT_FOUND = "LEASESET_NOT_FOUND"

# the reply line each command family answers with
REPLY_OF = {
    "HELLO": ("HELLO", "REPLY"),
    "SESSION": ("SESSION", "STATUS"),
    "STREAM": ("STREAM", "STATUS"),
    "NAMING": ("NAMING", "REPLY"),
    "DEST": ("DEST", "REPLY"),
    "DATAGRAM": ("DATAGRAM", "STATUS"),
    "RAW": ("RAW", "STATUS"),
    "AUTH": ("AUTH", "STATUS"),
}


class SamError(ProtocolError):
    """A command the bridge refuses; `result` is the RESULT code the reply carries."""

    def __init__(self, result: str, message: str):
        super().__init__(message, structure="SAM")
        self.result = result


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed line. `verb` and `action` are upper-cased; keys and values are kept as sent."""

    verb: str
    action: str = ""
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""
    """PING/PONG: the arbitrary text after the word."""

    def get(self, key: str, default: str | None = None) -> str | None:
        """The option's value; an empty value (KEY, KEY= or KEY="") counts as not given."""
        value = self.options.get(key)
        return default if value is None or value == "" else value


def tokenize(line: str) -> list[tuple[str, int]]:
    """Split at unquoted whitespace: (unquoted, unescaped text, index of its first unquoted '=' or -1)."""
    tokens: list[tuple[str, int]] = []
    current: list[str] = []
    eq = -1
    in_token = False
    quoted = False
    quote_start = 0
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n and line[i + 1] in '"\\':
            current.append(line[i + 1])
            in_token = True
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
            quote_start = i
            in_token = True
        elif not quoted and ch in " \t":
            if in_token:
                tokens.append(("".join(current), eq))
                current, eq, in_token = [], -1, False
        else:
            if ch == "=" and not quoted and eq < 0:
                eq = len(current)
            current.append(ch)
            in_token = True
        i += 1
    if quoted:
        raise ParseError("unterminated quote", structure="SAM line", offset=quote_start)
    if in_token:
        tokens.append(("".join(current), eq))
    return tokens


def parse_line(line: str | bytes) -> Command:
    """Parse one command line (without or with its '\\n'). ParseError for anything malformed."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("not UTF-8", structure="SAM line", offset=exc.start) from None
    line = line.rstrip("\r\n")
    if "\n" in line or "\r" in line or "\0" in line:
        raise ParseError("control character inside the line", structure="SAM line")
    stripped = line.lstrip(" \t")
    head, _, rest = stripped.partition(" ")
    word = head.upper()
    if word in ("PING", "PONG") and "\t" not in head:
        return Command(word, text=rest)  # samv3.md "PING/PONG": arbitrary text, echoed as is
    tokens = tokenize(line)
    if not tokens:
        raise ParseError("empty line", structure="SAM line")
    verb_text, verb_eq = tokens[0]
    if verb_eq >= 0 or not verb_text:
        raise ParseError("a line starts with a command word", structure="SAM line", offset=0)
    action = ""
    start = 1
    if len(tokens) > 1 and tokens[1][1] < 0:
        action = tokens[1][0].upper()
        start = 2
    options: dict[str, str] = {}
    for text, eq in tokens[start:]:
        if eq < 0:
            key, value = text, ""            # "KEY" alone: an empty value (3.2)
        else:
            key, value = text[:eq], text[eq + 1:]
        if not key or any(ch in _BAD_KEY_CHARS for ch in key):
            raise ParseError(f"bad option key in {text!r}", structure="SAM line")
        options[key] = value                 # a repeated key: the last one wins, as in Java
    return Command(verb_text.upper(), action, options)


def quote(value: str) -> str:
    """A value as it goes on a line: quoted (with escapes) when it needs to be."""
    if value and not any(ch in _QUOTE_NEEDED for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_line(verb: str, action: str = "", options: dict[str, object] | list[tuple[str, object]] = (),
                **kwargs: object) -> bytes:
    """One reply line with its '\\n'. None values are left out; MESSAGE is always quoted."""
    words = [verb] + ([action] if action else [])
    items = list(options.items()) if isinstance(options, dict) else list(options)
    for key, value in [*items, *kwargs.items()]:
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        if "\n" in text or "\r" in text:
            text = text.replace("\r", " ").replace("\n", " ")
        if key == "MESSAGE":
            words.append(f'{key}="' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            words.append(f"{key}={quote(text)}")
    return (" ".join(words) + "\n").encode("utf-8")


def format_error(verb: str, result: str, message: str | None = None, **extra: object) -> bytes:
    """The error reply of a command family (SESSION STATUS for anything unknown)."""
    reply_verb, reply_action = REPLY_OF.get(verb, ("SESSION", "STATUS"))
    return format_line(reply_verb, reply_action, RESULT=result, **extra, MESSAGE=message)


# ---------------------------------------------------------------- values

def parse_version(text: str) -> tuple[int, int]:
    """"3", "3.1" or "3.1.0" -> (major, minor)."""
    parts = text.strip().split(".")
    if not parts or len(parts) > 3 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        raise SamError(I2P_ERROR, f"bad version {text!r}")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else -1


def negotiate_version(min_text: str | None, max_text: str | None) -> str | None:
    """samv3.md "SAM Connection Handshake": the highest supported version within MIN..MAX.

    A bare major ("3") as MIN means 3.0 and as MAX any 3.x. None when nothing fits."""
    low = (0, 0)
    high = (99, 99)
    if min_text is not None:
        major, minor = parse_version(min_text)
        low = (major, max(minor, 0))
    if max_text is not None:
        major, minor = parse_version(max_text)
        high = (major, 99 if minor < 0 else minor)
    for version in reversed(SUPPORTED_VERSIONS):
        if low <= version <= high:
            return f"{version[0]}.{version[1]}"
    return None


def version_tuple(text: str) -> tuple[int, int]:
    major, minor = parse_version(text)
    return major, max(minor, 0)


_SIG_TYPE_NAMES = {spec.name.upper(): code for code, spec in SIG_TYPES.items()}


def parse_sig_type(text: str) -> int:
    """SIGNATURE_TYPE: a number or a name such as ECDSA_SHA256_P256 (any case)."""
    value = text.strip()
    if value.isascii() and value.isdigit() and len(value) <= 5:
        code = int(value)
        if code in SIG_TYPES:
            return code
    else:
        code = _SIG_TYPE_NAMES.get(value.upper())
        if code is not None:
            return code
    raise SamError(I2P_ERROR, f"unknown signature type {text!r}")


def parse_int(command_or_value: Command | str | None, key: str = "", *, low: int, high: int,
              default: int | None = None) -> int | None:
    """An integer option within [low, high]; `default` when it is not given."""
    if isinstance(command_or_value, Command):
        text = command_or_value.get(key)
    else:
        text = command_or_value or None
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise SamError(I2P_ERROR, f"{key or 'value'} must be a number, got {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise SamError(I2P_ERROR, f"{key or 'value'} must be {low}-{high}, got {value}")
    return value


def parse_bool(command: Command, key: str, default: bool = False) -> bool:
    text = command.get(key)
    if text is None:
        return default
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise SamError(I2P_ERROR, f"{key} must be true or false, got {text!r}")


# ---------------------------------------------------------------- UDP datagrams

@dataclass(frozen=True, slots=True)
class DatagramHeader:
    """samv3.md "Sending Repliable or Raw Datagrams": `3.x nickname destination [options]`."""

    version: str
    nickname: str
    destination: str
    options: dict[str, str]


def parse_datagram_header(packet: bytes) -> tuple[DatagramHeader, bytes]:
    """Split a packet sent to the UDP port into its header line and payload."""
    newline = packet.find(b"\n")
    if newline < 0:
        raise ParseError("no header line", structure="SAM datagram")
    try:
        line = packet[:newline].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("header not UTF-8", structure="SAM datagram", offset=exc.start) from None
    tokens = tokenize(line.rstrip("\r"))
    if len(tokens) < 3 or any(eq >= 0 for _, eq in tokens[:2]):   # a base64 destination may end in "="
        raise ParseError("header needs version, nickname and destination", structure="SAM datagram")
    version = tokens[0][0]
    if version != "3" and not (version.startswith("3.") and version[2:].isascii() and version[2:].isdigit()):
        raise ParseError(f"unsupported version {version!r}", structure="SAM datagram", offset=0)
    options: dict[str, str] = {}
    for text, eq in tokens[3:]:
        key, value = (text, "") if eq < 0 else (text[:eq], text[eq + 1:])
        if not key:
            raise ParseError(f"option without a key: {text!r}", structure="SAM datagram")
        options[key] = value
    return DatagramHeader(version, tokens[1][0], tokens[2][0], options), packet[newline + 1:]


# ---------------------------------------------------------------- line buffer

class LineTooLong(ParseError):
    pass


class LineBuffer:
    """Bytes from a control socket in, complete lines out; the rest stays for stream data."""

    __slots__ = ("_buffer", "max_line")

    def __init__(self, max_line: int = MAX_LINE):
        self._buffer = bytearray()
        self.max_line = max_line

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next line without its '\\n', or None until one is complete."""
        newline = self._buffer.find(b"\n", 0, self.max_line + 1)
        if newline < 0:
            if len(self._buffer) > self.max_line:
                raise LineTooLong(f"line longer than {self.max_line} bytes", structure="SAM line")
            return None
        line = bytes(self._buffer[:newline])
        del self._buffer[:newline + 1]
        return line

    def take(self, n: int) -> bytes | None:
        """Exactly n bytes, or None until that many are here."""
        if len(self._buffer) < n:
            return None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def take_all(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data
