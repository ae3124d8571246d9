"""The HTTP proxy (127.0.0.1:4444) and the SOCKS proxy (127.0.0.1:4447): asyncio drivers around
apps/proxy/http.py, socks.py, addresshelper.py and routing.py, over one client destination."""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Mapping

import aiohttp

from apps.network import (ConnectTimeout, I2PNetwork, NameNotFound, NetworkError, PeerNotFound, PeerUnreachable)
from apps.service import ServiceError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

from . import pages, socks
from .addresshelper import AddressHelper, extract
from .http import (MAX_HEAD, USER_AGENT, ChunkedScanner, Framing, HttpError, RequestHead, ResponseHead, Target,
                   find_head_end, incoming_response, outgoing_request, request_framing, request_target,
                   response_framing)
from .routing import Outproxy, OutproxyChooser, Route, classify, destination_route, parse_outproxy

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_ERRORS = 50
MAX_SAVES = 50
# i2pd's httpproxy defaults for the proxy's own destination
DEFAULT_OPTIONS = {"inbound.length": "3", "inbound.quantity": "5", "outbound.length": "3", "outbound.quantity": "5"}
DEFAULT_JUMPSERVERS = ["http://stats.i2p/cgi-bin/jump.cgi?a=", "http://reg.i2p/jump/",
                       "http://identiguy.i2p/cgi-bin/query?hostname=", "http://notbob.i2p/cgi-bin/jump.cgi?q="]
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1", "port": 4444, "http_enabled": True,
    "socks_enabled": True, "socks_port": 4447, "socks_user": "", "socks_password": "",
    "outproxy": [], "jumpservers": DEFAULT_JUMPSERVERS, "addresshelper": True, "keys": "",
    "socks_udp": True, "max_connections": 1000, "head_timeout": 30.0, "idle_timeout": 60.0, "connect_timeout": 60.0,
    "response_timeout": 120.0, "session_timeout": 180.0,
}
OPTION_PREFIXES = ("inbound.", "outbound.", "i2cp.", "i2p.streaming.", "explicitPeers")


class Closed(Exception):
    """The browser's connection ended."""


class Conn:
    """A reader with our own buffer: heads are cut out of it, body bytes read through it."""

    def __init__(self, reader: Any):
        self.reader = reader
        self.buf = bytearray()

    async def read_head(self, timeout: float, limit: int = MAX_HEAD, status: int = 431) -> bytes | None:
        """One head (up to its blank line), None at a clean end before any byte; HttpError over `limit`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        scanned = 0
        while True:
            end = find_head_end(self.buf, max(0, scanned - 3))
            if end != -1:
                if end > limit:
                    raise HttpError(status, "Request header fields too large", f"the head is over {limit // 1024} KB")
                head = bytes(self.buf[:end])
                del self.buf[:end]
                return head
            scanned = len(self.buf)
            if scanned > limit:
                raise HttpError(status, "Request header fields too large", f"the head is over {limit // 1024} KB")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                data = await self.reader.read(CHUNK)
            if not data:
                if self.buf.strip():
                    raise Closed("the connection ended inside a head")
                return None
            self.buf += data

    async def read(self, timeout: float, n: int = CHUNK) -> bytes:
        if self.buf:
            data = bytes(self.buf[:n])
            del self.buf[:n]
            return data
        async with asyncio.timeout(timeout):     # no task per read, unlike wait_for
            return await self.reader.read(n)


async def copy_body(src: Conn, dst: Any, framing: Framing, timeout: float) -> None:
    """Moves one body (as framed) from `src` to `dst` unchanged; raises Closed if `src` ends early."""
    if framing.kind == "length":
        left = framing.length
        while left:
            data = await src.read(timeout, min(CHUNK, left))
            if not data:
                raise Closed("the body ended early")
            left -= len(data)
            dst.write(data)
            await dst.drain()
    elif framing.kind == "chunked":
        scanner = ChunkedScanner()
        while not scanner.done:
            data = await src.read(timeout)
            if not data:
                raise Closed("the chunked body ended early")
            used = scanner.feed(data)
            if used < len(data):
                src.buf[:0] = data[used:]
            dst.write(data[:used])
            await dst.drain()
    elif framing.kind in ("close", "upgrade", "tunnel"):
        while data := await src.read(timeout):
            dst.write(data)
            await dst.drain()


async def splice(a: Conn, a_writer: Any, b: Conn, b_writer: Any, idle: float) -> None:
    """Bytes both ways until both sides end (a tunnel, an Upgrade)."""
    async def pump(src: Conn, dst: Any) -> None:
        try:
            await copy_body(src, dst, Framing("close"), idle)
            if dst.can_write_eof():
                dst.write_eof()
        except (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError):
            dst.close()
    await asyncio.gather(pump(a, b_writer), pump(b, a_writer))


def close_writer(writer: Any) -> None:
    try:
        writer.close()
    except Exception:   # noqa: BLE001 - a writer already torn down
        pass


class ProxyService:
    name = "proxy"

    def __init__(self, config: Mapping[str, Any], datadir: Path, network: I2PNetwork, **deps: Any):
        self.datadir = Path(datadir)
        self.network = network
        self.addressbook = deps.get("addressbook")
        self.rng = deps.get("rng", os.urandom)
        self.config, self.options = self._validate(config)
        self.outproxies = OutproxyChooser([parse_outproxy(o) for o in self.config["outproxy"]])
        books = ("private", "local") if self.addressbook is not None else ()
        self.helper = AddressHelper(rng=self.rng, books=books)
        self.session: Any = None
        self._session_task: asyncio.Task | None = None
        self._session_error = ""
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self.http_address = self.socks_address = ""
        self.state, self.error = "stopped", ""
        self.errors: deque[dict[str, Any]] = deque(maxlen=MAX_ERRORS)
        self.saves: deque[dict[str, Any]] = deque(maxlen=MAX_SAVES)
        self.stats = {"connections": 0, "requests": 0, "errors": 0, "socks_connections": 0, "refused_busy": 0,
                      "udp_associations": 0}
        self._udp_ports: set[int] = set()

    # --- configuration

    @staticmethod
    def _validate(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        merged = dict(DEFAULTS)
        options = dict(DEFAULT_OPTIONS)
        flat: dict[str, Any] = {}
        for key, value in config.items():
            if isinstance(value, Mapping) and key in ("inbound", "outbound", "i2cp", "i2p"):
                for sub, v in _flatten(value, key + "."):
                    flat[sub] = v
            else:
                flat[key] = value
        for key, value in flat.items():
            if key.startswith(OPTION_PREFIXES):
                options[key] = str(value).lower() if isinstance(value, bool) else str(value)
            elif key not in DEFAULTS:
                log.warning("[proxy]: unknown key %r ignored", key)
            else:
                merged[key] = value

        def bad(key: str, why: str) -> ServiceError:
            return ServiceError(f"[proxy] {key} = {merged[key]!r}: {why}")

        for key in ("port", "socks_port"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], int) or not 0 <= merged[key] <= 65535:
                raise bad(key, "a port is 0-65535 (0: any free port)")
        for key in ("http_enabled", "socks_enabled", "socks_udp", "addresshelper"):
            if not isinstance(merged[key], bool):
                raise bad(key, "true or false")
        for key in ("host", "socks_user", "socks_password", "keys"):
            if not isinstance(merged[key], str):
                raise bad(key, "a string")
        if isinstance(merged["outproxy"], str):
            merged["outproxy"] = [o for o in merged["outproxy"].replace(",", " ").split() if o]
        for key in ("outproxy", "jumpservers"):
            if not isinstance(merged[key], list) or not all(isinstance(v, str) for v in merged[key]):
                raise bad(key, "a list of strings")
        for entry in merged["outproxy"]:
            try:
                parse_outproxy(entry)
            except ValueError as exc:
                raise bad("outproxy", str(exc)) from None
        if isinstance(merged["max_connections"], bool) or not isinstance(merged["max_connections"], int) \
                or merged["max_connections"] < 1:
            raise bad("max_connections", "a positive number")
        for key in ("head_timeout", "idle_timeout", "connect_timeout", "response_timeout", "session_timeout"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], (int, float)) or merged[key] <= 0:
                raise bad(key, "a positive number of seconds")
            merged[key] = float(merged[key])
        if bool(merged["socks_user"]) != bool(merged["socks_password"]):
            raise bad("socks_user", "socks_user and socks_password go together")
        return merged, options

    # --- the service face

    async def start(self) -> None:
        if self.state == "running":
            return
        c = self.config
        try:
            if c["http_enabled"]:
                server = await asyncio.start_server(self._serve_http, c["host"], c["port"], limit=CHUNK)
                self._servers.append(server)
                self.http_address = _address(server)
            if c["socks_enabled"]:
                server = await asyncio.start_server(self._serve_socks, c["host"], c["socks_port"], limit=CHUNK)
                self._servers.append(server)
                self.socks_address = _address(server)
        except OSError as exc:
            await self._close_servers()
            self.state, self.error = "failed", f"cannot listen on {c['host']}: {exc.strerror or exc}"
            port = c["port"] if not self.http_address and c["http_enabled"] else c["socks_port"]
            raise ServiceError(f"[proxy] cannot listen on {c['host']}:{port}: {exc.strerror or exc}") from None
        if c["host"] not in ("127.0.0.1", "::1", "localhost"):
            log.warning("[proxy] host = %s: the proxies accept anyone who can reach that address", c["host"])
        keys = self._load_keys()
        self._session_task = asyncio.get_running_loop().create_task(self._open_session(keys))
        self.state, self.error = "running", ""
        log.info("HTTP proxy on %s, SOCKS proxy on %s", self.http_address or "-", self.socks_address or "-")

    def _load_keys(self) -> PrivateKeys | None:
        name = self.config["keys"]
        if not name or name == "transient":
            return None
        path = self.datadir / "proxy" / name
        try:
            if path.exists():
                return PrivateKeys.load(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = PrivateKeys.generate(rng=self.rng)
            keys.save(path)
            return keys
        except (OSError, ValueError) as exc:
            raise ServiceError(f"[proxy] keys = {name!r}: cannot use {path}: {exc}") from None

    async def _open_session(self, keys: PrivateKeys | None) -> Any:
        try:
            self.session = await self.network.open_session(keys, self.options, name="proxy")
            return self.session
        except (NetworkError, OSError) as exc:
            self._session_error = str(exc)
            log.warning("proxy destination: %s", exc)
            raise

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_servers()
        if self._session_task is not None:
            self._session_task.cancel()
            await asyncio.gather(self._session_task, return_exceptions=True)
            self._session_task = None
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = {"state": self.state, "http": self.http_address, "socks": self.socks_address,
                                  "b32": self.session.b32 if self.session is not None else "",
                                  "ready": self.session is not None,
                                  "outproxy": [str(o) for o in self.outproxies.outproxies],
                                  "active": len(self._tasks), **self.stats,
                                  "addresshelper_saves": len(self.saves),
                                  "listen": {k: v for k, v in (("HTTP", self.http_address),
                                                               ("SOCKS", self.socks_address)) if v}}
        if self.error or self._session_error:
            result["error"] = self.error or self._session_error
        return result

    def control_methods(self) -> dict[str, Any]:
        return {"Status": lambda params: self.status(), "Outproxy": self._control_outproxy, "Test": self._control_test}

    async def _control_test(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Fetch {"url": "http://..."} through this HTTP proxy, as a browser would: status, time, size."""
        url = params.get("url")
        if not isinstance(url, str) or not url.lower().startswith("http://") or len(url) > 2000:
            raise ValueError("url: an http:// address is needed")
        if not self.http_address:
            raise ValueError("the HTTP proxy is not listening")
        timeout = aiohttp.ClientTimeout(total=min(float(params.get("timeout", 60)), 300.0))
        started = time.monotonic()
        result: dict[str, Any] = {"url": url, "proxy": self.http_address}
        try:
            async with aiohttp.ClientSession(timeout=timeout) as client:
                async with client.get(url, proxy=f"http://{self.http_address}", allow_redirects=False) as response:
                    body = await response.content.read(1 << 20)
                    result.update(status=response.status, reason=response.reason or "", bytes=len(body))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            result.update(status=0, error=str(exc) or type(exc).__name__)
        result["ms"] = round((time.monotonic() - started) * 1000)
        return result

    def _control_outproxy(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """No params: the outproxy list; {"outproxy": [...]}: replace it."""
        if "outproxy" in params:
            entries = params["outproxy"]
            if isinstance(entries, str):
                entries = [entries] if entries else []
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise ValueError("outproxy: a list of destinations or socks://host:port")
            self.outproxies = OutproxyChooser([parse_outproxy(e) for e in entries])
            self.config["outproxy"] = list(entries)
        return {"outproxy": [str(o) for o in self.outproxies.outproxies]}

    # --- shared

    def _own(self) -> bool:
        task = asyncio.current_task()
        if task is None:
            return True
        if len(self._tasks) >= self.config["max_connections"]:
            self.stats["refused_busy"] += 1
            return False
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def wait_ready(self) -> str:
        """Until the proxy's destination is open (its tunnels built); returns its b32 address. Raises
        HttpError (503) when it cannot be opened within `session_timeout`."""
        return (await self._get_session()).b32

    async def _get_session(self) -> Any:
        if self.session is not None:
            return self.session
        if self._session_task is None:
            raise HttpError(503, "Proxy not started", "the proxy's destination is not open")
        try:
            return await asyncio.wait_for(asyncio.shield(self._session_task), self.config["session_timeout"])
        except (asyncio.TimeoutError, TimeoutError):
            raise HttpError(503, "Tunnels not ready", "the proxy's I2P tunnels are not ready yet; try again in a "
                                                      "minute") from None
        except (NetworkError, OSError):
            raise HttpError(503, "Tunnels not available",
                            f"the proxy's I2P destination could not be opened: {self._session_error}") from None

    async def _lookup(self, host: str) -> Destination | None:
        found = self.helper.lookup_once(host)
        if found is None and self.addressbook is not None:
            found = self.addressbook.lookup(host)
        if found is None and self.network.resolver is not None:
            found = self.network.resolver(host)
            if inspect.isawaitable(found):
                found = await found
        return found

    async def _destination(self, address: str) -> str | Destination:
        """What to connect to for an I2P address: a name through the address book, b32 and Base64 as they are."""
        route = classify(address)
        if route.kind == "name":
            found = await self._lookup(route.host)
            if found is None:
                raise HttpError(404, "Unknown host", f"{route.host} is not in the address book")
            return found
        return route.destination or route.host

    async def _connect_i2p(self, to: str | Destination, port: int) -> tuple[Any, Any]:
        """A stream to an I2P destination; network errors become HttpError with their page's status."""
        session = await self._get_session()
        label = to.b32_address if isinstance(to, Destination) else to
        try:
            return await session.connect(to, port, timeout=self.config["connect_timeout"])
        except NameNotFound:
            raise HttpError(404, "Unknown host", f"{label} is not in the address book") from None
        except PeerNotFound:
            raise HttpError(504, "Destination not found",
                            f"no LeaseSet for {label} was found: the site is offline or unknown to the network "
                            "database") from None
        except ConnectTimeout:
            raise HttpError(504, "Site timed out",
                            f"{label} did not answer within {self.config['connect_timeout']:.0f} s") from None
        except PeerUnreachable:
            raise HttpError(502, "Site unreachable", f"{label} was found but refused or reset the connection") from None
        except NetworkError as exc:
            raise HttpError(502, "Network error", str(exc)) from None

    async def _open_outproxy(self, host: str, port: int, *, tunnel: bool) -> tuple[Conn, Any, Outproxy]:
        """A connection through an outproxy: a CONNECT tunnel to host:port when `tunnel` (or for SOCKS
        outproxies, always), else a stream to an I2P HTTP outproxy to send a proxy request on."""
        failures = []
        for outproxy in self.outproxies.order(host):
            try:
                if outproxy.kind == "socks":
                    conn, writer = await self._socks_outproxy(outproxy, host, port)
                else:
                    reader, writer = await self._connect_i2p(await self._destination(outproxy.address), 80)
                    conn = Conn(reader)
                    if tunnel:
                        try:
                            await self._http_connect(conn, writer, host, port)
                        except BaseException:
                            close_writer(writer)
                            raise
                self.outproxies.worked(host, outproxy)
                return conn, writer, outproxy
            except HttpError as exc:
                failures.append(f"{outproxy}: {exc.detail}")
            except (OSError, asyncio.TimeoutError, TimeoutError, socks.SocksError, Closed) as exc:
                failures.append(f"{outproxy}: {exc or type(exc).__name__}")
        raise HttpError(502, "Outproxy failed", f"no outproxy could reach {host}: " + "; ".join(failures))

    async def _http_connect(self, conn: Conn, writer: Any, host: str, port: int) -> None:
        authority = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n\r\n".encode())
        await writer.drain()
        raw = await conn.read_head(self.config["response_timeout"], status=502)
        if raw is None:
            raise Closed("the outproxy closed the connection")
        answer = ResponseHead.parse(raw)
        if not 200 <= answer.status < 300:
            raise HttpError(502, "Outproxy refused", f"the outproxy answered {answer.status} {answer.reason}")

    async def _socks_outproxy(self, outproxy: Outproxy, host: str, port: int) -> tuple[Conn, Any]:
        timeout = self.config["connect_timeout"]
        reader, writer = await asyncio.wait_for(asyncio.open_connection(outproxy.address, outproxy.port), timeout)
        try:
            writer.write(socks.client_greeting())
            if (await asyncio.wait_for(reader.readexactly(2), timeout)) != bytes([5, socks.METHOD_NONE]):
                raise socks.SocksError("the SOCKS outproxy wants authentication")
            writer.write(socks.client_connect(host, port))
            head = await asyncio.wait_for(reader.readexactly(5), timeout)
            rest = await asyncio.wait_for(reader.readexactly(socks.client_reply_length(head) - 5), timeout)
            if head[1] != socks.REPLY_SUCCEEDED:
                raise socks.SocksError(f"the SOCKS outproxy answered code {head[1]}")
            del rest
            return Conn(reader), writer
        except BaseException:
            close_writer(writer)
            raise

    def _record_error(self, status: int, host: str, detail: str) -> None:
        self.stats["errors"] += 1
        self.errors.append({"time": time.strftime("%H:%M:%S"), "status": status, "host": host, "detail": detail})

    # --- HTTP

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._own():
            writer.write(pages.error_page(503, "Proxy busy", "Too many connections are open; try again shortly.",
                                          keep_alive=False))
            close_writer(writer)
            return
        self.stats["connections"] += 1
        conn = Conn(reader)
        try:
            first = True
            while True:
                try:
                    raw = await conn.read_head(self.config["head_timeout" if first else "idle_timeout"])
                except HttpError as exc:
                    self._record_error(exc.status, "-", exc.detail)
                    writer.write(pages.error_page(exc.status, exc.title, exc.detail, keep_alive=False))
                    await writer.drain()
                    return
                if raw is None:
                    return
                first = False
                self.stats["requests"] += 1
                if not await self._request(conn, writer, raw):
                    return
        except (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError, Closed, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP proxy: a request failed")
        finally:
            close_writer(writer)

    async def _request(self, conn: Conn, writer: Any, raw: bytes) -> bool:
        """Answers one request; True to keep the browser's connection for the next."""
        host = "-"
        try:
            head = RequestHead.parse(raw)
            keep = head.keep_alive
            framing = request_framing(head)
            target = request_target(head)
            host = target.host
            return await self._route(conn, writer, head, target, framing, keep)
        except HttpError as exc:
            self._record_error(exc.status, host, exc.detail)
            keep = exc.status < 500 and exc.status not in (400, 431) and _no_body(raw)
            if exc.status == 404 and exc.title == "Unknown host":
                writer.write(pages.unknown_host_page(host, self.config["jumpservers"], keep_alive=keep))
            else:
                writer.write(pages.error_page(exc.status, exc.title, exc.detail, keep_alive=keep))
            await writer.drain()
            return keep

    def _is_own_address(self, target: Target) -> bool:
        if target.absolute and target.host not in ("127.0.0.1", "localhost", "[::1]"):
            return False
        own = self.http_address.rpartition(":")
        return target.host in ("127.0.0.1", "localhost", "[::1]", own[0]) and str(target.port) == own[2]

    async def _route(self, conn: Conn, writer: Any, head: RequestHead, target: Target, framing: Framing,
                     keep: bool) -> bool:
        if self._is_own_address(target):
            route = Route("status", target.host)
        elif target.host == "i2p" and not target.connect:
            b64, _, rest = target.path[1:].partition("/")
            route = destination_route(b64.split("?", 1)[0], target.host)
            target = Target("http", route.destination.b32_address if route.destination else "i2p", target.port,
                            "/" + rest, absolute=True)
        else:
            route = classify(target.host)
        kind = route.kind
        body_keep = keep
        keep = keep and framing.kind == "none"      # a page of ours leaves a request body unread: close after
        if kind == "status":
            writer.write(pages.status_page(self.status(), list(self.errors), list(self.saves), keep_alive=keep))
            await writer.drain()
            return keep
        if kind == "invalid":
            raise HttpError(400, "Bad request", f"{target.host[:80]} is not a valid host name")
        if kind == "local":
            self._record_error(403, target.host, "local address refused")
            writer.write(pages.local_refused_page(target.host, keep_alive=keep))
            await writer.drain()
            return keep
        if kind == "b33":
            self._record_error(404, target.host, "encrypted LeaseSet address")
            writer.write(pages.b33_page(target.host, keep_alive=keep))
            await writer.drain()
            return keep
        if kind == "clearnet":
            return await self._clearnet(conn, writer, head, target, framing, body_keep)
        helper = extract(target.path) if not target.connect else None
        if helper is not None and not self.config["addresshelper"]:
            raise HttpError(403, "Address helper disabled", "this proxy does not accept ?i2paddresshelper links")
        destination: Destination | str
        if kind == "name":
            book = await self._lookup(route.host)
            if helper is not None:
                return await self._address_helper(writer, head, target, helper, book, keep)
            if book is None:
                raise HttpError(404, "Unknown host", f"{route.host} is not in the address book")
            destination = book
        elif helper is not None:     # a b32 or Base64 host needs no helper: drop it
            writer.write(pages.redirect(f"http://{target.authority}{helper.clean_path}", keep_alive=keep))
            await writer.drain()
            return keep
        else:
            destination = route.destination or route.host
        site_host = destination.b32_address if isinstance(destination, Destination) else destination
        port = target.port
        reader, site_writer = await self._connect_i2p(destination, port)
        if target.connect:
            return await self._tunnel(conn, writer, Conn(reader), site_writer)
        return await self._exchange(conn, writer, head, target, framing, body_keep, Conn(reader), site_writer,
                                    outgoing_request(head, target, site_host))

    async def _address_helper(self, writer: Any, head: RequestHead, target: Target, helper: Any,
                              book: Destination | None, keep: bool) -> bool:
        dest = await self._helper_destination(helper.value)
        outcome = self.helper.handle(target, helper, dest, book, head.get("Referer"), keep_alive=keep)
        if outcome.save_book is not None:
            try:
                self.addressbook.add(target.host, dest, book=outcome.save_book, source="addresshelper")
            except Exception as exc:   # noqa: BLE001 - the book's own failure, shown as a page
                log.warning("address book save of %s failed: %s", target.host, exc)
                raise HttpError(500, "Address book error", f"{target.host} could not be saved: {exc}") from None
            self.saves.append({"time": time.strftime("%H:%M:%S"), "host": target.host, "b32": dest.b32_address,
                               "book": outcome.save_book})
            log.info("address helper: saved %s as %s in the %s book", target.host, dest.b32_address,
                     outcome.save_book)
        writer.write(outcome.response)
        await writer.drain()
        return keep

    async def _helper_destination(self, value: str) -> Destination:
        route = classify(value if value.endswith(".i2p") or len(value) > 60 else value + ".i2p")
        if route.kind == "b64" and route.destination is not None:
            return route.destination
        if route.kind == "b32":
            session = await self._get_session()
            try:
                return await session.resolve(route.host, timeout=self.config["connect_timeout"])
            except NetworkError as exc:
                raise HttpError(504, "Destination not found", f"the address helper's {route.host}: {exc}") from None
        if route.kind == "name":
            found = await self._lookup(route.host)
            if found is not None:
                return found
        raise HttpError(400, "Bad address helper", f"the address helper {value[:60]!r} is not a Base64 destination, "
                                                   "a b32 address or a known name")

    async def _clearnet(self, conn: Conn, writer: Any, head: RequestHead, target: Target, framing: Framing,
                        keep: bool) -> bool:
        if not self.outproxies.outproxies:
            keep = keep and framing.kind == "none"
            self._record_error(503, target.host, "no outproxy configured")
            writer.write(pages.no_outproxy_page(target.host, keep_alive=keep))
            await writer.drain()
            return keep
        site_conn, site_writer, outproxy = await self._open_outproxy(target.host, target.port,
                                                                     tunnel=target.connect)
        if target.connect:
            return await self._tunnel(conn, writer, site_conn, site_writer)
        request = outgoing_request(head, target, target.host, absolute=outproxy.kind == "i2p")
        return await self._exchange(conn, writer, head, target, framing, keep, site_conn, site_writer, request)

    async def _tunnel(self, conn: Conn, writer: Any, site: Conn, site_writer: Any) -> bool:
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await splice(conn, writer, site, site_writer, self.config["idle_timeout"])
        finally:
            close_writer(site_writer)
        return False

    async def _exchange(self, conn: Conn, writer: Any, head: RequestHead, target: Target, framing: Framing,
                        keep: bool, site: Conn, site_writer: Any, request: bytes) -> bool:
        """Sends one request to the site and its answer back; True when the browser's connection goes on."""
        timeout = self.config["response_timeout"]
        answered = False
        body_task = None
        try:
            site_writer.write(request)
            await site_writer.drain()
            if framing.kind != "none":
                body_task = asyncio.ensure_future(copy_body(conn, site_writer, framing, timeout))
            while True:
                try:
                    raw = await site.read_head(timeout, status=502)
                except (asyncio.TimeoutError, TimeoutError):
                    raise HttpError(504, "Site timed out", f"{target.host} sent no answer within {timeout:.0f} s") \
                        from None
                except (Closed, OSError, ConnectionError):
                    raw = None
                if raw is None:
                    raise HttpError(502, "No answer", f"{target.host} closed the connection without an answer")
                response = ResponseHead.parse(raw)
                rframing = response_framing(head.method, response)
                if 100 <= response.status < 200 and response.status != 101:
                    writer.write(incoming_response(response, rframing, keep_alive=keep))
                    await writer.drain()
                    continue
                break
            keep = keep and rframing.kind in ("none", "length", "chunked")
            writer.write(incoming_response(response, rframing, keep_alive=keep))
            answered = True
            await writer.drain()
            if rframing.kind == "upgrade":
                if body_task is not None:
                    body_task.cancel()
                await splice(conn, writer, site, site_writer, self.config["idle_timeout"])
                return False
            try:
                await copy_body(site, writer, rframing, timeout)
            except (Closed, OSError, ConnectionError, HttpError, asyncio.TimeoutError, TimeoutError):
                return False        # the head is out: all we can do is end the connection
            if body_task is not None:
                if not body_task.done():
                    return False    # the site answered before taking the whole body
                if body_task.exception() is not None:
                    return False
            return keep
        except HttpError:
            if answered:
                return False
            raise
        finally:
            if body_task is not None and not body_task.done():
                body_task.cancel()
                await asyncio.gather(body_task, return_exceptions=True)
            close_writer(site_writer)

    # --- SOCKS

    async def _serve_socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._own():
            close_writer(writer)
            return
        self.stats["socks_connections"] += 1
        user, password = self.config["socks_user"], self.config["socks_password"]
        handshake = socks.SocksHandshake((user, password) if user else None, udp=self.config["socks_udp"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config["head_timeout"]
        try:
            while handshake.request is None:
                data = await asyncio.wait_for(reader.read(512), max(0.1, deadline - loop.time()))
                if not data:
                    return
                try:
                    handshake.receive(data)
                except socks.SocksError as exc:
                    writer.write(exc.reply)
                    await writer.drain()
                    self._record_error(400, "socks", exc.reason)
                    return
                writer.write(handshake.data_to_send())
                await writer.drain()
            request = handshake.request
            if request.command == socks.CMD_UDP:
                await self._socks_udp(handshake, reader, writer)
                return
            code, site = await self._socks_connect(request.host, request.port)
            writer.write(handshake.reply(code))
            await writer.drain()
            if site is None:
                return
            site_conn, site_writer = site
            conn = Conn(reader)
            conn.buf += handshake.leftover
            try:
                await splice(conn, writer, site_conn, site_writer, self.config["idle_timeout"])
            finally:
                close_writer(site_writer)
        except (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SOCKS proxy: a connection failed")
        finally:
            close_writer(writer)

    async def _socks_udp(self, handshake: socks.SocksHandshake, reader: Any, writer: Any) -> None:
        """SOCKS5 UDP ASSOCIATE: the client's datagrams go out as repliable I2P datagrams from a port of the
        proxy's destination kept for this association; answers to that port come back to the client. The
        association ends with its TCP connection (RFC 1928 section 7)."""
        try:
            session = await self._get_session()
        except HttpError:
            writer.write(handshake.reply(socks.REPLY_GENERAL_FAILURE))
            return
        port = next((p for p in range(1024, 65536) if p not in self._udp_ports), 0)
        if not port:
            writer.write(handshake.reply(socks.REPLY_GENERAL_FAILURE))
            return
        self._udp_ports.add(port)
        relay = UdpRelay(self, session, writer.get_extra_info("peername")[0], port)
        transport = None
        try:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: relay, local_addr=(self.config["host"], 0))
            session.on_datagram(relay.from_i2p, port=port)
            self.stats["udp_associations"] += 1
            writer.write(handshake.reply(socks.REPLY_SUCCEEDED, transport.get_extra_info("sockname")[:2]))
            await writer.drain()
            while await reader.read(512):      # the association lasts as long as this connection
                pass
        finally:
            session.on_datagram(None, port=port)
            self._udp_ports.discard(port)
            relay.close()
            if transport is not None:
                transport.close()

    async def _socks_connect(self, host: str, port: int) -> tuple[int, tuple[Conn, Any] | None]:
        """A SOCKS5 reply code and, on success, the connection to splice."""
        route = classify(host)
        try:
            if route.kind in ("b32", "b64", "name"):
                reader, writer = await self._connect_i2p(await self._destination(host), port)
                return socks.REPLY_SUCCEEDED, (Conn(reader), writer)
            if route.kind == "clearnet" and self.outproxies.outproxies:
                conn, writer, _ = await self._open_outproxy(host, port, tunnel=True)
                return socks.REPLY_SUCCEEDED, (conn, writer)
            self._record_error(403, host, f"SOCKS: {route.kind} host refused")
            return (socks.REPLY_HOST_UNREACHABLE if route.kind in ("b33", "invalid") else socks.REPLY_NOT_ALLOWED), None
        except HttpError as exc:
            self._record_error(exc.status, host, f"SOCKS: {exc.detail}")
            return {404: socks.REPLY_HOST_UNREACHABLE, 504: socks.REPLY_TTL_EXPIRED,
                    503: socks.REPLY_GENERAL_FAILURE}.get(exc.status, socks.REPLY_CONNECTION_REFUSED
                                                          if exc.title == "Site unreachable"
                                                          else socks.REPLY_HOST_UNREACHABLE), None


class UdpRelay(asyncio.DatagramProtocol):
    """One UDP association: SOCKS5 UDP datagrams from one client <-> I2P datagrams on one local port."""

    MAX_PENDING = 16          # lookups under way; datagrams beyond are dropped, as UDP may
    MAX_KNOWN = 256

    def __init__(self, service: ProxyService, session: Any, client_ip: str, port: int):
        self.service, self.session, self.client_ip, self.port = service, session, client_ip, port
        self.transport: asyncio.DatagramTransport | None = None
        self.client: tuple[str, int] | None = None
        self.known: dict[str, Destination] = {}
        self.pending: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport    # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.client_ip:
            return                   # only the client that opened the association
        self.client = addr
        try:
            host, port, payload = socks.parse_udp(data)
        except socks.SocksError:
            return
        dest = self.known.get(host)
        if dest is not None:
            self._send(dest, port, payload)
        elif len(self.pending) < self.MAX_PENDING and classify(host).kind in ("b32", "b64", "name"):
            task = asyncio.get_running_loop().create_task(self._resolve_and_send(host, port, payload))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _resolve_and_send(self, host: str, port: int, payload: bytes) -> None:
        try:
            target = await self.service._destination(host)
            dest = target if isinstance(target, Destination) else await self.session.resolve(target)
        except (HttpError, NetworkError):
            return
        if len(self.known) >= self.MAX_KNOWN:
            self.known.clear()
        self.known[host] = dest
        self._send(dest, port, payload)

    def _send(self, dest: Destination, port: int, payload: bytes) -> None:
        self.session.send_datagram(dest, payload, repliable=True, from_port=self.port, to_port=port)

    def from_i2p(self, datagram: Any) -> None:
        if self.client is None or self.transport is None or datagram.sender is None:
            return               # raw datagrams name no sender to answer to
        self.transport.sendto(socks.build_udp(datagram.sender.b32_address, datagram.from_port, datagram.payload),
                              self.client)

    def close(self) -> None:
        for task in self.pending:
            task.cancel()


def _no_body(raw: bytes) -> bool:
    lower = raw.lower()
    return b"content-length" not in lower and b"transfer-encoding" not in lower


def _flatten(value: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out = []
    for key, sub in value.items():
        if isinstance(sub, Mapping):
            out += _flatten(sub, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", sub))
    return out


def _address(server: asyncio.AbstractServer) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"
