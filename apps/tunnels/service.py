"""I2PTunnel as a node service: the tunnels of DATADIR/tunnels.conf and DATADIR/tunnels.d/*.conf.

    service = TunnelsService({}, datadir, network, proxy_factory=make_proxy)
    await service.start()      # binds every local port at once; sessions open in the background
    service.status()           # per tunnel: state, error, listening, b32, connections, bytes

Tunnels that share a key file share one destination (session); `transient` gives each tunnel its own
new one and `transient-<tag>` one shared by the tunnels naming the same tag.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from apps.network import I2PNetwork, I2PSession, NetworkError
from apps.service import ControlMethod, Service, ServiceError
from core.data.errors import ProtocolError
from core.data.privatekeys import PrivateKeys
from core.fsutil import atomic_write_text

from .config import PROXY_TYPES, TRANSIENT, TunnelConfig, TunnelsConfig, load_tunnels, parse_tunnels
from .tunnels import TUNNEL_CLASSES, Tunnel, TunnelError

log = logging.getLogger(__name__)

CONFIG_KEYS = frozenset({"enabled"})
TUNNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ProxyFactory = Callable[[str, dict[str, str]], Service]

DEFAULT_TUNNELS_CONF = """\
# I2PTunnel tunnels, in i2pd's tunnels.conf format (more in tunnels.d/*.conf).
# Types: client, ircclient (client with the IRC filter), server, http, irc, udpclient, udpserver,
# socks, httpproxy. Reload with `pyi2p.Tunnels.Reload` or SIGHUP.
#
# An IRC client tunnel: an IRC program connects to 127.0.0.1:6668 and reaches an I2P IRC server.
# It is commented out because it needs a destination this router can reach (on a private network
# there is none): set `destination` to your IRC server's name or b32 and remove the '#'.
#
#[IRC]
#type = ircclient
#address = 127.0.0.1
#port = 6668
#destination = irc.postman.i2p
#destinationport = 6667
#keys = irc-keys.dat
#
# A web site: the site listens on 127.0.0.1:8080, this publishes it as an I2P destination.
#
#[web]
#type = http
#host = 127.0.0.1
#port = 8080
#keys = web-keys.dat
"""


def _same(a: TunnelConfig, b: TunnelConfig) -> bool:
    """Equal but for where in the files the section is."""
    return dataclasses.replace(a, file="", line=0) == dataclasses.replace(b, file="", line=0)


class _SharedSession:
    def __init__(self, task: asyncio.Task):
        self.task = task
        self.users = 0


class SessionPool:
    """Sessions by key file (or transient tag), opened once and closed when their last tunnel stops."""

    def __init__(self, network: I2PNetwork, datadir: Path):
        self.network = network
        self.datadir = datadir
        self._sessions: dict[str, _SharedSession] = {}

    def key_path(self, tunnel: TunnelConfig) -> Path:
        path = Path(tunnel.keys).expanduser()
        return path if path.is_absolute() else self.datadir / path

    def _key(self, tunnel: TunnelConfig) -> str:
        if tunnel.keys == TRANSIENT or not tunnel.keys:
            return f"transient tunnel {tunnel.name}"
        if tunnel.transient:
            return f"transient tag {tunnel.keys}"
        return f"file {self.key_path(tunnel)}"

    def load_keys(self, tunnel: TunnelConfig) -> PrivateKeys:
        """The tunnel's keys: read from its file, or made and written (0600) on first use; new ones if transient."""
        if tunnel.transient:
            try:
                return PrivateKeys.generate(tunnel.signature_type, tunnel.crypto_type)
            except ProtocolError as exc:
                raise TunnelError(f"[{tunnel.name}] cannot make keys ({tunnel.where}): {exc}") from None
        path = self.key_path(tunnel)
        if path.is_file():
            try:
                return PrivateKeys.load(path)
            except (ProtocolError, OSError) as exc:
                raise TunnelError(f"[{tunnel.name}] key file {path} ({tunnel.where}): {exc}") from None
        if not path.parent.is_dir():
            raise TunnelError(f"[{tunnel.name}] key file {path} ({tunnel.where}): its folder {path.parent} "
                              f"does not exist")
        try:
            keys = PrivateKeys.generate(tunnel.signature_type, tunnel.crypto_type)
        except ProtocolError as exc:
            raise TunnelError(f"[{tunnel.name}] cannot make keys ({tunnel.where}): {exc}") from None
        try:
            keys.save(path)
        except OSError as exc:
            raise TunnelError(f"[{tunnel.name}] cannot write key file {path}: {exc.strerror or exc}") from None
        log.info("%s: new destination %s written to %s", tunnel.name, keys.destination.b32_address, path)
        return keys

    async def acquire(self, tunnel: TunnelConfig) -> I2PSession:
        key = self._key(tunnel)
        shared = self._sessions.get(key)
        if shared is None or (shared.task.done() and (shared.task.cancelled() or shared.task.exception())):
            shared = _SharedSession(asyncio.ensure_future(self._open(tunnel)))
            self._sessions[key] = shared
        shared.users += 1
        try:
            return await asyncio.shield(shared.task)
        except BaseException:
            await self.release(tunnel)
            raise

    async def _open(self, tunnel: TunnelConfig) -> I2PSession:
        keys = self.load_keys(tunnel)
        return await self.network.open_session(keys, dict(tunnel.session_options), name=tunnel.name)

    async def release(self, tunnel: TunnelConfig) -> None:
        key = self._key(tunnel)
        shared = self._sessions.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del self._sessions[key]
        if not shared.task.done():
            shared.task.cancel()
        with contextlib.suppress(BaseException):
            session = await shared.task
            await session.close()

    async def close(self) -> None:
        for key, shared in list(self._sessions.items()):
            shared.task.cancel()
            with contextlib.suppress(BaseException):
                session = await shared.task
                await session.close()
        self._sessions.clear()


class ProxyTunnel(Tunnel):
    """A socks/httpproxy section: a service of the proxy app, built by the injected factory."""

    def __init__(self, config: TunnelConfig, factory: ProxyFactory | None):
        super().__init__(config, _no_session)
        self._factory = factory
        self.service: Service | None = None

    async def bind(self) -> None:
        c = self.config
        if self._factory is None:
            self.state, self.error = "unavailable", f"[{c.name}] {c.type} is not available in this node"
            return
        self.state, self.error = "starting", ""
        try:
            self.service = self._factory(c.type, dict(c.raw))
            await self.service.start()
        except (ServiceError, ValueError, OSError) as exc:
            self.state, self.error = "failed", f"[{c.name}] ({c.where}): {exc}"
            raise TunnelError(self.error) from None
        self.state = "running"
        self._ready.set()

    async def open(self) -> None:
        return

    async def stop(self) -> None:
        if self.service is not None:
            with contextlib.suppress(Exception):
                await self.service.stop()
            self.service = None
        if self.state not in ("failed", "unavailable"):
            self.state = "stopped"

    def status(self) -> dict[str, Any]:
        result = super().status()
        if self.service is not None:
            inner = self.service.status()
            result.update({k: v for k, v in inner.items() if k not in ("name", "type")})
        return result


async def _no_session(tunnel: TunnelConfig) -> I2PSession:
    raise TunnelError(f"[{tunnel.name}] has no session of its own")


class TunnelsService:
    """The Service (apps/service.py) that runs the tunnels files."""

    name = "tunnels"

    def __init__(self, config: Mapping[str, Any], datadir: Path, network: I2PNetwork, **deps: Any):
        for key in config:
            if key not in CONFIG_KEYS:
                log.warning("[tunnels] unknown key %r in config.toml ignored", key)
        self.datadir = Path(datadir)
        self.network = network
        self.conf_path = Path(deps.get("conf_path") or self.datadir / "tunnels.conf")
        self.conf_dir = Path(deps.get("conf_dir") or self.conf_path.parent / "tunnels.d")
        self.proxy_factory: ProxyFactory | None = deps.get("proxy_factory")
        self.pool = SessionPool(network, self.datadir)
        self.state = "stopped"
        self.error = ""
        self.config = TunnelsConfig()
        self._tunnels: dict[str, Tunnel] = {}
        self._opening: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()

    # ----- lifecycle

    async def start(self) -> None:
        async with self._lock:
            if not self.conf_path.exists():
                try:
                    self.conf_path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(self.conf_path, DEFAULT_TUNNELS_CONF)
                except OSError as exc:
                    self.state, self.error = "failed", f"cannot write {self.conf_path}: {exc.strerror or exc}"
                    raise ServiceError(self.error) from None
            self.config = self._load()
            for tunnel in self.config.tunnels:
                await self._start_tunnel(tunnel)
            self.state = "running"

    async def stop(self) -> None:
        async with self._lock:
            for name in list(self._tunnels):
                await self._stop_tunnel(name)
            await self.pool.close()
            if self.state == "running":
                self.state = "stopped"

    async def wait_ready(self, timeout: float = 180.0) -> None:
        """Until every tunnel's session is open (or failed to); for tests and the console."""
        tasks = [t for t in self._opening.values() if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def _load(self) -> TunnelsConfig:
        config = load_tunnels(self.conf_path, self.conf_dir)
        for problem in config.problems:
            (log.warning if problem.fatal else log.info)("tunnels: %s", problem)
        return config

    async def _start_tunnel(self, config: TunnelConfig) -> Tunnel:
        if config.type in PROXY_TYPES:
            tunnel: Tunnel = ProxyTunnel(config, self.proxy_factory)
        else:
            tunnel = TUNNEL_CLASSES[config.type](config, self.pool.acquire)
        self._tunnels[config.name] = tunnel
        try:
            await tunnel.bind()
        except TunnelError as exc:
            log.warning("tunnels: %s", exc)
            return tunnel
        self._opening[config.name] = asyncio.ensure_future(self._open(tunnel))
        return tunnel

    async def _open(self, tunnel: Tunnel) -> None:
        try:
            await tunnel.open()
        except TunnelError as exc:
            log.warning("tunnels: %s", exc)
            await self._drop_session(tunnel)
        except Exception:
            log.exception("tunnels: %s failed to start", tunnel.name)
            tunnel.state, tunnel.error = "failed", f"[{tunnel.name}] internal error (see the log)"
            await self._drop_session(tunnel)

    async def _drop_session(self, tunnel: Tunnel) -> None:
        if tunnel.session is not None:
            tunnel.session = None
            await self.pool.release(tunnel.config)

    async def _stop_tunnel(self, name: str) -> None:
        tunnel = self._tunnels.pop(name, None)
        task = self._opening.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if tunnel is None:
            return
        await tunnel.stop()
        await self._drop_session(tunnel)

    # ----- status

    def status(self) -> dict[str, Any]:
        tunnels = [t.status() for t in self._tunnels.values()]
        # "listen" as the node prints it: where each running tunnel is reached (local address or b32)
        listen = {t["name"]: t.get("listening") or t.get("b32") for t in tunnels
                  if t["state"] == "running" and (t.get("listening") or t.get("b32"))}
        result: dict[str, Any] = {
            "state": self.state, "files": [str(self.conf_path), f"{self.conf_dir}/*.conf"],
            "tunnels": tunnels, "listen": listen, "problems": [str(p) for p in self.config.problems]}
        if self.error:
            result["error"] = self.error
        return result

    # ----- control (pyi2p.Tunnels.<Verb>)

    def control_methods(self) -> dict[str, ControlMethod]:
        return {"List": self.control_list, "Start": self.control_start, "Stop": self.control_stop,
                "Add": self.control_add, "Remove": self.control_remove, "Reload": self.control_reload,
                "Get": self.control_get, "Edit": self.control_edit, "Test": self.control_test}

    async def control_list(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [t.status() for t in self._tunnels.values()]

    def _named(self, params: Mapping[str, Any]) -> str:
        name = params.get("name") if isinstance(params, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError("'name' (a tunnel's section name) is required")
        return name

    async def control_start(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = self._named(params)
        async with self._lock:
            config = self.config.get(name)
            if config is None:
                raise ValueError(f"no tunnel {name!r}")
            running = self._tunnels.get(name)
            if running is not None and running.state in ("running", "starting"):
                return running.status()
            await self._stop_tunnel(name)
            return (await self._start_tunnel(config)).status()

    async def control_stop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = self._named(params)
        async with self._lock:
            tunnel = self._tunnels.get(name)
            if tunnel is None:
                raise ValueError(f"no tunnel {name!r} is running")
            await self._stop_tunnel(name)
            tunnel.state, tunnel.error = "stopped", ""
            self._tunnels[name] = tunnel            # kept, stopped, so List shows it
            return tunnel.status()

    async def reload(self) -> dict[str, Any]:
        """SIGHUP: as control_reload."""
        return await self.control_reload({})

    async def control_reload(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Re-read the files; stop what went away or changed, start what is new or changed."""
        async with self._lock:
            new = self._load()
            old = {t.name: t for t in self.config.tunnels}
            self.config = new
            stopped, started = [], []
            for name in list(self._tunnels):
                fresh = new.get(name)
                if fresh is None or name not in old or not _same(fresh, old[name]):
                    await self._stop_tunnel(name)
                    stopped.append(name)
            for tunnel in new.tunnels:
                if tunnel.name not in self._tunnels:
                    await self._start_tunnel(tunnel)
                    started.append(tunnel.name)
            return {"stopped": stopped, "started": started, "problems": [str(p) for p in new.problems]}

    def _section_text(self, params: Mapping[str, Any]) -> tuple[str, str, list[TunnelConfig], list]:
        """{"name": ..., "type": ..., option: value...} as a tunnels.conf section, checked by the file's parser."""
        name = self._named(params)
        if not TUNNEL_NAME.fullmatch(name):
            raise ValueError(f"tunnel name {name!r}: letters, digits, '_', '.', '-' only")
        options = {str(k).lower(): str(v) for k, v in params.items() if k != "name"}
        for key, value in options.items():
            if not re.fullmatch(r"[a-z0-9_.]+", key) or any(c in value for c in "\r\n"):
                raise ValueError(f"bad option {key!r}")
        text = f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
        path = self.conf_dir / f"{name}.conf"
        tunnels, problems = parse_tunnels(text, str(path))
        errors = [str(p) for p in problems if p.fatal]
        if errors or not tunnels:
            raise ValueError("; ".join(errors) or "no tunnel")
        return name, text, tunnels, problems

    def _write_section(self, name: str, text: str) -> Path:
        path = self.conf_dir / f"{name}.conf"
        try:
            self.conf_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        except OSError as exc:
            raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path

    async def control_add(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A new tunnel from {"name": ..., "type": ..., option: value...}, written to tunnels.d/<name>.conf."""
        name, text, tunnels, problems = self._section_text(params)
        async with self._lock:
            if self.config.get(name) is not None or (self.conf_dir / f"{name}.conf").exists():
                raise ValueError(f"a tunnel named {name!r} exists already")
            self._write_section(name, text)
            self.config = TunnelsConfig(self.config.tunnels + tuple(tunnels),
                                        self.config.problems + tuple(problems))
            return (await self._start_tunnel(tunnels[0])).status()

    def control_get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A tunnel's options as written in its file (what an edit starts from)."""
        name = self._named(params)
        config = self.config.get(name)
        if config is None:
            raise ValueError(f"no tunnel {name!r}")
        return {"name": name, "file": config.where, "options": dict(config.raw)}

    async def control_edit(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a tunnel's options (checked as tunnels.conf is), moving it to tunnels.d/<name>.conf, and
        restart it; a refused edit leaves the old tunnel as it was."""
        name, text, tunnels, problems = self._section_text(params)
        async with self._lock:
            old = self.config.get(name)
            if old is None:
                raise ValueError(f"no tunnel {name!r}")
            await self._stop_tunnel(name)
            if Path(old.file) != self.conf_dir / f"{name}.conf":
                remove_section(Path(old.file), old.line)
            self._write_section(name, text)
            self.config = TunnelsConfig(tuple(t for t in self.config.tunnels if t.name != name) + tuple(tunnels),
                                        self.config.problems + tuple(problems))
            return (await self._start_tunnel(tunnels[0])).status()

    async def control_test(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A client tunnel: open a stream to its destination and time the round trip (SYN to SYN ACK)."""
        name = self._named(params)
        tunnel = self._tunnels.get(name)
        if tunnel is None or tunnel.state != "running" or tunnel.session is None:
            raise ValueError(f"tunnel {name!r} is not running")
        if not tunnel.config.is_client:
            raise ValueError(f"tunnel {name!r} is a {tunnel.config.type} tunnel: only client tunnels open streams")
        timeout = min(float(params.get("timeout", 30)), 120.0)
        destination = tunnel.config.destinations[0]
        started = time.monotonic()
        try:
            _, writer = await tunnel.session.connect(destination, tunnel.config.destination_port, timeout=timeout)
        except NetworkError as exc:
            return {"name": name, "destination": destination, "ok": False, "error": str(exc),
                    "ms": round((time.monotonic() - started) * 1000)}
        elapsed = round((time.monotonic() - started) * 1000)
        writer.close()
        return {"name": name, "destination": destination, "ok": True, "ms": elapsed}

    async def control_remove(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stop a tunnel and take its section out of its file."""
        name = self._named(params)
        async with self._lock:
            config = self.config.get(name)
            if config is None:
                raise ValueError(f"no tunnel {name!r}")
            await self._stop_tunnel(name)
            remove_section(Path(config.file), config.line)
            self.config = TunnelsConfig(tuple(t for t in self.config.tunnels if t.name != name),
                                        self.config.problems)
            return {"removed": name, "file": config.file}


def remove_section(path: Path, line: int) -> None:
    """Delete the section whose header is at `line` (to the next header); a file left with no section goes."""
    lines = path.read_text("utf-8", errors="replace").splitlines(keepends=True)
    start = line - 1
    end = start + 1
    while end < len(lines) and not lines[end].lstrip().startswith("["):
        end += 1
    kept = lines[:start] + lines[end:]
    if path.parent.name == "tunnels.d" and not any(x.lstrip().startswith("[") for x in kept):
        path.unlink()
        return
    atomic_write_text(path, "".join(kept))
