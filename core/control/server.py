"""The asyncio driver: JSON-RPC bodies over HTTP/1.1 POST on "/" and "/jsonrpc" (i2pcontrol-2.10.md), served by
a small protocol of its own (core.httpmsg) so the router does not load an HTTP framework for it."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
from http import HTTPStatus
from pathlib import Path

from core.clock import Clock, Rng
from core.httpmsg import (MAX_HEAD_BYTES, BodyTooLarge, ChunkedBody, HttpError, Request, format_response,
                          parse_request_head)

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


class _Connection(asyncio.Protocol):
    """One client: refused past the cap, closed when idle; reads a request head and its body (Content-Length or
    chunked, at most max_body), answers, and keeps the connection for the next request unless asked to close."""

    def __init__(self, server: "ControlServer"):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._buffer = bytearray()
        self._request: Request | None = None
        self._length = 0                          # of a Content-Length body
        self._chunks: ChunkedBody | None = None   # of a chunked body
        self._task: asyncio.Task | None = None
        self._dropping = False                    # answered 413: the rest of the body is read and dropped

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if len(self.server._connections) >= self.server.max_connections:
            self.server.refused_connections += 1
            transport.abort()
            return
        self.server._connections.add(self)
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
        self._buffer += data
        if self._dropping:
            self._drop()
        elif self._task is None:
            self._advance()

    def _advance(self) -> None:
        """Parse what is buffered; start answering once a whole request is in."""
        try:
            if self._request is None and not self._start_request():
                return
            body = self._take_body()
        except BodyTooLarge:
            self._cancel_body_timer()
            # answered at once; the body is still read (and dropped) so the client sees the answer, not a reset
            self._reply(rpc_error(INVALID_REQUEST, f"The request body is over {self.server.max_body} bytes.",
                                  status=413), close=False, last=True)
            self._dropping = True
            self._drop()
            return
        except HttpError:
            self._fail(400, "Bad Request")
            return
        if body is None:
            return
        request, self._request = self._request, None
        self._cancel_body_timer()
        self.transport.pause_reading()
        self._task = asyncio.ensure_future(self._answer(request, body))

    def _start_request(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise HttpError("request head too long", structure="HTTP")
            return False
        request = parse_request_head(bytes(self._buffer[:end]))
        del self._buffer[:end + 4]
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            self._chunks, self._length = ChunkedBody(self.server.max_body), 0
        else:
            value = request.headers.get("content-length", "0").strip()
            if not value.isdigit():
                raise HttpError(f"bad Content-Length {value[:20]!r}", structure="HTTP")
            self._chunks, self._length = None, int(value)
        self._request = request
        self._body_timer = asyncio.get_running_loop().call_later(BODY_TIMEOUT_S, self._fail, 408, "Request Timeout")
        if self._length > self.server.max_body:
            raise BodyTooLarge(f"body of {self._length} bytes", structure="HTTP")
        if request.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")   # curl waits for it before a body over 1 KiB
        return True

    def _take_body(self) -> bytes | None:
        """The whole body once it is in, else None."""
        if self._chunks is not None:
            self._chunks.feed(self._buffer)
            return bytes(self._chunks.body) if self._chunks.done else None
        if len(self._buffer) < self._length:
            return None
        body = bytes(self._buffer[:self._length])
        del self._buffer[:self._length]
        return body

    def _drop(self) -> None:
        if self._chunks is not None:
            self._chunks.max_body = 1 << 62     # decode to find the end; keep nothing
            try:
                self._chunks.feed(self._buffer)
            except HttpError:
                self._buffer.clear()
                self._chunks.done = True
            self._chunks.body.clear()
            finished = self._chunks.done
        else:
            taken = min(self._length, len(self._buffer))
            del self._buffer[:taken]
            self._length -= taken
            finished = not self._length
        if finished and self.transport is not None:
            self.transport.close()

    async def _answer(self, request: Request, body: bytes) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        try:
            reply = await self.server.answer(request, body, peer[0] if peer else None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("I2PControl request failed")
            reply = rpc_error(INTERNAL_ERROR, status=500)
        self._task = None
        if self.transport is None or self.transport.is_closing():
            return
        self._reply(reply, close=not _keep_alive(request))
        if not self.transport.is_closing():
            self.transport.resume_reading()
            self._advance()

    def _reply(self, reply: tuple[int, bytes], *, close: bool, last: bool = False) -> None:
        """Write an answer; `close` closes now, `last` only tells the client this connection ends."""
        status, body = reply
        headers = {} if status == 204 else {"Content-Type": "application/json"}
        self.transport.write(format_response(status, HTTPStatus(status).phrase, headers, body, close=close or last))
        if close:
            self.transport.close()

    def _fail(self, status: int, reason: str) -> None:
        """The request cannot be read: a JSON-RPC error with the HTTP status, then the connection closes."""
        self._body_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self._reply(rpc_error(INVALID_REQUEST, f"HTTP {status} {reason}: send JSON-RPC with POST to /jsonrpc.",
                                  status=status), close=True)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._cancel_body_timer()
        if self._task is not None:
            self._task.cancel()
        self.transport = None
        self.server._connections.discard(self)


def _keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


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


def rpc_error(code: int, detail: str | None = None, status: int = 200) -> tuple[int, bytes]:
    return status, encode(error_response(None, RpcError(code, detail)))


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
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sampler: asyncio.Task | None = None

    async def answer(self, request: Request, body: bytes, remote: str | None) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one request; 204 with no body when only notifications came."""
        if self.loopback_only and not (is_loopback(remote) and host_header_is_local(request.headers.get("host"))):
            return rpc_error(INVALID_REQUEST, "Only local clients may use this server.", status=403)
        if request.target.split("?", 1)[0] not in RPC_PATHS:
            return rpc_error(INVALID_REQUEST, "HTTP 404 Not Found: send JSON-RPC with POST to /jsonrpc.", status=404)
        if request.method != "POST":
            return rpc_error(INVALID_REQUEST, "Send JSON-RPC requests with POST.", status=405)
        if not body.strip():
            return rpc_error(PARSE_ERROR, "The request body is empty.")
        answer = await self.service.handle_body(body)
        if answer is None:  # only notifications: JSON-RPC 2.0 sends nothing back
            return 204, b""
        return 200, answer

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0)."""
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), self.host, self.port, reuse_address=True)
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

