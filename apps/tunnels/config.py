"""i2pd's tunnels.conf format: INI sections, one per tunnel, in tunnels.conf and tunnels.d/*.conf.

    [irc]
    type = client
    address = 127.0.0.1
    port = 6668
    destination = irc.postman.i2p
    destinationport = 6667
    keys = irc-keys.dat

Comment lines start with `#` or `;` (as boost's INI reader that i2pd uses). A section with a bad line
or value is left out and reported with file:line; the other sections are unharmed. Unknown options
are warned about and ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from core.data.encoding import b32decode
from core.data.keytypes import CRYPTO_TYPES, CRYPTO_X25519, SIG_ED25519, SIG_TYPES

CLIENT_TYPES = frozenset({"client", "ircclient"})          # ircclient: Java I2PTunnel's filtered IRC client
SERVER_TYPES = frozenset({"server", "http", "irc"})
UDP_TYPES = frozenset({"udpclient", "udpserver"})
PROXY_TYPES = frozenset({"socks", "httpproxy"})
TUNNEL_TYPES = CLIENT_TYPES | SERVER_TYPES | UDP_TYPES | PROXY_TYPES
SESSION_OPTION_PREFIXES = ("inbound.", "outbound.", "i2cp.", "i2p.streaming.")
KNOWN_OPTIONS = frozenset({
    "type", "address", "port", "destination", "destinationport", "keys", "signaturetype", "cryptotype",
    "inport", "accesslist", "host", "hostoverride", "gzip", "i2pheaders", "webircpassword",
    "keepaliveinterval", "connecttimeout", "maxconns"})
# i2pd options read but not acted on here; a warning says so
UNSUPPORTED_OPTIONS = frozenset({"enableuniquelocal", "ssl", "whitelist"})
TRANSIENT = "transient"
DEFAULT_CONNECT_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 256
MAX_FILE_BYTES = 1 << 20
B32_HASH = re.compile(r"[a-z2-7]{52}")
TRUE_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
              "off": False}


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """A line of a tunnels file that was not understood; `fatal` ones drop their section."""

    file: str
    line: int
    message: str
    section: str | None = None
    fatal: bool = True

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: [{self.section}] {self.message}" if self.section else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """One section, checked and typed. Options a type does not use keep their defaults."""

    name: str
    type: str
    file: str = ""
    line: int = 0
    address: str = "127.0.0.1"
    port: int = 0
    destination: str = ""
    destination_port: int = 0
    keys: str = TRANSIENT
    signature_type: int = SIG_ED25519
    crypto_type: int = CRYPTO_X25519
    inport: int = 0
    accesslist: tuple[bytes, ...] = ()
    host: str = ""
    host_override: str = ""
    gzip: bool = False
    i2p_headers: bool = True
    webirc_password: str = ""
    keepalive_interval: int = 0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    session_options: tuple[tuple[str, str], ...] = ()
    raw: tuple[tuple[str, str], ...] = ()
    """Every option as written (for the proxy factory, and to tell what changed on reload)."""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def transient(self) -> bool:
        return self.keys == TRANSIENT or self.keys.startswith(TRANSIENT + "-") or not self.keys

    @property
    def destinations(self) -> tuple[str, ...]:
        """`destination` may list several, comma-separated: each connection picks one."""
        return tuple(d.strip() for d in self.destination.split(",") if d.strip())

    @property
    def is_client(self) -> bool:
        return self.type in CLIENT_TYPES

    @property
    def is_server(self) -> bool:
        return self.type in SERVER_TYPES

    @property
    def is_proxy(self) -> bool:
        return self.type in PROXY_TYPES

    @property
    def listens(self) -> bool:
        return self.type in CLIENT_TYPES or self.type in PROXY_TYPES or self.type == "udpclient"


@dataclass(frozen=True, slots=True)
class TunnelsConfig:
    tunnels: tuple[TunnelConfig, ...] = ()
    problems: tuple[ConfigProblem, ...] = ()

    @property
    def errors(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if p.fatal)

    @property
    def warnings(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if not p.fatal)

    def get(self, name: str) -> TunnelConfig | None:
        return next((t for t in self.tunnels if t.name == name), None)


@dataclass(slots=True)
class _Section:
    name: str
    line: int
    options: dict[str, tuple[str, int]] = field(default_factory=dict)
    broken: bool = False


class _SectionError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def parse_ini(text: str, file: str) -> tuple[list[_Section], list[ConfigProblem]]:
    """Sections with their options and line numbers; problems for lines that are not INI."""
    sections: list[_Section] = []
    problems: list[ConfigProblem] = []
    current: _Section | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or not line[1:-1].strip():
                problems.append(ConfigProblem(file, number, f"bad section header {line[:60]!r}"))
                current = _Section("", number, broken=True)   # its lines belong to no tunnel
                continue
            current = _Section(line[1:-1].strip(), number)
            sections.append(current)
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(ConfigProblem(file, number, f"not 'key = value': {line[:60]!r}",
                                          current.name if current else None))
            if current is not None:
                current.broken = True
            continue
        if current is None:
            problems.append(ConfigProblem(file, number, f"option {key!r} outside any [section]"))
            continue
        if current.broken and not current.name:
            continue
        if key in current.options:
            problems.append(ConfigProblem(file, number, f"duplicate option {key!r}", current.name))
            current.broken = True
            continue
        current.options[key] = (value.strip(), number)
    return sections, problems


def _port(value: str, line: int, key: str, *, allow_zero: bool = True) -> int:
    try:
        port = int(value)
    except ValueError:
        raise _SectionError(line, f"{key} = {value!r} is not a port number") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise _SectionError(line, f"{key} = {value} is out of range")
    return port


def _int(value: str, line: int, key: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _SectionError(line, f"{key} = {value!r} is not a number") from None
    if not low <= number <= high:
        raise _SectionError(line, f"{key} = {value} is not within {low}..{high}")
    return number


def _bool(value: str, line: int, key: str) -> bool:
    try:
        return TRUE_WORDS[value.lower()]
    except KeyError:
        raise _SectionError(line, f"{key} = {value!r} is not true or false") from None


def parse_accesslist(value: str, line: int = 0) -> tuple[bytes, ...]:
    """Comma-separated destination hashes in Base32, with or without `.b32.i2p`."""
    hashes = []
    for item in value.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item.endswith(".b32.i2p"):
            item = item[:-8]
        if not B32_HASH.fullmatch(item):
            raise _SectionError(line, f"accesslist entry {item[:60]!r} is not a b32 destination hash")
        hashes.append(b32decode(item))
    return tuple(hashes)


def build_tunnel(section: _Section, file: str) -> tuple[TunnelConfig, list[ConfigProblem]]:
    """A section's TunnelConfig and its warnings; raises _SectionError for a bad value."""
    warnings: list[ConfigProblem] = []
    opts = section.options
    opts = {k.lower() if not k.lower().startswith(SESSION_OPTION_PREFIXES) else k: v for k, v in opts.items()}
    if "type" not in opts:
        raise _SectionError(section.line, "no 'type' option")
    kind = opts["type"][0].lower()
    if kind not in TUNNEL_TYPES:
        raise _SectionError(opts["type"][1], f"unknown type {kind!r} (one of {', '.join(sorted(TUNNEL_TYPES))})")
    values: dict[str, object] = {}
    session: list[tuple[str, str]] = []
    for written, (value, line) in opts.items():
        key = written.lower()
        if key.startswith(SESSION_OPTION_PREFIXES):
            session.append((written, value))      # as written: the router reads i2cp.leaseSetEncType
        elif kind in PROXY_TYPES:
            continue                     # the proxy's own options go to its factory as written
        elif key in UNSUPPORTED_OPTIONS:
            warnings.append(ConfigProblem(file, line, f"option {key!r} is not supported and is ignored",
                                          section.name, fatal=False))
        elif key not in KNOWN_OPTIONS:
            warnings.append(ConfigProblem(file, line, f"unknown option {key!r} ignored", section.name, fatal=False))
        elif key in ("port", "destinationport", "inport"):
            values[key] = _port(value, line, key)
        elif key == "signaturetype":
            values[key] = _int(value, line, key, 0, 0xFFFF)
            if values[key] not in SIG_TYPES:
                raise _SectionError(line, f"signaturetype = {value} is not a known signature type")
        elif key == "cryptotype":
            values[key] = _int(value, line, key, 0, 0xFFFF)
            if values[key] not in CRYPTO_TYPES:
                raise _SectionError(line, f"cryptotype = {value} is not a known crypto type")
        elif key == "accesslist":
            values[key] = parse_accesslist(value, line)
        elif key in ("gzip", "i2pheaders"):
            values[key] = _bool(value, line, key)
        elif key == "keepaliveinterval":
            values[key] = _int(value, line, key, 0, 86400)
        elif key == "connecttimeout":
            values[key] = _int(value, line, key, 0, 3600)
        elif key == "maxconns":
            values[key] = _int(value, line, key, 1, 65535)
        else:
            values[key] = value
    if kind in CLIENT_TYPES or kind == "udpclient":
        if not str(values.get("destination", "")).strip():
            raise _SectionError(section.line, f"a {kind} tunnel needs 'destination'")
    if kind in CLIENT_TYPES or kind in SERVER_TYPES or kind in UDP_TYPES:
        if "port" not in opts:
            raise _SectionError(section.line, f"a {kind} tunnel needs 'port'")
    if kind in SERVER_TYPES and not values.get("port"):
        raise _SectionError(opts["port"][1], "a server tunnel's port must not be 0")
    if kind in SERVER_TYPES or kind == "udpserver":
        if not str(values.get("host", "")).strip():
            raise _SectionError(section.line, f"a {kind} tunnel needs 'host'")
    default_address = "127.0.0.1" if kind in CLIENT_TYPES or kind in PROXY_TYPES or kind in UDP_TYPES else ""
    # i2pd: `gzip` deflates what this tunnel's destination sends (streams of a server tunnel, datagrams of a UDP
    # tunnel; a udpclient's default is on, every other's off); receivers inflate either way
    gzip = bool(values.get("gzip", kind == "udpclient"))
    if kind not in PROXY_TYPES and not any(k.lower() == "i2cp.gzip" for k, _ in session):
        session.append(("i2cp.gzip", "true" if gzip else "false"))
    tunnel = TunnelConfig(
        name=section.name, type=kind, file=file, line=section.line,
        address=str(values.get("address", default_address)).strip() or default_address,
        port=int(values.get("port", 0)), destination=str(values.get("destination", "")).strip(),
        destination_port=int(values.get("destinationport", 0)),
        keys=str(values.get("keys", TRANSIENT)).strip() or TRANSIENT,
        signature_type=int(values.get("signaturetype", SIG_ED25519)),
        crypto_type=int(values.get("cryptotype", CRYPTO_X25519)), inport=int(values.get("inport", 0)),
        accesslist=values.get("accesslist", ()), host=str(values.get("host", "")).strip(),
        host_override=str(values.get("hostoverride", "")).strip(), gzip=gzip,
        i2p_headers=bool(values.get("i2pheaders", True)), webirc_password=str(values.get("webircpassword", "")),
        keepalive_interval=int(values.get("keepaliveinterval", 0)),
        connect_timeout=float(values.get("connecttimeout") or DEFAULT_CONNECT_TIMEOUT),
        max_connections=int(values.get("maxconns", DEFAULT_MAX_CONNECTIONS)),
        session_options=tuple(sorted(session)),
        raw=tuple(sorted((k, v) for k, (v, _) in opts.items())))
    return tunnel, warnings


def parse_tunnels(text: str, file: str = "tunnels.conf",
                  taken: Iterable[str] = ()) -> tuple[list[TunnelConfig], list[ConfigProblem]]:
    """The tunnels of one file; `taken` names sections already defined by an earlier file."""
    sections, problems = parse_ini(text, file)
    tunnels: list[TunnelConfig] = []
    seen = set(taken)
    for section in sections:
        if section.name in seen:
            problems.append(ConfigProblem(file, section.line, "a tunnel of this name is already defined", section.name))
            continue
        seen.add(section.name)
        if section.broken:
            problems.append(ConfigProblem(file, section.line, "section left out (bad lines above)", section.name))
            continue
        try:
            tunnel, warnings = build_tunnel(section, file)
        except _SectionError as exc:
            problems.append(ConfigProblem(file, exc.line, str(exc), section.name))
            continue
        tunnels.append(tunnel)
        problems.extend(warnings)
    problems.sort(key=lambda p: p.line)
    return tunnels, problems


def load_tunnels(conf_path: Path, conf_dir: Path | None = None) -> TunnelsConfig:
    """tunnels.conf, then tunnels.d/*.conf in name order (as i2pd reads them); missing files are no tunnels."""
    files = [conf_path] if conf_path.is_file() else []
    if conf_dir is not None and conf_dir.is_dir():
        files += sorted(p for p in conf_dir.glob("*.conf") if p.is_file())
    tunnels: list[TunnelConfig] = []
    problems: list[ConfigProblem] = []
    for path in files:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                problems.append(ConfigProblem(str(path), 0, f"larger than {MAX_FILE_BYTES} bytes, not read"))
                continue
            text = path.read_text("utf-8", errors="replace")
        except OSError as exc:
            problems.append(ConfigProblem(str(path), 0, f"cannot read: {exc.strerror or exc}"))
            continue
        found, trouble = parse_tunnels(text, str(path), (t.name for t in tunnels))
        tunnels += found
        problems += trouble
    return TunnelsConfig(tuple(tunnels), tuple(problems))
