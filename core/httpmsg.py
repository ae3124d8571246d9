"""HTTP/1.1 message heads, sans-I/O: the request head a small local server reads and the response it writes
(RFC 9112 sections 3 and 5), bounded in size. The I2PControl server and the address book's HTTP use them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from core.data.errors import ProtocolError

MAX_HEAD_BYTES = 16384
MAX_HEADERS = 100


class HttpError(ProtocolError):
    """A malformed or oversized HTTP message."""


class BodyTooLarge(HttpError):
    """A body over the reader's limit (a server answers 413)."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    version: str = "HTTP/1.1"


def parse_headers(lines: list[bytes]) -> dict[str, str]:
    """Header lines to a dict of lower-case names; repeated fields are joined with ", " (RFC 9110 5.3)."""
    if len(lines) > MAX_HEADERS:
        raise HttpError(f"more than {MAX_HEADERS} header lines", structure="HTTP")
    headers: dict[str, str] = {}
    for raw in lines:
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise HttpError(f"bad header line {raw[:40]!r}", structure="HTTP")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return headers


def parse_request_head(head: bytes) -> Request:
    """The request line and headers of a request (without the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        raise HttpError(f"bad request line {lines[0][:60]!r}", structure="HTTP")
    return Request(parts[0], parts[1], parse_headers(lines[1:]), parts[2])


def format_response(status: int, reason: str, headers: Mapping[str, str], body: bytes = b"",
                    *, head_only: bool = False, close: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    if status != 204:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


class ChunkedBody:
    """Decodes a chunked body (RFC 9112 7.1) from a buffer it consumes; `done` after the last chunk and
    trailer; a body over `max_body` raises HttpError."""

    def __init__(self, max_body: int):
        self.max_body = max_body
        self.body = bytearray()
        self.done = False
        self._left = -1          # -1: a chunk-size line is next
        self._trailer = False

    def feed(self, buffer: bytearray) -> None:
        while not self.done:
            if self._left < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise HttpError("chunk size line too long", structure="HTTP")
                    return
                line = bytes(buffer[:end])
                del buffer[:end + 2]
                if self._trailer:
                    self.done = not line
                    continue
                try:
                    self._left = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HttpError(f"bad chunk size {line[:20]!r}", structure="HTTP") from None
                if self._left == 0:
                    self._trailer, self._left = True, -1
                elif len(self.body) + self._left > self.max_body:
                    raise BodyTooLarge(f"body over the {self.max_body}-byte limit", structure="HTTP")
                continue
            if len(buffer) < self._left + 2:
                return
            self.body += buffer[:self._left]
            del buffer[:self._left + 2]
            self._left = -1
