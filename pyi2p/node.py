"""The node: a router (or a SAM bridge elsewhere) and every enabled app on the apps' network port.

Apps are built here and nowhere else (DESIGN.md "The application layer"): naming first, since the
network resolves host names through its book, then I2PTunnel (which may start more proxies), the
proxy, mail and torrent. One app that fails to start is reported and the others run on.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from apps.network import I2PNetwork, InProcessNetwork
from apps.service import Service, ServiceError
from core.config import SETTINGS, ConfigError, RouterConfig, change_setting, read_sections, save_settings
from core.router import Router

log = logging.getLogger(__name__)

LIVE_SETTINGS = frozenset({"bandwidth", "floodfill", "log_level"})     # the router takes these without a restart


@dataclass(frozen=True, slots=True)
class AppSpec:
    name: str              # its config.toml table
    module: str
    factory: str
    control_name: str      # its I2PControl methods: pyi2p.<control_name>.<Verb>


APPS = (
    AppSpec("naming", "apps.naming.service", "NamingService", "AddressBook"),
    AppSpec("tunnels", "apps.tunnels.service", "TunnelsService", "Tunnels"),
    AppSpec("proxy", "apps.proxy.service", "ProxyService", "Proxy"),
    AppSpec("mail", "apps.mail.service", "MailService", "Mail"),
    AppSpec("torrent", "apps.torrent.service", "TorrentService", "Torrent"),
)


@dataclass(slots=True)
class AppSlot:
    spec: AppSpec
    service: Service | None = None
    state: str = "stopped"         # running | stopped | failed | disabled
    error: str | None = None
    methods: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        if self.service is not None:
            try:
                figures = dict(self.service.status())
            except Exception as exc:   # a status that fails must not take the others' down
                figures = {"error": f"status failed: {exc}"}
        figures["name"] = self.spec.name
        figures.setdefault("state", self.state)
        if self.state in ("failed", "disabled"):
            figures["state"] = self.state
        if self.error:
            figures["error"] = self.error
        return figures


class LogBuffer(logging.Handler):
    """The last lines of the node's log, numbered, for the console's live tail (pyi2p.Logs.Tail)."""

    def __init__(self, capacity: int = 2000):
        super().__init__(logging.DEBUG)
        self.lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.next_seq = 0
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = record.getMessage() if isinstance(record.msg, str) else str(record.msg)
        self.lines.append({"Seq": self.next_seq, "Time": record.created, "Level": record.levelname,
                           "Text": text.splitlines()[0][:2000] if text else ""})
        self.next_seq += 1

    def tail(self, params: dict[str, Any]) -> dict[str, Any]:
        """Lines after `Since` (a Seq; -1 or absent: the last `Limit`), at `Level` or above."""
        since = int(params.get("Since", -1))
        limit = max(1, min(int(params.get("Limit", 200)), 1000))
        level = logging.getLevelName(str(params.get("Level", "INFO")).upper())
        if not isinstance(level, int):
            raise ValueError(f"unknown level {params.get('Level')!r}")
        lines = [line for line in self.lines
                 if line["Seq"] > since and logging.getLevelName(line["Level"]) >= level]
        return {"Lines": lines[-limit:], "Next": self.next_seq - 1}


class Node:
    """Router + apps, or apps alone over SAM (`network` given, `router` None)."""

    def __init__(self, config: RouterConfig, *, sections: dict[str, dict] | None = None,
                 network: I2PNetwork | None = None, apps: tuple[AppSpec, ...] = APPS):
        self.config = config
        self.sections = read_sections(config.datadir) if sections is None else sections
        self.router: Router | None = None if network is not None else Router(config)
        self.network = network
        self.slots = [AppSlot(spec) for spec in apps]
        self.log_buffer = LogBuffer()
        self.started_at = time.time()

    def slot(self, name: str) -> AppSlot | None:
        return next((s for s in self.slots if s.spec.name == name), None)

    def service(self, name: str) -> Any:
        slot = self.slot(name)
        return slot.service if slot is not None else None

    async def start(self) -> None:
        logging.getLogger().addHandler(self.log_buffer)
        if self.router is not None:
            await self.router.start()
            self.network = InProcessNetwork(self.router.client)
        for slot in self.slots:
            await self._start_app(slot)
            if slot.spec.name == "naming":
                self._use_names()         # before the others start: client tunnels resolve their names then
        self._register_control()

    def _use_names(self) -> None:
        naming = self.service("naming")
        resolve = getattr(naming, "resolve", None)
        if resolve is not None:
            # the book, and names saved with only a b32 (looked up on the network when first used)
            self.network.resolver = resolve
            if self.router is not None and self.router.sam is not None:
                self.router.sam.address_book = resolve

    def _deps(self, spec: AppSpec) -> dict[str, Any]:
        naming = self.service("naming")
        deps: dict[str, Any] = {}
        if spec.name in ("proxy", "tunnels") and naming is not None:
            deps["addressbook"] = getattr(naming, "book", None)
        if spec.name == "tunnels":
            deps["proxy_factory"] = self._proxy_factory()
        return deps

    def _proxy_factory(self) -> Callable[..., Service] | None:
        try:
            create_proxy = importlib.import_module("apps.proxy").create_proxy
        except (ImportError, AttributeError):
            return None
        naming = self.service("naming")
        book = getattr(naming, "book", None) if naming is not None else None
        return lambda kind, options: create_proxy(kind, options, self.config.datadir, self.network, addressbook=book)

    async def _start_app(self, slot: AppSlot) -> None:
        section = self.sections.get(slot.spec.name, {})
        if section.get("enabled", True) is False:
            slot.state = "disabled"
            return
        try:
            factory = getattr(importlib.import_module(slot.spec.module), slot.spec.factory)
        except (ImportError, AttributeError) as exc:
            slot.state, slot.error = "failed", f"not available in this build ({exc})"
            log.warning("%s: %s", slot.spec.name, slot.error)
            return
        options = {k: v for k, v in section.items() if k != "enabled"}
        try:
            slot.service = factory(options, self.config.datadir, self.network, **self._deps(slot.spec))
            await slot.service.start()
        except ServiceError as exc:
            slot.state, slot.error = "failed", str(exc)
            log.error("%s not started: %s", slot.spec.name, exc)
            return
        except OSError as exc:
            slot.state, slot.error = "failed", f"{exc.strerror or exc}"
            log.error("%s not started: %s", slot.spec.name, slot.error)
            return
        except Exception as exc:
            slot.state, slot.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("%s not started", slot.spec.name)
            return
        slot.state, slot.error = "running", None
        log.info("%s started", slot.spec.name)

    def _register_control(self) -> None:
        control = self.router.control if self.router is not None else None
        if control is None:
            return
        methods: dict[str, Callable] = {"pyi2p.Services.List": lambda params: {"Services": self.services_status()},
                                        "pyi2p.Logs.Tail": self.log_buffer.tail,
                                        "pyi2p.Settings.Get": self.settings_get, "pyi2p.Settings.Set": self.settings_set}
        for slot in self.slots:
            if slot.service is None or slot.state != "running":
                continue
            try:
                offered = slot.service.control_methods()
            except Exception:
                log.exception("%s: control methods unavailable", slot.spec.name)
                continue
            for verb, handler in offered.items():
                name = f"pyi2p.{slot.spec.control_name}.{verb}"
                methods[name] = handler
                slot.methods.append(name)
        control.service.add_methods(methods)

    def settings_get(self, params: dict[str, Any]) -> dict[str, Any]:
        """config.toml's router settings (as saved: a change waiting for a restart shows its new value), whether a
        change applies now or on restart, and the apps' tables."""
        config = self.config
        settings = [{"key": name, "value": _setting_text(getattr(config, name)),
                     "applies": "now" if name in LIVE_SETTINGS else "restart"} for name in SETTINGS]
        return {"settings": settings, "sections": self.sections, "file": str(config.config_path)}

    def settings_set(self, params: dict[str, Any]) -> dict[str, Any]:
        """{"key": ..., "value": ...}: checked, saved to config.toml, and applied at once where the router can."""
        name, value = params.get("key"), params.get("value")
        if not isinstance(name, str) or value is None:
            raise ValueError("give 'key' (a config.toml setting) and 'value'")
        current = self.config
        try:
            changed = change_setting(current, name, value)
            new = getattr(changed, name)
            if new is None:
                raise ConfigError(f"{name} cannot be cleared here: edit {current.config_path}", structure="config")
            save_settings(current.datadir, {name: new})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        except OSError as exc:
            raise ValueError(f"cannot write {current.config_path}: {exc.strerror or exc}") from None
        # "auto" floodfill is decided by a monitor that starts with the router: it waits for a restart
        applied = (name in LIVE_SETTINGS and self.router is not None
                   and not (name == "floodfill" and not isinstance(new, bool)))
        if applied:
            router = self.router
            router.config = changed
            if name == "log_level":
                logging.getLogger().setLevel(new.upper())
            elif name == "floodfill":
                router.set_floodfill(new)
            else:
                router.refresh_router_info()
                router.publish_router_info()
        self.config = changed
        log.info("setting %s = %s saved%s", name, _setting_text(new), " and applied" if applied else "")
        return {"key": name, "value": _setting_text(new), "applies": "now" if applied else "restart"}

    def services_status(self) -> list[dict[str, Any]]:
        return [slot.status() for slot in self.slots]

    async def reload(self) -> None:
        """SIGHUP: I2PTunnel re-reads tunnels.conf and tunnels.d, starting and stopping only what changed."""
        tunnels = self.service("tunnels")
        if tunnels is None or not hasattr(tunnels, "reload"):
            return
        try:
            await tunnels.reload()
        except ServiceError as exc:
            log.error("tunnels reload: %s", exc)

    def listening(self) -> list[tuple[str, str]]:
        """(what, where) for every service that listens: printed once the node runs."""
        found: list[tuple[str, str]] = []
        router = self.router
        if router is not None:
            if router.config.host:
                found.append(("NTCP2", f"{router.config.host}:{router.config.port}"))
            else:
                found.append(("NTCP2", f"*:{router.config.port} (no address published: dials out only)"))
            if router.sam is not None:
                found.append(("SAM v3", f"{router.config.control_host}:{router.sam.port}"))
            if router.control is not None:
                found.append(("I2PControl", f"{router.control.host}:{router.control.port}"))
        for slot in self.slots:
            status = slot.status()
            if slot.state != "running":
                found.append((slot.spec.name, f"{slot.state}" + (f": {slot.error}" if slot.error else "")))
                continue
            for what, where in _listen_entries(slot.spec.name, status):
                found.append((what, where))
        return found

    async def stop(self) -> None:
        for slot in reversed(self.slots):
            if slot.service is None:
                continue
            try:
                await asyncio.wait_for(slot.service.stop(), 15)
            except Exception:
                log.exception("%s did not stop cleanly", slot.spec.name)
            slot.state = "stopped"
        if self.router is not None:
            await self.router.stop()
        elif self.network is not None:
            await self.network.close()
        logging.getLogger().removeHandler(self.log_buffer)


def _listen_entries(name: str, status: dict[str, Any]) -> list[tuple[str, str]]:
    """The "listen" figures of an app's status: a string, a list of strings, or a dict of what -> where."""
    listen = status.get("listen")
    if isinstance(listen, str) and listen:
        return [(name, listen)]
    if isinstance(listen, dict) and listen:
        return [(f"{name} {what}", str(where)) for what, where in listen.items()]
    if isinstance(listen, (list, tuple)) and listen:
        return [(name, str(where)) for where in listen]
    return [(name, "running")]


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)
