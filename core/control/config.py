"""DATADIR/control.json: where the I2PControl server listens and its password (0600)."""
from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.clock import Rng
from core.fsutil import atomic_write

CONTROL_FILE = "control.json"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 7650
MAX_PASSWORD_LENGTH = 256


class ControlConfigError(Exception):
    """control.json is missing, unreadable or holds unusable values."""


@dataclass(frozen=True, slots=True)
class ControlConfig:
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    password: str = ""

    def to_json(self) -> str:
        return json.dumps({"address": self.address, "port": self.port, "password": self.password}, indent=2) + "\n"

    def connect_host(self) -> str:
        """The address a local client dials: a wildcard bind is reached on loopback."""
        if self.address in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.address == "::":
            return "::1"
        return self.address


def control_path(datadir: str | os.PathLike) -> Path:
    return Path(datadir).expanduser() / CONTROL_FILE


def generate_password(rng: Rng = os.urandom) -> str:
    return base64.urlsafe_b64encode(rng(18)).decode("ascii")


def validate_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ControlConfigError(f"address {address!r} is not an IP address") from None


def validate_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ControlConfigError(f"port {port!r} is not a number 0-65535")
    return port


def validate_password(password: object) -> str:
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ControlConfigError(f"password must be a string of 1-{MAX_PASSWORD_LENGTH} characters")
    return password


def read_control_config(datadir: str | os.PathLike) -> ControlConfig:
    """Read an existing control.json (for clients); ControlConfigError if absent or bad."""
    path = control_path(datadir)
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ControlConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ControlConfigError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):
        raise ControlConfigError(f"{path} is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ControlConfigError(f"{path} does not hold a JSON object")
    try:
        address = raw.get("address", DEFAULT_ADDRESS)
        if not isinstance(address, str):
            raise ControlConfigError(f"address {address!r} is not a string")
        return ControlConfig(
            address=validate_address(address),
            port=validate_port(raw.get("port", DEFAULT_PORT)),
            password=validate_password(raw.get("password")),
        )
    except ControlConfigError as exc:
        raise ControlConfigError(f"{path}: {exc}") from None


def save_control_config(datadir: str | os.PathLike, config: ControlConfig) -> None:
    atomic_write(control_path(datadir), config.to_json().encode("utf-8"), mode=0o600)


def load_or_create_control_config(datadir: str | os.PathLike, *, address: str | None = None,
                                  port: int | None = None, rng: Rng = os.urandom) -> ControlConfig:
    """Load control.json, creating it with a random password on first start.

    `address`/`port` given by the router's own settings take precedence and are written back,
    so `pyi2p status` always finds the server.
    """
    path = control_path(datadir)
    if path.exists():
        config = read_control_config(datadir)
    else:
        config = ControlConfig(password=generate_password(rng))
    wanted = dataclasses.replace(
        config,
        address=validate_address(address) if address is not None else config.address,
        port=validate_port(port) if port is not None else config.port,
    )
    if wanted != config or not path.exists():
        save_control_config(datadir, wanted)
    return wanted
