"""HTTP server tunnels, sans-I/O: the request head a site receives and the response head a caller gets.

The site learns who calls (X-I2P-DestB32/DestHash/DestB64, as i2pd and Java I2P send them; what the caller
sent under those names is dropped), gets one request per connection (Connection: close), and the
caller does not learn the site's software or clock (Server, X-Powered-By, X-Runtime, Date are dropped).
"""
from __future__ import annotations

from core.data.encoding import b64encode
from core.data.errors import ParseError
from core.data.identity import Destination

MAX_HEAD_BYTES = 64 * 1024
CALLER_HEADERS = ("x-i2p-destb32", "x-i2p-desthash", "x-i2p-destb64")
HOP_HEADERS = ("connection", "keep-alive", "proxy-connection")
IDENTIFYING_RESPONSE_HEADERS = frozenset({"server", "x-powered-by", "x-runtime", "date"})


class HTTPHeadError(ParseError):
    """A head we will not pass on; `status` is the answer the caller gets."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message, structure="HTTP head")
        self.status = status


class HeadBuffer:
    """Collects bytes until the end of a head (a blank line), at most `limit` bytes of head."""

    def __init__(self, limit: int = MAX_HEAD_BYTES, *, too_large_status: int = 431):
        self.limit = limit
        self.too_large_status = too_large_status
        self._buffer = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """(head, what follows it) once the head is complete; None while more is needed."""
        start = max(0, len(self._buffer) - 3)
        self._buffer += data
        end = _head_end(self._buffer, start)
        if end is None:
            if len(self._buffer) > self.limit:
                raise HTTPHeadError(f"head longer than {self.limit} bytes", self.too_large_status)
            return None
        if end > self.limit:
            raise HTTPHeadError(f"head longer than {self.limit} bytes", self.too_large_status)
        head, rest = bytes(self._buffer[:end]), bytes(self._buffer[end:])
        self._buffer.clear()
        return head, rest

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)


def _head_end(buffer: bytearray, start: int) -> int | None:
    crlf = buffer.find(b"\r\n\r\n", start)
    lf = buffer.find(b"\n\n", start)
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else None


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The start line and the header fields, in order (RFC 9112 section 2.1; no obsolete line folding)."""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise HTTPHeadError("empty head")
    start, fields = lines[0], []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise HTTPHeadError("obsolete line folding in a header")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t\"(),/;<=>?@[\\]{}"):
            raise HTTPHeadError(f"bad header line {line[:60]!r}")
        fields.append((name, value.strip()))
    return start, fields


def build_head(start: str, fields: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([start] + [f"{name}: {value}" for name, value in fields]) + "\r\n\r\n").encode("latin-1")


def rewrite_request(head: bytes, caller: Destination, *, host_override: str = "", i2p_headers: bool = True) -> bytes:
    """The request head for the site: caller headers replaced, Connection: close, Host rewritten if asked."""
    start, fields = parse_head(head)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise HTTPHeadError(f"bad request line {start[:60]!r}")
    kept = [(n, v) for n, v in fields if n.lower() not in CALLER_HEADERS and n.lower() not in HOP_HEADERS]
    if host_override:
        kept = [(n, host_override if n.lower() == "host" else v) for n, v in kept]
        if not any(n.lower() == "host" for n, _ in kept):
            kept.insert(0, ("Host", host_override))
    if i2p_headers:
        kept += [("X-I2P-DestB32", caller.b32_address), ("X-I2P-DestHash", b64encode(caller.hash)),
                 ("X-I2P-DestB64", caller.b64)]
    kept.append(("Connection", "close"))
    return build_head(start, kept)


def rewrite_response(head: bytes) -> bytes:
    """The response head for the caller, without the headers that identify the site's software and clock."""
    start, fields = parse_head(head)
    if not start.startswith("HTTP/1."):
        raise HTTPHeadError(f"bad status line {start[:60]!r}", 502)
    return build_head(start, [(n, v) for n, v in fields if n.lower() not in IDENTIFYING_RESPONSE_HEADERS])


def error_response(status: int, message: str) -> bytes:
    reasons = {400: "Bad Request", 431: "Request Header Fields Too Large", 502: "Bad Gateway",
               503: "Service Unavailable", 504: "Gateway Timeout"}
    body = f"{status} {reasons.get(status, 'Error')}: {message}\n".encode()
    return build_head(f"HTTP/1.1 {status} {reasons.get(status, 'Error')}",
                      [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                       ("Connection", "close")]) + body
