"""The asyncio/aiohttp driver: JSON-RPC bodies over HTTP POST on "/" and "/jsonrpc" (i2pcontrol-2.10.md)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
from pathlib import Path

from aiohttp import web

from core.clock import Clock, Rng

from .api import ControlledRouter
from .config import load_or_create_control_config, save_control_config
from .jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, RpcError, encode, error_response
from .methods import ControlService

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
RPC_PATHS = ("/", "/jsonrpc", "/jsonrpc/")
SAMPLE_INTERVAL_S = 1.0
MAX_CONNECTIONS = 64          # clients are local tools (the console, `pyi2p status`): a few at a time
IDLE_TIMEOUT_S = 10.0         # a connection that sends nothing this long is closed (slow clients)
BODY_TIMEOUT_S = 10.0


class _CappedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's request handler: refuses connections past the cap and closes idle ones."""

    def __init__(self, server: "ControlServer"):
        self.server = server
        self.inner = server._runner.server()
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if len(self.server._connections) >= self.server.max_connections:
            self.server.refused_connections += 1
            transport.abort()
            return
        self.server._connections.add(self)
        self.inner.connection_made(transport)
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.server.idle_timeout_s, self._expire)

    def _expire(self) -> None:
        self.server.timed_out_connections += 1
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self._touch()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self in self.server._connections:
            self.server._connections.discard(self)
            self.inner.connection_lost(exc)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_header_is_local(host_header: str | None) -> bool:
    """Refuse DNS-rebinding requests: a loopback-only server answers only to loopback names."""
    if not host_header:
        return True
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost") or is_loopback(host)


def rpc_error(code: int, detail: str | None = None, status: int = 200) -> web.Response:
    return web.Response(status=status, body=encode(error_response(None, RpcError(code, detail))),
                        content_type="application/json")


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


@web.middleware
async def _json_errors(request: web.Request, handler):
    """Every reply is JSON-RPC: no HTML error pages, no tracebacks."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return rpc_error(INVALID_REQUEST, f"HTTP {exc.status} {exc.reason}: send JSON-RPC with POST to /jsonrpc.",
                         status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("I2PControl request failed")
        return rpc_error(INTERNAL_ERROR, status=500)


class ControlServer:
    """Serves a ControlService on host:port; samples the router for GetRate while running."""

    def __init__(self, service: ControlService, host: str = "127.0.0.1", port: int = 7650, *,
                 max_body: int = MAX_BODY, sample_interval_s: float = SAMPLE_INTERVAL_S,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout_s: float = IDLE_TIMEOUT_S):
        self.service = service
        self.host = host
        self.port = port
        self.max_body = max_body
        self.sample_interval_s = sample_interval_s
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.loopback_only = is_loopback(host)
        self.refused_connections = 0
        self.timed_out_connections = 0
        self._connections: set[_CappedProtocol] = set()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._sampler: asyncio.Task | None = None

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors], client_max_size=self.max_body)
        for path in RPC_PATHS:
            app.router.add_route("*", path, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if self.loopback_only and not (is_loopback(request.remote) and host_header_is_local(request.host)):
            return rpc_error(INVALID_REQUEST, "Only local clients may use this server.", status=403)
        if request.method != "POST":
            return rpc_error(INVALID_REQUEST, "Send JSON-RPC requests with POST.", status=405)
        try:
            body = await asyncio.wait_for(_read_limited(request, self.max_body), BODY_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError, web.HTTPException, OSError):
            # the client went away or stalled mid-body: nothing to answer, nothing to log as an error
            raise web.HTTPRequestTimeout() from None
        if body is None:
            return rpc_error(INVALID_REQUEST, f"The request body is over {self.max_body} bytes.", status=413)
        if not body.strip():
            return rpc_error(PARSE_ERROR, "The request body is empty.")
        answer = await self.service.handle_body(body)
        if answer is None:  # only notifications: JSON-RPC 2.0 sends nothing back
            return web.Response(status=204)
        return web.Response(body=answer, content_type="application/json")

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _CappedProtocol(self), self.host, self.port, reuse_address=True)
        except BaseException:
            self._runner = None
            await runner.cleanup()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._sampler = asyncio.create_task(self._sample_forever(), name="i2pcontrol-sampler")
        log.info("I2PControl listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                if connection.transport is not None:
                    connection.transport.abort()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _sample_forever(self) -> None:
        while True:
            try:
                self.service.sample_rates()
            except Exception:
                log.exception("I2PControl rate sampling failed")
            await asyncio.sleep(self.sample_interval_s)


async def start_control_server(router: ControlledRouter, datadir: str | os.PathLike, *,
                               address: str | None = None, port: int | None = None,
                               clock: Clock | None = None, rng: Rng = os.urandom) -> ControlServer:
    """Load or create DATADIR/control.json, serve I2PControl, and record the bound port for clients.

    A configured port 0 picks a free port on first start; it is written back and kept.
    """
    datadir = Path(datadir).expanduser()
    config = load_or_create_control_config(datadir, address=address, port=port, rng=rng)
    service = ControlService(router, config, clock=clock, rng=rng,
                             save_config=lambda changed: save_control_config(datadir, changed))
    server = ControlServer(service, config.address, config.port)
    bound = await server.start()
    if bound != config.port:
        service.config = dataclasses.replace(service.config, port=bound)
        save_control_config(datadir, service.config)
    return server

