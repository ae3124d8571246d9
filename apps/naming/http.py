"""A small HTTP/1.1 client and server over I2P streams, for subscriptions and the hosts.txt publisher.

The parsing is sans-I/O (ResponseParser, parse_request_head): bytes in, a bounded result out; the
two coroutines at the bottom move bytes between them and an apps/network stream.
"""
from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from core.httpmsg import MAX_HEAD_BYTES, ChunkedBody, HttpError, Request, format_response, parse_request_head
from core.httpmsg import parse_headers as _parse_headers

READ_CHUNK = 65536


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes = b""


class ResponseParser:
    """Feed it the bytes of one response; `done` once the body is complete; bodies over `max_body` raise."""

    def __init__(self, *, max_body: int, head_only: bool = False):
        self.max_body = max_body
        self.head_only = head_only
        self.response: Response | None = None
        self.done = False
        self._buffer = bytearray()
        self._body = bytearray()
        self._length: int | None = None
        self._chunks: ChunkedBody | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self._buffer += data
        if self.response is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise HttpError("response head too long", structure="HTTP")
                return
            self._start(bytes(self._buffer[:end]))
            del self._buffer[:end + 4]
        if not self.done:
            self._read_body()

    def eof(self) -> Response:
        """The connection closed: the response, if it was complete (a body without length ends here)."""
        if self.response is None:
            raise HttpError("connection closed before the response head", structure="HTTP")
        if not self.done:
            if self._chunks is not None or self._length is not None:
                raise HttpError("connection closed in the middle of the body", structure="HTTP")
            self._finish()
        return self.response

    def _start(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise HttpError(f"bad status line {lines[0][:60]!r}", structure="HTTP")
        headers = _parse_headers(lines[1:])
        self.response = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)
        status = self.response.status
        if self.head_only or status in (204, 304) or 100 <= status < 200:
            self._finish()
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunks = ChunkedBody(self.max_body)
        elif "content-length" in headers:
            value = headers["content-length"]
            if not value.isdigit():
                raise HttpError(f"bad Content-Length {value[:20]!r}", structure="HTTP")
            self._length = int(value)
            if self._length > self.max_body:
                raise HttpError(f"body of {self._length} bytes is over the {self.max_body}-byte limit",
                                structure="HTTP")

    def _take(self, data: bytes | bytearray) -> None:
        self._body += data
        if len(self._body) > self.max_body:
            raise HttpError(f"body over the {self.max_body}-byte limit", structure="HTTP")

    def _read_body(self) -> None:
        if self._chunks is not None:
            self._read_chunks()
        else:
            self._take(self._buffer)
            self._buffer.clear()
            if self._length is not None and len(self._body) >= self._length:
                del self._body[self._length:]
                self._finish()

    def _read_chunks(self) -> None:
        self._chunks.feed(self._buffer)
        if self._chunks.done:
            self._body = self._chunks.body
            self._finish()

    def _finish(self) -> None:
        body = bytes(self._body)
        encoding = self.response.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "x-gzip", "deflate") and body:
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
            try:
                body = inflater.decompress(body, self.max_body + 1)
            except zlib.error as exc:
                raise HttpError(f"bad {encoding} body: {exc}", structure="HTTP") from None
            if len(body) > self.max_body:
                raise HttpError(f"body over the {self.max_body}-byte limit once inflated", structure="HTTP")
        self.response.body = body
        self.done = True


def format_request(method: str, url: str, headers: Mapping[str, str] | None = None) -> tuple[str, int, bytes]:
    """(host, port, request bytes) for an http:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise HttpError(f"{url}: only http:// URLs with a host", structure="HTTP")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}", "Connection: close",
             "Accept-Encoding: identity", "User-Agent: pyi2p-addressbook"]
    lines.extend(f"{key}: {value}" for key, value in (headers or {}).items())
    return parts.hostname, parts.port or 80, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def http_get(session, url: str, headers: Mapping[str, str] | None = None, *, max_body: int,
                   timeout: float = 120.0) -> Response:
    """GET `url` over an I2P stream of `session` (apps/network); NetworkError, HttpError or TimeoutError."""
    host, port, request = format_request("GET", url, headers)

    async def run() -> Response:
        reader, writer = await session.connect(host, port, timeout=timeout)
        try:
            return await exchange(reader, writer, request, max_body)
        finally:
            writer.close()

    return await asyncio.wait_for(run(), timeout)


async def exchange(reader, writer, request: bytes, max_body: int) -> Response:
    """Send a request, read the whole response (to its length, or to the end of the stream)."""
    writer.write(request)
    await writer.drain()
    parser = ResponseParser(max_body=max_body)
    while not parser.done:
        data = await reader.read(READ_CHUNK)
        if not data:
            return parser.eof()
        parser.feed(data)
    return parser.response


async def get_through_proxy(host: str, port: int, url: str, *, max_body: int = 10 << 20,
                            timeout: float = 300.0) -> bytes:
    """GET `url` through an HTTP proxy (an I2P router's, e.g. 127.0.0.1:4444); the body of a 200 answer."""
    _, _, request = format_request("GET", url)
    request = request.replace(request.split(b" ", 2)[1], url.encode(), 1)      # absolute form for a proxy
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            response = await exchange(reader, writer, request, max_body)
        finally:
            writer.close()
    if response.status != 200:
        raise HttpError(f"HTTP {response.status} {response.reason}", structure="HTTP")
    return response.body


Handler = Callable[[Request], "Awaitable[bytes] | bytes"]


async def serve_http_stream(reader, writer, handler: Handler, *, timeout: float = 60.0) -> None:
    """Read one request from a stream, write the handler's response bytes, close; bad requests get a 400."""
    try:
        head = bytearray()
        async with asyncio.timeout(timeout):
            while b"\r\n\r\n" not in head:
                data = await reader.read(4096)
                if not data:
                    return
                head += data
                if len(head) > MAX_HEAD_BYTES:
                    raise HttpError("request head too long", structure="HTTP")
            request = parse_request_head(bytes(head[:head.find(b"\r\n\r\n")]))
            answer = handler(request)
            if asyncio.iscoroutine(answer):
                answer = await answer
            writer.write(answer)
            await writer.drain()
    except HttpError as exc:
        writer.write(format_response(400, "Bad Request", {"Content-Type": "text/plain"}, str(exc).encode()))
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
