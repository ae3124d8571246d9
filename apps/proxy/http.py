"""The HTTP proxy's sans-I/O core: request heads in, rewritten request heads out, and the framing of
bodies both ways (RFC 9112). No sockets here; apps/proxy/service.py moves the bytes.

One request, one stream to the site (as Java I2P does): every request goes out with
`Connection: close` (unless it asks for an Upgrade), while the browser keeps its connection to us.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.data.errors import ProtocolError

MAX_HEAD = 64 * 1024          # request or response line + headers; more is 431 (request) or 502 (response)
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096
USER_AGENT = "MYOB/6.66 (AN/ON)"

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HOST = re.compile(r"[A-Za-z0-9._~\-=]+|\[[0-9A-Fa-f:.]+\]")
VERSION = re.compile(r"HTTP/1\.[01]")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class HttpError(ProtocolError):
    """A request the proxy answers with an error page: `status` and a plain-words `detail`."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail, structure="HTTP request")
        self.status, self.title, self.detail = status, title, detail


Headers = tuple[tuple[str, str], ...]


def header(headers: Headers, name: str) -> str | None:
    """The first value of `name` (case-insensitive), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def connection_tokens(headers: Headers) -> set[str]:
    return {t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",") if t.strip()}


def find_head_end(buf: bytes | bytearray, start: int = 0) -> int:
    """The index just past the blank line that ends a head, or -1 while it is incomplete."""
    end = buf.find(b"\r\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if lf != -1 and (end == -1 or lf < end):
        return lf + 2
    return end + 4 if end != -1 else -1


def _parse_fields(lines: list[str]) -> Headers:
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, "Request header fields too large", f"more than {MAX_HEADERS} header lines")
    fields = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "Bad request", "folded header lines (obs-fold) are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.fullmatch(name):
            raise HttpError(400, "Bad request", f"a header line is malformed: {line[:60]!r}")
        value = value.strip(" \t")
        if any(c in value for c in "\r\n\0"):
            raise HttpError(400, "Bad request", f"header {name} holds a control character")
        fields.append((name, value))
    return tuple(fields)


def _split_head(data: bytes, status: int) -> list[str]:
    if len(data) > MAX_HEAD:
        raise HttpError(status, "Request header fields too large", f"the head is over {MAX_HEAD // 1024} KB")
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:   # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "Bad request", "undecodable head") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HttpError(400, "Bad request", "empty request")
    return lines


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers

    @classmethod
    def parse(cls, data: bytes) -> RequestHead:
        """A request head (request line and header lines, with or without the blank line)."""
        lines = _split_head(data, 431)
        parts = lines[0].split(" ")
        if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1] or not VERSION.fullmatch(parts[2]):
            raise HttpError(400, "Bad request", f"the request line is malformed: {lines[0][:80]!r}")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in parts[1]):
            raise HttpError(400, "Bad request", "the request target holds a control character")
        return cls(parts[0].upper(), parts[1], parts[2], _parse_fields(lines[1:]))

    def get(self, name: str) -> str | None:
        return header(self.headers, name)

    def to_bytes(self) -> bytes:
        return serialize(f"{self.method} {self.target} {self.version}", self.headers)

    @property
    def keep_alive(self) -> bool:
        tokens = connection_tokens(self.headers) | {
            t.strip().lower() for t in (self.get("Proxy-Connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in connection_tokens(self.headers) and self.get("Upgrade") is not None


@dataclass(frozen=True, slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: Headers

    @classmethod
    def parse(cls, data: bytes) -> ResponseHead:
        try:
            lines = _split_head(data, 502)
            version, _, rest = lines[0].partition(" ")
            code, _, reason = rest.partition(" ")
            if not re.fullmatch(r"HTTP/\d\.\d", version) or not re.fullmatch(r"[1-5]\d\d", code):
                raise HttpError(502, "Bad gateway", f"the site's status line is malformed: {lines[0][:80]!r}")
            return cls(version, int(code), reason, _parse_fields(lines[1:]))
        except HttpError as exc:
            raise HttpError(502, "Bad gateway", f"the site sent a malformed answer: {exc.detail}") from None

    def get(self, name: str) -> str | None:
        return header(self.headers, name)

    def to_bytes(self) -> bytes:
        return serialize(f"HTTP/1.1 {self.status} {self.reason}".rstrip(), self.headers)


def serialize(first_line: str, headers: Headers) -> bytes:
    return ("\r\n".join([first_line, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: `path` is origin-form (path and query), empty for CONNECT."""

    scheme: str
    host: str
    port: int
    path: str
    connect: bool = False
    absolute: bool = False

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)

    @property
    def authority(self) -> str:
        return self.host if self.default_port else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def _host_port(authority: str, default: int) -> tuple[str, int]:
    host, port = authority, default
    m = re.fullmatch(r"(.*?)(?::(\d{1,5}))?", authority)
    if m and m.group(2) is not None and not authority.endswith("]"):
        host, port = m.group(1), int(m.group(2))
    if not host or not HOST.fullmatch(host) or not 0 < port < 65536:
        raise HttpError(400, "Bad request", f"the host {authority[:80]!r} is not a valid host name")
    return (host if len(host) > 255 else host.lower()), port     # a Base64 destination keeps its case


def request_target(head: RequestHead) -> Target:
    """Absolute form (`GET http://host/path`), origin form with Host, or CONNECT host:port."""
    if head.method == "CONNECT":
        host, port = _host_port(head.target, 0)
        if port == 0:
            raise HttpError(400, "Bad request", "CONNECT needs host:port")
        return Target("https", host, port, "", connect=True, absolute=True)
    if head.target.startswith("/"):
        host_header = head.get("Host")
        if not host_header:
            raise HttpError(400, "Bad request", "the request names no host (no absolute URL, no Host header)")
        host, port = _host_port(host_header.strip(), 80)
        return Target("http", host, port, head.target)
    try:
        url = urlsplit(head.target)
    except ValueError:
        raise HttpError(400, "Bad request", f"the URL {head.target[:80]!r} is malformed") from None
    if url.scheme.lower() != "http" or not url.netloc or "@" in url.netloc:
        if url.scheme.lower() == "https":
            raise HttpError(400, "Bad request", "https:// URLs go through CONNECT; this proxy got one as a "
                                                "plain request")
        raise HttpError(400, "Bad request", f"only http:// URLs are proxied, not {head.target[:80]!r}")
    host, port = _host_port(url.netloc, 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return Target("http", host, port, path, absolute=True)


@dataclass(frozen=True, slots=True)
class Framing:
    """How a body ends: "none", "length" (with `length`), "chunked", "close" (end of stream),
    "upgrade" (101: raw bytes both ways) or "tunnel" (CONNECT answered 2xx)."""

    kind: str
    length: int = 0


NO_BODY = Framing("none")


def _content_length(headers: Headers, status: int) -> int | None:
    values = {v.strip() for k, v in headers if k.lower() == "content-length" for v in v.split(",")}
    if not values:
        return None
    if len(values) != 1 or not (v := values.pop()).isdigit() or len(v) > 15:
        raise HttpError(status, "Bad request" if status == 400 else "Bad gateway", "a Content-Length is invalid")
    return int(v)


def _chunked(headers: Headers, status: int) -> bool:
    codings = [c.strip().lower() for k, v in headers if k.lower() == "transfer-encoding" for c in v.split(",")]
    if not codings:
        return False
    if codings[-1] != "chunked":
        raise HttpError(status, "Bad request" if status == 400 else "Bad gateway",
                        f"a Transfer-Encoding of {', '.join(codings)} cannot be framed")
    return True


def request_framing(head: RequestHead) -> Framing:
    """The request body's framing; both Content-Length and Transfer-Encoding is refused (request smuggling)."""
    chunked = _chunked(head.headers, 400)
    length = _content_length(head.headers, 400)
    if chunked and length is not None:
        raise HttpError(400, "Bad request", "a request with both Content-Length and Transfer-Encoding")
    if chunked:
        return Framing("chunked")
    return Framing("length", length) if length else NO_BODY


def response_framing(method: str, response: ResponseHead) -> Framing:
    """RFC 9112 section 6.3, in its order."""
    if response.status == 101:
        return Framing("upgrade")
    if method == "HEAD" or 100 <= response.status < 200 or response.status in (204, 304):
        return NO_BODY
    if method == "CONNECT" and 200 <= response.status < 300:
        return Framing("tunnel")
    if _chunked(response.headers, 502):
        return Framing("chunked")
    length = _content_length(response.headers, 502)
    return Framing("length", length) if length is not None else Framing("close")


class ChunkedScanner:
    """Follows a chunked body as it passes through unchanged: says where it ends (RFC 9112 section 7.1)."""

    def __init__(self) -> None:
        self._state = "size"       # size | data | data-crlf | trailer
        self._line = bytearray()
        self._left = 0
        self.done = False

    def feed(self, data: bytes | bytearray) -> int:
        """Consumes bytes of the body; returns how many belong to it (fewer than given once it ends)."""
        i, n = 0, len(data)
        while i < n and not self.done:
            if self._state == "data":
                take = min(self._left, n - i)
                i += take
                self._left -= take
                if self._left == 0:
                    self._state = "data-crlf"
                continue
            nl = data.find(b"\n", i)
            if nl == -1:
                self._line += data[i:]
                i = n
                if len(self._line) > MAX_CHUNK_LINE:
                    raise HttpError(502, "Bad gateway", "a chunk line is too long")
                break
            self._line += data[i:nl]
            i = nl + 1
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            if len(line) > MAX_CHUNK_LINE:
                raise HttpError(502, "Bad gateway", "a chunk line is too long")
            if self._state == "size":
                size = line.split(b";", 1)[0].strip()
                if not size or len(size) > 15 or not re.fullmatch(rb"[0-9A-Fa-f]+", size):
                    raise HttpError(502, "Bad gateway", "a chunk size is malformed")
                self._left = int(size, 16)
                self._state = "data" if self._left else "trailer"
            elif self._state == "data-crlf":
                if line:
                    raise HttpError(502, "Bad gateway", "a chunk does not end with CRLF")
                self._state = "size"
            elif not line:          # trailer section ends with an empty line
                self.done = True
        return i


def _same_origin(url: str, target: Target) -> bool:
    try:
        ref = urlsplit(url)
        port = ref.port or (443 if ref.scheme == "https" else 80)
    except ValueError:
        return False
    return (ref.scheme.lower() == target.scheme and (ref.hostname or "").lower() == target.host
            and port == target.port)


def _rewrite_origin(url: str, target: Target, site_host: str) -> str:
    ref = urlsplit(url)
    authority = site_host if target.default_port else f"{site_host}:{target.port}"
    return ref._replace(netloc=authority).geturl()


def header_rule(name: str) -> str:
    """What happens to a request header on its way out: "drop", "keep" or "rewrite" (see docs/proxy.md)."""
    lower = name.lower()
    if lower in ("user-agent", "host", "referer", "origin", "connection", "x-requested-with", "upgrade"):
        return "rewrite"
    if (lower in ("via", "from", "forwarded", "dnt", "keep-alive", "te", "trailer")
            or lower.startswith(("x-forwarded", "proxy-")) or (lower.startswith("accept") and lower != "accept-encoding")):
        return "drop"
    return "keep"


def outgoing_request(head: RequestHead, target: Target, site_host: str, *, absolute: bool = False) -> bytes:
    """The request as it leaves for the site, headers filtered by the privacy table.

    `site_host` is what the site sees as Host (the b32 name for I2P sites, the host itself through an
    outproxy); `absolute` keeps the absolute form (a request to an HTTP outproxy)."""
    upgrade = head.wants_upgrade
    named_hop = connection_tokens(head.headers) - {"upgrade", "close", "keep-alive"}
    authority = site_host if target.default_port else f"{site_host}:{target.port}"
    out: list[tuple[str, str]] = [("Host", authority)]
    for name, value in head.headers:
        lower = name.lower()
        if lower in named_hop:
            continue
        rule = header_rule(name)
        if rule == "drop":
            continue
        if rule == "keep":
            out.append((name, value))
        elif lower in ("referer", "origin"):
            if _same_origin(value, target):
                out.append((name, _rewrite_origin(value, target, site_host)))
        elif lower == "x-requested-with":
            if "httprequest" in value.lower():
                out.append((name, value))
        elif lower == "upgrade" and upgrade:
            out.append((name, value))
    out.append(("User-Agent", USER_AGENT))
    out.append(("Connection", "Upgrade" if upgrade else "close"))
    line_target = f"http://{authority}{target.path}" if absolute else target.path
    return serialize(f"{head.method} {line_target} HTTP/1.1", tuple(out))


def incoming_response(response: ResponseHead, framing: Framing, *, keep_alive: bool) -> bytes:
    """The site's response head as the browser gets it: hop-by-hop fields replaced by our own Connection."""
    named_hop = connection_tokens(response.headers)
    drop = {"connection", "keep-alive", "proxy-connection"} | named_hop
    if framing.kind == "upgrade":
        drop -= {"upgrade"}
    fields = [(k, v) for k, v in response.headers if k.lower() not in drop]
    if framing.kind == "upgrade":
        fields.append(("Connection", "Upgrade"))
    elif 100 <= response.status < 200:
        pass
    else:
        fields.append(("Connection", "keep-alive" if keep_alive else "close"))
    return serialize(f"HTTP/1.1 {response.status} {response.reason}".rstrip(), tuple(fields))
