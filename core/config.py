"""Router settings: embedded defaults, then DATADIR/config.toml, then command-line flags."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.data.errors import ProtocolError
from core.fsutil import atomic_write_text

DEFAULT_DATADIR = Path("~/.pyi2p").expanduser()
REAL_NETID = 2
PORT_RANGE = (9000, 31000)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ProtocolError):
    """config.toml or a flag holds a value the router cannot use."""


@dataclass(frozen=True, slots=True)
class RouterConfig:
    datadir: Path = DEFAULT_DATADIR
    host: str | None = None          # None: bind all, publish no address (outbound only)
    port: int = 0                    # 0: chosen at first run and kept in config.toml
    netid: int = REAL_NETID
    reseed_file: str | None = None
    reseed_urls: tuple[str, ...] | None = None   # None: the real network's servers for netid 2, none otherwise
    floodfill: bool | str = False    # True, False, or "auto" (taken on when the router qualifies)
    bandwidth: str = "O"             # caps letter: K L M N O P X
    max_connections: int = 256
    control_host: str = "127.0.0.1"
    control_port: int = 7650
    sam_port: int = 7656             # SAM v3 bridge on control_host; 0 turns it off
    sam_udp_port: int = 7655         # SAM datagrams over UDP; 0: only on the control socket
    sam_users: tuple[str, ...] = ()  # "user:password" entries: SAM asks for them (required off loopback)
    log_level: str = "INFO"
    ssu2_enabled: bool = True        # [ssu2] enabled: SSU2 on the same port over UDP (docs/ssu2.md)

    @property
    def config_path(self) -> Path:
        return self.datadir / "config.toml"


_FIELDS = {f.name: f for f in dataclasses.fields(RouterConfig)}
_TYPES = {"datadir": Path, "host": str, "port": int, "netid": int, "reseed_file": str, "reseed_urls": tuple, "floodfill": "floodfill",
          "bandwidth": str, "max_connections": int, "control_host": str, "control_port": int, "sam_port": int, "sam_udp_port": int, "sam_users": tuple, "log_level": str,
          "ssu2_enabled": bool}

_TEMPLATE = """\
# pyi2p router settings. Command-line flags override these for one run.

# NTCP2 port, chosen at random on first start and kept.
port = {port}

# Address to bind and publish. Unset: listen on all addresses and publish no
# address, so peers cannot dial us (we still dial them).
# host = "198.18.0.100"

# Network id: 2 is the real I2P network; a private testnet uses its own (e.g. 42).
netid = {netid}

# A reseed bundle read at start: an .su3 file, a zip of routerInfo-*.dat, or a folder of them.
# reseed_file = "/path/to/seed.zip"

# Reseed servers (HTTPS), asked while fewer than 25 routers are known. Unset: the real
# network's servers when netid is 2, none otherwise.
# reseed_urls = ["https://reseed.example.i2p/"]

# Act as a floodfill (store and answer network database entries): true, false, or "auto"
# (taken on once the router is reachable, fast and up for two hours, while floodfills are few).
floodfill = false

# Bandwidth class published in our caps: K L M N O P X.
bandwidth = "O"

# I2PControl JSON-RPC and the SAM v3 bridge listen on this address (loopback by default).
control_host = "127.0.0.1"
control_port = 7650

# SAM v3.3 for outside applications (0 turns it off), and its UDP datagram port (0: none).
sam_port = 7656
sam_udp_port = 7655

# SSU2, the UDP transport, on the NTCP2 port number (docs/ssu2.md). On by
# default, as in i2pd and Java I2P; `enabled = false` leaves NTCP2 only.
# [ssu2]
# enabled = true

# The applications each have a table; `enabled = false` turns one off. See docs/ for each
# app's settings (docs/proxy.md, docs/naming.md, docs/mail.md, docs/torrent.md);
# I2PTunnel reads tunnels.conf and tunnels.d/*.conf beside this file (docs/i2ptunnel.md).
# [proxy]
# port = 4444
# [naming]
# [mail]
# [torrent]
"""


def _coerce(name: str, value):
    kind = _TYPES[name]
    if value is None:
        return None
    if kind == "floodfill":
        if value == "auto" or isinstance(value, bool):
            return value
        raise ConfigError(f"floodfill must be true, false or \"auto\", not {value!r}", structure="config")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}", structure="config")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, not {value!r}", structure="config")
        return value
    if kind is Path:
        return Path(str(value)).expanduser()
    if kind is tuple:
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"{name} must be a list of strings, not {value!r}", structure="config")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, not {value!r}", structure="config")
    return value


def _validate(config: RouterConfig) -> RouterConfig:
    for name in ("port", "control_port", "sam_port", "sam_udp_port"):
        if not (0 <= getattr(config, name) <= 65535):
            raise ConfigError(f"{name} {getattr(config, name)} is out of range", structure="config")
    if not (0 <= config.netid <= 255):
        raise ConfigError(f"netid {config.netid} is out of range 0-255", structure="config")
    if config.bandwidth not in ("K", "L", "M", "N", "O", "P", "X"):
        raise ConfigError(f"bandwidth {config.bandwidth!r} is not one of K L M N O P X", structure="config")
    if config.max_connections < 1:
        raise ConfigError("max_connections must be at least 1", structure="config")
    if config.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level {config.log_level!r} is not one of {', '.join(LOG_LEVELS)}", structure="config")
    try:
        ipaddress.ip_address(config.control_host)
    except ValueError:
        raise ConfigError(f"control_host {config.control_host!r} is not an IP address", structure="config") from None
    if config.host is not None:
        try:
            ipaddress.ip_address(config.host)
        except ValueError:
            raise ConfigError(f"host {config.host!r} is not an IP address", structure="config") from None
    for entry in config.sam_users:
        if ":" not in entry or not entry.partition(":")[0] or len(entry.partition(":")[2]) < 8:
            raise ConfigError("sam_users entries are \"user:password\" with a password of 8 or more characters",
                              structure="config")
    return config


def load_config(datadir: str | os.PathLike | None = None, overrides: dict | None = None, rng=os.urandom) -> RouterConfig:
    """Read DATADIR/config.toml (writing it with a fresh random port on first start), then apply overrides."""
    base = Path(datadir).expanduser() if datadir else DEFAULT_DATADIR
    path = base / "config.toml"
    values: dict = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}", structure="config") from None
        for name, value in raw.items():
            if name == "ssu2" and isinstance(value, dict):
                for key, setting in value.items():
                    if key != "enabled":
                        raise ConfigError(f"{path}: unknown setting [ssu2] {key!r}", structure="config")
                    values["ssu2_enabled"] = _coerce("ssu2_enabled", setting)
                continue
            if isinstance(value, dict):
                continue    # a table ([proxy], [mail], ...) belongs to the node's apps: read_sections()
            if name not in _TYPES or name == "datadir":
                raise ConfigError(f"{path}: unknown setting {name!r}", structure="config")
            values[name] = _coerce(name, value)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, value)
    config = _validate(RouterConfig(datadir=base, **values))
    if not path.exists():
        port = config.port or _random_port(rng)
        atomic_write_text(path, _TEMPLATE.format(port=port, netid=config.netid))   # what this router runs with
        if not config.port:
            config = dataclasses.replace(config, port=port)
    elif not config.port:
        raise ConfigError(f"{path}: no port set", structure="config")
    return config


SETTINGS = tuple(name for name in _TYPES if name != "datadir")


def change_setting(config: RouterConfig, name: str, value) -> RouterConfig:
    """`config` with one top-level setting changed, from its TOML value or the text a person typed
    ("7656", "true", "a, b" for a list); ConfigError naming the setting when it is not valid."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}", structure="config")
    kind = _TYPES[name]
    if isinstance(value, str):
        text = value.strip()
        if kind is int:
            value = int(text) if text.lstrip("-").isdigit() and len(text) <= 9 else text
        elif kind == "floodfill":
            value = {"true": True, "false": False}.get(text.lower(), text.lower())
        elif kind is tuple:
            value = [part.strip() for part in text.split(",") if part.strip()]
        elif name in ("host", "reseed_file") and not text:
            value = None
        else:
            value = text
    return _validate(dataclasses.replace(config, **{name: _coerce(name, value)}))


def save_settings(datadir: str | os.PathLike, changes: dict) -> None:
    """Set top-level settings in DATADIR/config.toml, keeping every other line (comments, tables) as it is."""
    path = Path(datadir).expanduser() / "config.toml"
    text = path.read_text("utf-8") if path.exists() else ""
    lines = text.splitlines()
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    for name, value in changes.items():
        if name not in _TYPES or name == "datadir":
            raise ConfigError(f"unknown setting {name!r}", structure="config")
        rendered = f"{name} = {_toml_value(_coerce(name, value))}"
        for i in range(first_table):
            if lines[i].split("=", 1)[0].strip() == name:
                lines[i] = rendered
                break
        else:
            lines.insert(first_table, rendered)
            first_table += 1
    new_text = "\n".join(lines) + "\n"
    tomllib.loads(new_text)          # never write a file the next start cannot read
    atomic_write_text(path, new_text)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_sections(datadir: str | os.PathLike | None = None) -> dict[str, dict]:
    """The tables of DATADIR/config.toml (`[proxy]`, `[mail]`, ...): each app's own settings."""
    path = (Path(datadir).expanduser() if datadir else DEFAULT_DATADIR) / "config.toml"
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}", structure="config") from None
    return {name: value for name, value in raw.items() if isinstance(value, dict)}


def _random_port(rng) -> int:
    low, high = PORT_RANGE
    return low + int.from_bytes(rng(4), "big") % (high - low + 1)
