"""The HTTP proxy (127.0.0.1:4444) and SOCKS proxy (127.0.0.1:4447) for browsing I2P; see docs/proxy.md."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from apps.service import ServiceError

from .service import ProxyService

__all__ = ["ProxyService", "create_proxy"]

KINDS = ("httpproxy", "socks")
OPTION_PREFIXES = ("inbound.", "outbound.", "i2cp.", "i2p.streaming.", "explicitPeers")


def _bool(value: str, key: str) -> bool:
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise ServiceError(f"{key} = {value!r}: true or false")


def create_proxy(kind: str, options: Mapping[str, str], datadir: Path, network: Any,
                 addressbook: Any = None) -> ProxyService:
    """A proxy from an i2pd tunnels.conf section (`type = httpproxy` or `type = socks`) and its options:
    address, port, keys, outproxy (httpproxy: an I2P HTTP outproxy; socks: with outproxy.enabled and
    outproxyport, an upstream SOCKS server), addresshelper, inbound./outbound./i2cp. options."""
    if kind not in KINDS:
        raise ServiceError(f"type = {kind}: a proxy is one of {', '.join(KINDS)}")
    config: dict[str, Any] = {"host": options.get("address", "127.0.0.1"),
                              "http_enabled": kind == "httpproxy", "socks_enabled": kind == "socks"}
    port_key = "port" if kind == "httpproxy" else "socks_port"
    try:
        config[port_key] = int(options.get("port", "4444" if kind == "httpproxy" else "4447"))
    except ValueError:
        raise ServiceError(f"port = {options.get('port')!r}: not a port number") from None
    keys = options.get("keys", "")
    if keys and keys != "transient" and not keys.startswith("transient"):
        config["keys"] = keys
    if kind == "httpproxy":
        if options.get("outproxy"):
            config["outproxy"] = [o for o in options["outproxy"].replace(",", " ").split() if o]
        if "addresshelper" in options:
            config["addresshelper"] = _bool(options["addresshelper"], "addresshelper")
    elif _bool(options.get("outproxy.enabled", "false"), "outproxy.enabled") and options.get("outproxy"):
        config["outproxy"] = [f"socks://{options['outproxy']}:{options.get('outproxyport', '1080')}"]
    for key, value in options.items():
        if key.startswith(OPTION_PREFIXES):
            config[key] = value
    return ProxyService(config, datadir, network, addressbook=addressbook)
