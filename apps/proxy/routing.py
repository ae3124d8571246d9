"""Where a host goes (I2P, outproxy, refused) and which outproxy carries a site; no I/O."""
from __future__ import annotations

import ipaddress
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from apps.network.base import B32_NAME, B33_NAME, B64_MIN_CHARS
from core.data.errors import ProtocolError
from core.data.identity import Destination

I2P_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.i2p")
PROXY_HOSTS = ("proxy.i2p",)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
MAX_STICKY = 4096


@dataclass(frozen=True, slots=True)
class Route:
    """kind: "b32", "b33", "name" (address book), "b64" (`destination` set), "status" (the proxy's own page),
    "local" (refused), "clearnet" (outproxy), "invalid"."""

    kind: str
    host: str
    destination: Destination | None = None


def classify(host: str) -> Route:
    host = host.rstrip(".")
    if len(host) >= B64_MIN_CHARS:      # Base64 is case-sensitive
        b64 = host[:-4] if host.lower().endswith(".i2p") else host
        return destination_route(b64, host)
    host = host.lower()
    if host in PROXY_HOSTS:
        return Route("status", host)
    if B32_NAME.fullmatch(host):
        return Route("b32", host)
    if B33_NAME.fullmatch(host):
        return Route("b33", host)
    if host.endswith(".i2p"):
        return Route("name", host) if I2P_NAME.fullmatch(host) and len(host) <= 67 else Route("invalid", host)
    if is_local(host):
        return Route("local", host)
    return Route("clearnet", host)


def destination_route(b64: str, host: str) -> Route:
    try:
        return Route("b64", host, Destination.from_b64(b64))
    except (ProtocolError, ValueError):
        return Route("invalid", host)


def is_local(host: str) -> bool:
    """localhost, private, loopback, link-local and other non-global addresses, and names without a dot."""
    host = host.strip("[]").lower()
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    return host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host


@dataclass(frozen=True, slots=True)
class Outproxy:
    """An outproxy: an I2P destination running an HTTP proxy (`kind` "i2p", `address` a name, b32 or Base64),
    or a SOCKS5 server reached over TCP (`kind` "socks", `address` host, `port`)."""

    kind: str
    address: str
    port: int = 0

    def __str__(self) -> str:
        return f"socks://{self.address}:{self.port}" if self.kind == "socks" else self.address


def parse_outproxy(text: str) -> Outproxy:
    """`exit.example.i2p`, `http://exit.example.i2p`, a b32 or Base64 destination, or `socks://host:port`."""
    text = text.strip()
    if text.lower().startswith("socks://") or text.lower().startswith("socks5://"):
        rest = text.split("://", 1)[1].rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError(f"{text!r}: a SOCKS outproxy is socks://host:port")
        return Outproxy("socks", host.strip("[]"), int(port))
    if text.lower().startswith("http://"):
        text = text[7:].split("/", 1)[0]
    route = classify(text if len(text) >= B64_MIN_CHARS or text.endswith(".i2p") else text + ".i2p")
    if route.kind not in ("b32", "name", "b64"):
        raise ValueError(f"{text!r}: an outproxy is an I2P destination (name.i2p, b32, Base64) or socks://host:port")
    return Outproxy("i2p", text)


class OutproxyChooser:
    """Sticky per site: a site keeps its outproxy (so its cookies and sessions see one exit) until it fails."""

    def __init__(self, outproxies: list[Outproxy]):
        self.outproxies = list(outproxies)
        self._sticky: OrderedDict[str, int] = OrderedDict()

    def order(self, site: str) -> list[Outproxy]:
        """Outproxies to try for `site`, its sticky one first."""
        if not self.outproxies:
            return []
        n = len(self.outproxies)
        first = self._sticky.get(site, zlib.crc32(site.encode()) % n)
        return [self.outproxies[(first + i) % n] for i in range(n)]

    def worked(self, site: str, outproxy: Outproxy) -> None:
        self._sticky[site] = self.outproxies.index(outproxy)
        self._sticky.move_to_end(site)
        while len(self._sticky) > MAX_STICKY:
            self._sticky.popitem(last=False)
