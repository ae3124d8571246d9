"""I2PControl API v1 methods (i2pcontrol.md) and pyi2p.* read-only extensions, over a ControlledRouter."""
from __future__ import annotations

import base64
import dataclasses
import hmac
import inspect
import logging
import math
import os
from collections import Counter, OrderedDict, deque
from typing import Any, Callable

from core.clock import Clock, Rng, SystemClock

from .api import NETWORK_SETTING_KEYS, ControlledRouter, PeerRecord, RouterSnapshot, SettingError, TunnelRecord
from .config import ControlConfig, ControlConfigError, validate_address, validate_password
from .jsonrpc import (API_VERSION_MISSING, API_VERSION_UNSUPPORTED, EXPIRED_TOKEN, INTERNAL_ERROR, INVALID_PARAMS,
                      INVALID_PASSWORD, METHOD_NOT_FOUND, NO_TOKEN, UNKNOWN_TOKEN, RpcError, answer_body)
from .rates import RateHistory

log = logging.getLogger(__name__)

API_VERSION = 1
MAX_AUTH_FAILURES = 10             # wrong passwords within the window before Authenticate refuses all
AUTH_FAILURE_WINDOW_S = 60.0
MIN_NEW_PASSWORD = 8               # a password set through the API
TOKEN_LIFETIME_S = 24 * 3600       # as Java's I2PControl: a token lasts a day
MAX_TOKENS = 64


def b64(data: bytes) -> str:
    """I2P Base64 (common-structures: '-' and '~' replace '+' and '/')."""
    return base64.b64encode(data, altchars=b"-~").decode("ascii")


def to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class TokenStore:
    """Issued tokens with their monotonic expiry; the oldest is dropped beyond `capacity`."""

    def __init__(self, clock: Clock, rng: Rng, lifetime_s: float = TOKEN_LIFETIME_S, capacity: int = MAX_TOKENS):
        self._clock = clock
        self._rng = rng
        self.lifetime_s = lifetime_s
        self.capacity = capacity
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def issue(self) -> str:
        token = self._rng(16).hex()
        self._expiry[token] = self._clock.monotonic() + self.lifetime_s
        while len(self._expiry) > self.capacity:
            self._expiry.popitem(last=False)
        return token

    def check(self, token: Any) -> None:
        if token is None:
            raise RpcError(NO_TOKEN)
        if not isinstance(token, str) or token not in self._expiry:
            raise RpcError(UNKNOWN_TOKEN)
        if self._clock.monotonic() >= self._expiry[token]:
            del self._expiry[token]
            raise RpcError(EXPIRED_TOKEN)

    def revoke_all(self) -> None:
        self._expiry.clear()


def _text(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"{key} must be a string.")
    return value


def _port(key: str, value: Any, low: int = 1) -> int:
    """A port given as a string or, from older clients, a number."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise RpcError(INVALID_PARAMS, f"{key} must be a port number {low}-65535.")
    return value


def _whole(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RpcError(INVALID_PARAMS, f"{key} must be a whole number {low}-{high}.")
    return value


def _setting_value(key: str, value: Any) -> str:
    """Validate a NetworkSetting value; the router receives canonical strings."""
    if key.endswith(".port"):
        return str(_port(key, value))
    if key.endswith(".bw.share"):
        return str(_whole(key, value, 0, 100))
    if key.endswith((".bw.in", ".bw.out")):
        return str(_whole(key, value, 1, 10_000_000))
    if key.endswith((".upnp", ".laptopmode")):
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value not in ("true", "false"):
            raise RpcError(INVALID_PARAMS, f"{key} must be \"true\" or \"false\".")
        return value
    if key.endswith(".detectedip"):
        raise RpcError(INVALID_PARAMS, f"{key} is read-only.")
    if not isinstance(value, str) or not 0 < len(value) <= 255 or not value.isprintable() or " " in value:
        raise RpcError(INVALID_PARAMS, f"{key} must be a non-empty string without spaces.")
    return value


def _router_info_values(s: RouterSnapshot) -> dict[str, Callable[[], Any]]:
    """i2pcontrol.md RouterInfo keys, plus the three i2pd adds (i2pd-specifics.md)."""
    return {
        "i2p.router.status": lambda: s.status_text,
        "i2p.router.uptime": lambda: to_ms(s.uptime_s),
        "i2p.router.version": lambda: s.version,
        "i2p.router.net.bw.inbound.1s": lambda: _finite(s.bw_in_1s),
        "i2p.router.net.bw.inbound.15s": lambda: _finite(s.bw_in_15s),
        "i2p.router.net.bw.outbound.1s": lambda: _finite(s.bw_out_1s),
        "i2p.router.net.bw.outbound.15s": lambda: _finite(s.bw_out_15s),
        "i2p.router.net.status": lambda: int(s.net_status),
        "i2p.router.net.tunnels.participating": lambda: s.participating_tunnels,
        "i2p.router.netdb.activepeers": lambda: s.active_peers,
        "i2p.router.netdb.fastpeers": lambda: s.fast_peers,
        "i2p.router.netdb.highcapacitypeers": lambda: s.high_capacity_peers,
        "i2p.router.netdb.isreseeding": lambda: bool(s.is_reseeding),
        "i2p.router.netdb.knownpeers": lambda: s.known_routers,
        "i2p.router.net.tunnels.successrate": lambda: int(round(s.build_success_ratio * 100)),
        "i2p.router.net.total.received.bytes": lambda: s.bytes_received,
        "i2p.router.net.total.sent.bytes": lambda: s.bytes_sent,
    }


ROUTER_INFO_KEYS = tuple(_router_info_values(None))  # type: ignore[arg-type]

# GetRate stats we can answer (names from Java's stat manager; bw.combined from the 2.10 page)
RATE_STATS = {
    "bw.sendBps": ("bytes_sent",),
    "bw.sendRate": ("bytes_sent",),
    "bw.receiveBps": ("bytes_received",),
    "bw.recvRate": ("bytes_received",),
    "bw.combined": ("bytes_received", "bytes_sent"),
    "tunnel.participatingTunnels": ("participating_tunnels",),
    "router.activePeers": ("active_peers",),
}

_LIFECYCLE_ACTIONS = ("Restart", "RestartGraceful", "Shutdown", "ShutdownGraceful")


def peer_json(peer: PeerRecord) -> dict:
    return {"Hash": b64(peer.router_hash), "Transport": peer.transport, "Inbound": peer.inbound,
            "Caps": peer.caps, "Address": peer.address, "Established": to_ms(peer.established)}


def tunnel_json(tunnel: TunnelRecord) -> dict:
    return {"TunnelId": tunnel.tunnel_id, "Direction": tunnel.direction, "Hops": [b64(h) for h in tunnel.hops],
            "State": tunnel.state, "Expires": to_ms(tunnel.expires), "Pool": tunnel.pool}


class ControlService:
    """Authenticates and answers I2PControl requests; the HTTP server only moves bodies."""

    def __init__(self, router: ControlledRouter, config: ControlConfig, *, clock: Clock | None = None,
                 rng: Rng = os.urandom, save_config: Callable[[ControlConfig], None] | None = None,
                 rate_history_s: int = 3600):
        self.router = router
        self.config = config
        self.clock = clock or SystemClock()
        self.tokens = TokenStore(self.clock, rng)
        self.rates = RateHistory(rate_history_s)
        self._save_config = save_config
        self._auth_failures: deque[float] = deque()
        self.failed_authentications = 0
        self._methods: dict[str, Callable[[dict], Any]] = {
            "Echo": self._echo,
            "GetRate": self._get_rate,
            "I2PControl": self._i2pcontrol,
            "RouterInfo": self._router_info,
            "RouterManager": self._router_manager,
            "NetworkSetting": self._network_setting,
            "pyi2p.Summary": self._summary,
            "pyi2p.Peers": self._peers,
            "pyi2p.Tunnels": self._tunnels,
            "pyi2p.NetDb": self._netdb,
            "pyi2p.Destinations": self._destinations,
        }

    @property
    def method_names(self) -> tuple[str, ...]:
        return ("Authenticate", *self._methods)

    def add_methods(self, methods: dict[str, Callable[[dict], Any]]) -> None:
        """Offer more methods (the node's services: pyi2p.<App>.<Verb>); a handler gets the params without
        the token and raises ValueError for bad ones. The API v1 methods cannot be replaced."""
        for name, handler in methods.items():
            if name in self._methods or name == "Authenticate" or not name.startswith("pyi2p."):
                raise ValueError(f"cannot register I2PControl method {name!r}")
            self._methods[name] = _extension(handler)

    def remove_methods(self, names) -> None:
        for name in names:
            if name.startswith("pyi2p.") and name not in _BUILTIN_EXTENSIONS:
                self._methods.pop(name, None)

    def sample_rates(self) -> None:
        self.rates.record(self.clock.monotonic(), self.router.snapshot())

    async def handle_body(self, body: bytes) -> bytes | None:
        return await answer_body(body, self.dispatch)

    async def dispatch(self, method: str, params: Any) -> Any:
        if method == "Authenticate":
            return self._authenticate(params)
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"No method {method[:64]!r}.")
        if params is None:
            raise RpcError(NO_TOKEN)
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "Parameters are given by name (a JSON object).")
        self.tokens.check(params.get("Token"))
        result = handler(params)
        return await result if inspect.isawaitable(result) else result

    # -- API v1 --

    def _authenticate(self, params: Any) -> dict:
        if params is not None and not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "Parameters are given by name (a JSON object).")
        params = params or {}
        api = params.get("API")
        if api is None:
            raise RpcError(API_VERSION_MISSING)
        if isinstance(api, bool) or api != API_VERSION:
            raise RpcError(API_VERSION_UNSUPPORTED, f"This server implements API {API_VERSION}.")
        now = self.clock.monotonic()
        while self._auth_failures and now - self._auth_failures[0] > AUTH_FAILURE_WINDOW_S:
            self._auth_failures.popleft()
        if len(self._auth_failures) >= MAX_AUTH_FAILURES:
            wait = AUTH_FAILURE_WINDOW_S - (now - self._auth_failures[0])
            raise RpcError(INVALID_PASSWORD, f"Too many wrong passwords; try again in {wait:.0f} s.")
        password = _text(params, "Password")
        if not hmac.compare_digest(password.encode("utf-8"), self.config.password.encode("utf-8")):
            self._auth_failures.append(now)
            self.failed_authentications += 1
            if self.failed_authentications <= 10 or self.failed_authentications % 100 == 0:
                log.warning("I2PControl: wrong password (%d so far); after %d in %.0f s, logins wait",
                            self.failed_authentications, MAX_AUTH_FAILURES, AUTH_FAILURE_WINDOW_S)
            raise RpcError(INVALID_PASSWORD)
        return {"API": API_VERSION, "Token": self.tokens.issue()}

    def _echo(self, params: dict) -> dict:
        return {"Result": _text(params, "Echo")}

    def _get_rate(self, params: dict) -> dict:
        stat = _text(params, "Stat")
        if stat not in RATE_STATS:
            raise RpcError(INVALID_PARAMS, f"Stat {stat[:64]!r} does not exist.")
        period_ms = params.get("Period")
        if isinstance(period_ms, bool) or not isinstance(period_ms, int) \
                or not 1000 <= period_ms <= self.rates.capacity * 1000:
            raise RpcError(INVALID_PARAMS, f"Period must be a whole number of ms, 1000-{self.rates.capacity * 1000}.")
        return {"Result": self._rate(RATE_STATS[stat], period_ms / 1000)}

    def _rate(self, fields: tuple[str, ...], period_s: float) -> float:
        snapshot = self.router.snapshot()
        windows = {"bytes_received": (snapshot.bw_in_1s, snapshot.bw_in_15s),
                   "bytes_sent": (snapshot.bw_out_1s, snapshot.bw_out_15s)}
        total = 0.0
        for field in fields:
            if field in windows:
                one_s, fifteen_s = windows[field]
                if period_s <= 1:
                    value = one_s
                elif period_s == 15:
                    value = fifteen_s
                else:  # our sampled history; the router's 15 s window until it has two samples
                    value = self.rates.counter_rate(field, period_s)
                    value = fifteen_s if value is None else value
            else:
                value = self.rates.gauge_mean(field, period_s)
                value = getattr(snapshot, field) if value is None else value
            total += _finite(value)
        return total

    def _i2pcontrol(self, params: dict) -> dict:
        config = self.config
        try:
            if "i2pcontrol.password" in params:
                new_password = validate_password(params["i2pcontrol.password"])
                if len(new_password) < MIN_NEW_PASSWORD:
                    raise RpcError(INVALID_PARAMS, f"The password needs {MIN_NEW_PASSWORD} or more characters.")
                config = dataclasses.replace(config, password=new_password)
            if "i2pcontrol.address" in params:
                address = params["i2pcontrol.address"]
                if not isinstance(address, str):
                    raise ControlConfigError("i2pcontrol.address must be a string")
                config = dataclasses.replace(config, address=validate_address(address))
        except ControlConfigError as exc:
            raise RpcError(INVALID_PARAMS, f"{exc}.") from None
        if "i2pcontrol.port" in params:
            config = dataclasses.replace(config, port=_port("i2pcontrol.port", params["i2pcontrol.port"]))
        result: dict[str, Any] = {}
        for key, field in (("i2pcontrol.address", "address"), ("i2pcontrol.password", "password"),
                           ("i2pcontrol.port", "port")):
            if getattr(config, field) != getattr(self.config, field):
                result[key] = None
        if result and self._save_config is not None:
            self._save_config(config)
        password_changed = config.password != self.config.password
        self.config = config
        if password_changed:
            self.tokens.revoke_all()  # i2pcontrol.md: a new password revokes every token
        result["SettingsSaved"] = bool(result)
        result["RestartNeeded"] = "i2pcontrol.address" in result or "i2pcontrol.port" in result
        return result

    def _router_info(self, params: dict) -> dict:
        values = _router_info_values(self.router.snapshot())
        return {key: values[key]() for key in params if key in values}

    async def _router_manager(self, params: dict) -> dict:
        lifecycle = [key for key in _LIFECYCLE_ACTIONS if key in params]
        if len(lifecycle) > 1:
            raise RpcError(INVALID_PARAMS, "Ask for one of Restart, RestartGraceful, Shutdown, ShutdownGraceful.")
        result: dict[str, Any] = {}
        if "FindUpdates" in params:
            result["FindUpdates"] = False  # this router does not update itself
        if "Update" in params:
            result["Update"] = "No update"
        if "Reseed" in params:
            await self.router.reseed()
            result["Reseed"] = None
        for key in lifecycle:
            action = {"Restart": self.router.restart, "RestartGraceful": self.router.restart_graceful,
                      "Shutdown": self.router.shutdown, "ShutdownGraceful": self.router.shutdown_graceful}[key]
            await action()
            result[key] = None
        return result

    def _network_setting(self, params: dict) -> dict:
        current = dict(self.router.network_settings())
        requested = [key for key in NETWORK_SETTING_KEYS if key in params]
        changes = {}
        for key in requested:
            if params[key] is not None:
                value = _setting_value(key, params[key])
                if value != current.get(key, ""):
                    changes[key] = value
        restart_needed = False
        if changes:
            try:
                restart_needed = bool(self.router.apply_network_settings(changes))
            except SettingError as exc:
                raise RpcError(INVALID_PARAMS, str(exc)) from None
            current = dict(self.router.network_settings())
        result: dict[str, Any] = {key: str(current.get(key, "")) for key in requested}
        result["SettingsSaved"] = bool(changes)
        result["RestartNeeded"] = restart_needed
        return result

    # -- pyi2p.* extensions (read-only) --

    def _summary(self, params: dict) -> dict:
        s = self.router.snapshot()
        peers = Counter(p.transport for p in self.router.peers())
        tunnels = Counter(t.state for t in self.router.tunnels())
        settings = self.router.network_settings()
        return {
            "RouterHash": b64(s.router_hash), "Version": s.version, "Uptime": to_ms(s.uptime_s),
            "Status": s.status_text, "NetStatus": int(s.net_status), "NetStatusName": s.net_status.name,
            "KnownRouters": s.known_routers, "Floodfills": s.floodfills, "LeaseSets": s.leasesets,
            "ActivePeers": s.active_peers, "Peers": dict(sorted(peers.items())),
            "ParticipatingTunnels": s.participating_tunnels, "OurTunnels": dict(sorted(tunnels.items())),
            "BuildSuccessRatio": _finite(s.build_success_ratio), "IsReseeding": bool(s.is_reseeding),
            "Bandwidth": {"Inbound1s": _finite(s.bw_in_1s), "Inbound15s": _finite(s.bw_in_15s),
                          "Outbound1s": _finite(s.bw_out_1s), "Outbound15s": _finite(s.bw_out_15s)},
            "NTCP2": {"Host": settings.get("i2p.router.net.ntcp.hostname", ""),
                      "Port": settings.get("i2p.router.net.ntcp.port", "")},
            "Destinations": len(self.router.destinations()),
        }

    def _peers(self, params: dict) -> dict:
        return {"Peers": [peer_json(p) for p in self.router.peers()]}

    def _tunnels(self, params: dict) -> dict:
        s = self.router.snapshot()
        return {"Tunnels": [tunnel_json(t) for t in self.router.tunnels()],
                "BuildSuccessRatio": _finite(s.build_success_ratio), "Participating": s.participating_tunnels}

    def _netdb(self, params: dict) -> dict:
        s = self.router.snapshot()
        return {"KnownRouters": s.known_routers, "Floodfills": s.floodfills, "LeaseSets": s.leasesets,
                "IsReseeding": bool(s.is_reseeding)}

    def _destinations(self, params: dict) -> dict:
        return {"Destinations": [{"B32": d.b32, "Name": d.name} for d in self.router.destinations()]}


_BUILTIN_EXTENSIONS = frozenset({"pyi2p.Summary", "pyi2p.Peers", "pyi2p.Tunnels", "pyi2p.NetDb",
                                 "pyi2p.Destinations"})


def _extension(handler: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """A service's method: params without the token; ValueError becomes the spec's invalid-params error,
    any other failure a plain internal error (never a traceback to the caller)."""
    async def call(params: dict) -> Any:
        args = {k: v for k, v in params.items() if k != "Token"}
        try:
            result = handler(args)
            return await result if inspect.isawaitable(result) else result
        except RpcError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise RpcError(INVALID_PARAMS, str(exc)[:200]) from None
        except Exception as exc:
            log.exception("I2PControl extension failed")
            raise RpcError(INTERNAL_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return call


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0

