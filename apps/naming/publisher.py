"""The registrar side: our book as hosts.txt and newhosts.txt, and a jump service, over HTTP on I2P.

    GET /hosts.txt        every published entry (signed lines as they were signed)
    GET /newhosts.txt     entries added in the last `newhosts_hours`
    GET /jump/NAME[/path] 301 to http://NAME/path?i2paddresshelper=<b64> (naming.md "Jump Services")
Answers carry ETag and Last-Modified and honour If-None-Match / If-Modified-Since (304).
"""
from __future__ import annotations

import gzip
import hashlib
from email.utils import formatdate, parsedate_to_datetime
from typing import Callable, Sequence
from urllib.parse import quote, unquote

from .book import AddressBook
from .feed import format_line
from .http import Request, format_response

TEXT = "text/plain; charset=utf-8"


class Publisher:
    def __init__(self, book: AddressBook, books: Sequence[str], *, now: Callable[[], float],
                 newhosts_hours: float = 24.0):
        self.book = book
        self.books = tuple(books)
        self.now = now
        self.newhosts_hours = newhosts_hours
        self._cache: dict[str, tuple[tuple, bytes, str, float]] = {}
        self._gzipped: dict[str, tuple[str, bytes]] = {}         # document -> (etag, gzip body)
        self.requests = 0

    def _document(self, which: str) -> tuple[bytes, str, float]:
        """(body, etag, last-modified seconds), rebuilt only when a book changed."""
        stamps = self.book.stamps(self.books)
        cutoff = int(self.now() - self.newhosts_hours * 3600) if which == "newhosts.txt" else None
        key = (stamps, cutoff // 3600 if cutoff is not None else None)
        cached = self._cache.get(which)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], cached[3]
        seen: set[str] = set()
        lines = []
        for book in self.books:
            for entry in self.book.entries(book).values():
                if entry.name in seen or entry.is_alias or (cutoff is not None and entry.added < cutoff):
                    continue
                seen.add(entry.name)
                lines.append(format_line(entry.name, entry.dest, entry.properties) + "\n")
        body = "".join(lines).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        modified = max((s[2] / 1e9 for s in stamps if s is not None), default=0.0)
        self._cache[which] = (key, body, etag, modified)
        return body, etag, modified

    def handle(self, request: Request) -> bytes:
        self.requests += 1
        head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            return format_response(405, "Method Not Allowed", {"Allow": "GET, HEAD"})
        path = request.target.split("?", 1)[0]
        if path.startswith("http://"):      # an absolute target (a proxy passed it on as is)
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        if path in ("/hosts.txt", "/newhosts.txt"):
            body, etag, modified = self._document(path[1:])
            headers = {"Content-Type": TEXT, "Last-Modified": formatdate(modified, usegmt=True),
                       "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
            if _accepts_gzip(request.headers.get("accept-encoding", "")):
                body, etag = self._gzip(path[1:], body, etag)
                headers["Content-Encoding"] = "gzip"
            headers["ETag"] = etag
            if _not_modified(request, etag, modified):
                return format_response(304, "Not Modified", headers)
            return format_response(200, "OK", headers, body, head_only=head_only)
        if path.startswith("/jump/"):
            return self.jump(unquote(path[len("/jump/"):]), head_only)
        if path == "/":
            body = b"I2P address book: /hosts.txt, /newhosts.txt, /jump/NAME\n"
            return format_response(200, "OK", {"Content-Type": TEXT}, body, head_only=head_only)
        return format_response(404, "Not Found", {"Content-Type": TEXT}, b"not found\n", head_only=head_only)

    def _gzip(self, which: str, body: bytes, etag: str) -> tuple[bytes, str]:
        """The gzip form (its own ETag: another representation), made once per version."""
        tagged = etag[:-1] + '-gz"'
        cached = self._gzipped.get(which)
        if cached is None or cached[0] != tagged:
            cached = (tagged, gzip.compress(body, mtime=0))
            self._gzipped[which] = cached
        return cached[1], tagged

    def jump(self, target: str, head_only: bool) -> bytes:
        name, _, rest = target.partition("/")
        entry = self.book.get(name)
        if entry is None or entry.is_alias or entry.book not in self.books:
            body = f"{name} is not in this address book\n".encode()
            return format_response(404, "Not Found", {"Content-Type": TEXT}, body, head_only=head_only)
        location = f"http://{entry.name}/{quote(rest)}?i2paddresshelper={entry.dest}"
        return format_response(301, "Moved Permanently", {"Location": location, "Content-Type": TEXT},
                               location.encode() + b"\n", head_only=head_only)


def _accepts_gzip(accept: str) -> bool:
    for item in accept.lower().split(","):
        token, _, params = item.strip().partition(";")
        if token.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _not_modified(request: Request, etag: str, modified: float) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag in [tag.strip() for tag in match.split(",")] or match.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return int(modified) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False
