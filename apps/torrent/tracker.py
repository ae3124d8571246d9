"""Trackers over I2P: the HTTP announce/scrape client and the built-in open tracker (sans-I/O core).

I2P trackers (zzzot, opentracker, i2psnark) take `ip=<Base64 destination>.i2p`, and with
`compact=1` answer a string of 32-byte destination hashes (I2P's own compact form, as libtorrent
and i2psnark read it); without it, a list of dictionaries whose "ip" is the Base64 destination.
"""
from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from core.data.errors import ProtocolError
from core.data.identity import Destination

from .bencode import BencodeError, TorrentParseError, bdecode, bencode

MAX_RESPONSE = 1024 * 1024
MAX_REQUEST_HEAD = 8192
ANNOUNCE_INTERVAL = 30 * 60
MIN_INTERVAL = 60
I2P_PORT = 6881                       # what i2psnark and libtorrent put in port=; meaningless on I2P


class TrackerError(TorrentParseError):
    structure_name = "tracker"


@dataclass(frozen=True, slots=True)
class AnnounceReply:
    interval: int
    peers: tuple[Destination | bytes, ...]     # full destinations, or 32-byte hashes (compact)
    complete: int | None = None
    incomplete: int | None = None


def announce_target(url: str, info_hash: bytes, peer_id: bytes, our: Destination, *, uploaded: int,
                    downloaded: int, left: int, event: str | None = None, numwant: int = 50) -> tuple[str, int, str]:
    """(host, port, request target) of an announce to `url`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TrackerError(f"{url}: only http:// trackers on .i2p hosts are reachable")
    query = [("info_hash", info_hash), ("peer_id", peer_id), ("port", str(I2P_PORT)),
             ("uploaded", str(uploaded)), ("downloaded", str(downloaded)), ("left", str(left)),
             ("compact", "1"), ("numwant", str(numwant)), ("ip", our.b64 + ".i2p")]
    if event:
        query.append(("event", event))
    encoded = "&".join(k + "=" + (urllib.parse.quote_from_bytes(v) if isinstance(v, bytes)
                                  else urllib.parse.quote(v, safe="")) for k, v in query)
    sep = "&" if parts.query else "?"
    target = (parts.path or "/") + (("?" + parts.query) if parts.query else "") + sep + encoded
    return parts.hostname, parts.port or 80, target


def scrape_url(announce_url: str) -> str | None:
    """BEP 48: the scrape URL is the announce URL with its last "announce" replaced by "scrape"."""
    head, sep, tail = announce_url.rpartition("/")
    if not tail.startswith("announce"):
        return None
    return head + sep + "scrape" + tail[len("announce"):]


def parse_announce_reply(body: bytes) -> AnnounceReply:
    try:
        reply = bdecode(body, max_items=100_000)
    except BencodeError as exc:
        raise TrackerError(f"reply is not bencode: {exc}") from None
    if not isinstance(reply, dict):
        raise TrackerError("reply is not a dictionary")
    if isinstance(reply.get(b"failure reason"), bytes):
        raise TrackerError("tracker says: " + reply[b"failure reason"].decode("utf-8", "replace")[:200])
    interval = reply.get(b"interval", ANNOUNCE_INTERVAL)
    if not isinstance(interval, int):
        raise TrackerError("interval is not a number")
    peers_value = reply.get(b"peers", b"")
    peers: list[Destination | bytes] = []
    if isinstance(peers_value, bytes):
        if len(peers_value) % 32:
            raise TrackerError("compact peers are not 32-byte hashes")
        peers = [peers_value[i:i + 32] for i in range(0, len(peers_value), 32)]
    elif isinstance(peers_value, list):
        for entry in peers_value[:1000]:
            if isinstance(entry, dict) and isinstance(entry.get(b"ip"), bytes):
                try:
                    peers.append(Destination.from_b64(entry[b"ip"].decode("ascii").removesuffix(".i2p")))
                except (ProtocolError, ValueError, UnicodeDecodeError):
                    continue
    else:
        raise TrackerError("peers is neither a string nor a list")
    complete, incomplete = reply.get(b"complete"), reply.get(b"incomplete")
    return AnnounceReply(max(MIN_INTERVAL, min(interval, 4 * 3600)), tuple(peers),
                         complete if isinstance(complete, int) else None,
                         incomplete if isinstance(incomplete, int) else None)


def parse_scrape_reply(body: bytes) -> dict[bytes, dict[str, int]]:
    try:
        reply = bdecode(body, max_items=100_000)
    except BencodeError as exc:
        raise TrackerError(f"reply is not bencode: {exc}") from None
    files = reply.get(b"files") if isinstance(reply, dict) else None
    if not isinstance(files, dict):
        raise TrackerError("scrape reply has no files dictionary")
    out = {}
    for key, stats in files.items():
        if isinstance(stats, dict):
            out[key] = {k: stats.get(k.encode(), 0) for k in ("complete", "incomplete", "downloaded")
                        if isinstance(stats.get(k.encode(), 0), int)}
    return out


def parse_http_response(data: bytes) -> bytes:
    """The body of an HTTP/1.x 200 response (Content-Length, chunked, or up to the close)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise TrackerError("HTTP response without a header end")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1."):
        raise TrackerError("not an HTTP response")
    if status[1] != b"200":
        raise TrackerError("HTTP " + b" ".join(status[1:]).decode("latin-1")[:100])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        out = bytearray()
        while True:
            size_line, sep, body = body.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise TrackerError("bad chunk size") from None
            if size == 0:
                return bytes(out)
            out += body[:size]
            body = body[size + 2:]
    if b"content-length" in headers:
        try:
            return body[:int(headers[b"content-length"])]
        except ValueError:
            raise TrackerError("bad Content-Length") from None
    return body


async def http_get(session, host: str, port: int, target: str, *, timeout: float = 90.0) -> bytes:
    """GET over an I2P stream; the 200 response's body."""
    async def run() -> bytes:
        reader, writer = await session.connect(host, port, timeout=timeout)
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pyi2p\r\n"
                         "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = bytearray()
            while len(data) <= MAX_RESPONSE:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
            if len(data) > MAX_RESPONSE:
                raise TrackerError(f"reply over {MAX_RESPONSE} bytes")
            return parse_http_response(bytes(data))
        finally:
            writer.close()
    return await asyncio.wait_for(run(), timeout + 30)


async def scrape(session, announce_url: str, info_hashes: list[bytes], *,
                 timeout: float = 90.0) -> dict[bytes, dict[str, int]]:
    """BEP 48 scrape of `info_hashes` at the tracker of `announce_url`."""
    url = scrape_url(announce_url)
    if url is None:
        raise TrackerError(f"{announce_url}: no scrape URL (the path does not end in announce)")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TrackerError(f"{url}: only http:// trackers on .i2p hosts are reachable")
    query = "&".join("info_hash=" + urllib.parse.quote_from_bytes(h) for h in info_hashes)
    target = (parts.path or "/") + "?" + "&".join(q for q in (parts.query, query) if q)
    return parse_scrape_reply(await http_get(session, parts.hostname, parts.port or 80, target, timeout=timeout))


# The built-in open tracker ---------------------------------------------------------------------

@dataclass(slots=True)
class _Peer:
    destination: Destination
    peer_id: bytes
    seeder: bool
    seen: float


@dataclass(slots=True)
class _Swarm:
    peers: dict[bytes, _Peer] = field(default_factory=dict)
    downloaded: int = 0


class OpenTracker:
    """Announce and scrape for any info-hash; peers are who the stream came from (ip= is not trusted)."""

    def __init__(self, *, interval: int = 600, max_torrents: int = 10_000, max_peers: int = 2_000):
        self.interval = interval
        self.max_torrents = max_torrents
        self.max_peers = max_peers
        self.swarms: dict[bytes, _Swarm] = {}
        self.announces = 0
        self.scrapes = 0

    def expire(self, now: float) -> None:
        limit = now - 2 * self.interval - 60
        for info_hash in list(self.swarms):
            swarm = self.swarms[info_hash]
            for key in [k for k, p in swarm.peers.items() if p.seen < limit]:
                del swarm.peers[key]
            if not swarm.peers:
                del self.swarms[info_hash]

    def handle(self, head: bytes, peer: Destination, now: float) -> tuple[int, bytes]:
        """One HTTP request head -> (status, bencoded body)."""
        try:
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = line.split(" ", 2)
        except ValueError:
            return 400, self._failure("bad request")
        if method != "GET":
            return 405, self._failure("only GET")
        parts = urllib.parse.urlsplit(target)
        try:
            query = urllib.parse.parse_qs(parts.query, encoding="latin-1", strict_parsing=False)
        except ValueError:
            return 400, self._failure("bad query")
        hashes = [h.encode("latin-1") for h in query.get("info_hash", [])]
        if any(len(h) != 20 for h in hashes):
            return 400, self._failure("info_hash is not 20 bytes")
        if parts.path.endswith("/scrape"):
            return 200, self.scrape(hashes)
        if parts.path.endswith("/announce") or parts.path == "/a":
            if len(hashes) != 1:
                return 400, self._failure("announce needs one info_hash")
            return 200, self.announce(hashes[0], peer, query, now)
        return 404, self._failure("no such path (use /announce or /scrape)")

    @staticmethod
    def _failure(reason: str) -> bytes:
        return bencode({b"failure reason": reason.encode()})

    def announce(self, info_hash: bytes, peer: Destination, query: dict[str, list[str]], now: float) -> bytes:
        self.announces += 1
        self.expire(now)
        event = (query.get("event") or [""])[0]
        try:
            left = int((query.get("left") or ["1"])[0])
            numwant = max(0, min(200, int((query.get("numwant") or ["50"])[0])))
        except ValueError:
            return self._failure("left and numwant must be numbers")
        peer_id = (query.get("peer_id") or [""])[0].encode("latin-1")[:20]
        swarm = self.swarms.get(info_hash)
        if swarm is None:
            if event == "stopped":
                return bencode({b"interval": self.interval, b"peers": b""})
            if len(self.swarms) >= self.max_torrents:
                return self._failure("tracker full")
            swarm = self.swarms[info_hash] = _Swarm()
        key = peer.hash
        if event == "stopped":
            swarm.peers.pop(key, None)
        else:
            known = swarm.peers.get(key)
            if known is None and len(swarm.peers) >= self.max_peers:
                return self._failure("swarm full")
            if event == "completed" and known is not None and not known.seeder:
                swarm.downloaded += 1
            swarm.peers[key] = _Peer(peer, peer_id, left == 0, now)
        others = [p for k, p in swarm.peers.items() if k != key][:numwant]
        compact = (query.get("compact") or ["0"])[0] == "1"
        peers: Any = b"".join(p.destination.hash for p in others) if compact else \
            [{b"ip": (p.destination.b64 + ".i2p").encode(), b"peer id": p.peer_id, b"port": I2P_PORT} for p in others]
        complete = sum(1 for p in swarm.peers.values() if p.seeder)
        return bencode({b"interval": self.interval, b"min interval": MIN_INTERVAL, b"complete": complete,
                        b"incomplete": len(swarm.peers) - complete, b"peers": peers})

    def scrape(self, hashes: list[bytes]) -> bytes:
        self.scrapes += 1
        chosen = hashes or list(self.swarms)[:1000]
        files = {}
        for h in chosen:
            swarm = self.swarms.get(h)
            if swarm is None:
                files[h] = {b"complete": 0, b"incomplete": 0, b"downloaded": 0}
                continue
            complete = sum(1 for p in swarm.peers.values() if p.seeder)
            files[h] = {b"complete": complete, b"incomplete": len(swarm.peers) - complete,
                        b"downloaded": swarm.downloaded}
        return bencode({b"files": files})


async def serve_tracker_stream(tracker: OpenTracker, stream, now) -> None:
    """One HTTP request on an I2P stream to the tracker's destination."""
    try:
        head = await asyncio.wait_for(stream.reader.readuntil(b"\r\n\r\n"), 60)
        if len(head) > MAX_REQUEST_HEAD:
            status, body = 431, OpenTracker._failure("request head too large")
        else:
            status, body = tracker.handle(head, stream.peer, now())
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
        stream.writer.close()
        return
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              431: "Request Header Fields Too Large"}[status]
    stream.writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n".encode() + body)
    try:
        await stream.writer.drain()
    finally:
        stream.writer.close()
