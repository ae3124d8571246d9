"""The I2P DHT (bittorrent.md "DHT"; BEP 5 with I2P's changes): KRPC over datagrams.

Queries go as repliable (signed) datagrams to a node's query port; replies, errors and announce_peer
queries go raw (unsigned) to its response port, which is always the query port + 1. Compact node
info is 54 bytes (20-byte node ID, 32-byte destination hash, 2-byte query port), compact peer info
is a 32-byte destination hash. A node ID's first 4 bytes equal its destination hash's, the next 2
equal the hash's next 2 XOR the port ("secure node ID").

`KrpcCodec`/`DhtState` are sans-I/O (clock and randomness injected); `Dht` is the asyncio driver.
"""
from __future__ import annotations

import asyncio
import logging
import random
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from apps.network import Datagram, NetworkError
from core.data.errors import ProtocolError
from core.data.identity import Destination

from .bencode import BencodeError, TorrentParseError, bdecode, bencode
from .engine import b32_of

log = logging.getLogger(__name__)

NODE_INFO_LEN = 54
K = 8
MAX_NODES = 2000
MAX_TORRENTS = 5000
MAX_PEERS_PER_TORRENT = 200
MAX_WANT = 16
MAX_TOKENS = 5000
TOKEN_AGE = 10 * 60
PEER_AGE = 60 * 60
QUERY_TIMEOUT = 30.0
MAX_DATAGRAM = 16 * 1024
NODE_FAILURES = 3


class KrpcError(TorrentParseError):
    structure_name = "krpc"


def secure_node_id(dest_hash: bytes, port: int, rng: random.Random) -> bytes:
    """bittorrent.md "Secure node ID requirement"."""
    head = dest_hash[:4] + bytes(a ^ b for a, b in zip(dest_hash[4:6], struct.pack(">H", port)))
    return head + rng.randbytes(14)


def node_id_is_secure(node_id: bytes, dest_hash: bytes, port: int) -> bool:
    return node_id[:6] == secure_node_id(dest_hash, port, random.Random(0))[:6]


@dataclass(slots=True)
class NodeInfo:
    node_id: bytes
    dest_hash: bytes
    port: int                                  # query port; response port = port + 1
    destination: Destination | None = None
    last_seen: float = 0.0
    failures: int = 0

    def to_bytes(self) -> bytes:
        return self.node_id + self.dest_hash + struct.pack(">H", self.port)

    @classmethod
    def parse(cls, data: bytes) -> "NodeInfo":
        if len(data) != NODE_INFO_LEN:
            raise KrpcError("compact node info is not 54 bytes")
        (port,) = struct.unpack(">H", data[52:])
        return cls(data[:20], data[20:52], port)


def parse_nodes(data: bytes) -> list[NodeInfo]:
    if len(data) % NODE_INFO_LEN:
        raise KrpcError("nodes is not a multiple of 54 bytes")
    return [NodeInfo.parse(data[i:i + NODE_INFO_LEN]) for i in range(0, min(len(data), K * 2 * NODE_INFO_LEN),
                                                                   NODE_INFO_LEN)]


@dataclass(frozen=True, slots=True)
class KrpcMessage:
    kind: str                      # "q", "r", "e"
    tid: bytes
    method: str = ""               # queries
    body: dict = field(default_factory=dict)       # "a" of a query, "r" of a response
    error: tuple[int, str] | None = None

    def to_bytes(self) -> bytes:
        out: dict[bytes, Any] = {b"t": self.tid, b"y": self.kind.encode()}
        if self.kind == "q":
            out[b"q"] = self.method.encode()
            out[b"a"] = self.body
        elif self.kind == "r":
            out[b"r"] = self.body
        else:
            out[b"e"] = [self.error[0], self.error[1].encode()]
        return bencode(out)

    @classmethod
    def parse(cls, data: bytes) -> "KrpcMessage":
        if len(data) > MAX_DATAGRAM:
            raise KrpcError("message too large")
        try:
            msg = bdecode(data, max_items=2000)
        except BencodeError as exc:
            raise KrpcError(str(exc)) from None
        if not isinstance(msg, dict) or not isinstance(msg.get(b"t"), bytes) or len(msg[b"t"]) > 32:
            raise KrpcError("no transaction id")
        kind = msg.get(b"y")
        if kind == b"q":
            method, args = msg.get(b"q"), msg.get(b"a")
            if not isinstance(method, bytes) or not isinstance(args, dict) or not _is_id(args.get(b"id")):
                raise KrpcError("query without method, arguments or id")
            return cls("q", msg[b"t"], method.decode("ascii", "replace"), args)
        if kind == b"r":
            body = msg.get(b"r")
            if not isinstance(body, dict) or not _is_id(body.get(b"id")):
                raise KrpcError("response without id")
            return cls("r", msg[b"t"], body=body)
        if kind == b"e":
            err = msg.get(b"e")
            if not isinstance(err, list) or len(err) < 2 or not isinstance(err[0], int) \
                    or not isinstance(err[1], bytes):
                raise KrpcError("malformed error")
            return cls("e", msg[b"t"], error=(err[0], err[1].decode("utf-8", "replace")[:200]))
        raise KrpcError("unknown message type")


def _is_id(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == 20


def distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


class DhtState:
    """Known nodes, the peers announced to us, and the tokens both ways; bounded and clocked."""

    def __init__(self, dest_hash: bytes, port: int, *, now: Callable[[], float], rng: random.Random):
        self.dest_hash = dest_hash
        self.port = port
        self.now = now
        self.rng = rng
        self.node_id = secure_node_id(dest_hash, port, rng)
        self.nodes: dict[bytes, NodeInfo] = {}                    # by destination hash
        self.peers: dict[bytes, dict[bytes, float]] = {}          # info-hash -> peer hash -> when
        self.tokens_out: dict[bytes, tuple[bytes, float]] = {}    # token -> (dest hash, when)
        self.tokens_in: dict[bytes, bytes] = {}                   # dest hash -> token for announces

    def heard_from(self, node: NodeInfo) -> NodeInfo:
        if node.dest_hash == self.dest_hash:
            return node
        known = self.nodes.get(node.dest_hash)
        if known is None:
            if len(self.nodes) >= MAX_NODES:
                oldest = min(self.nodes.values(), key=lambda n: n.last_seen)
                del self.nodes[oldest.dest_hash]
            known = self.nodes[node.dest_hash] = node
        else:
            known.node_id, known.port = node.node_id, node.port
            known.destination = known.destination or node.destination
        known.last_seen = self.now()
        known.failures = 0
        return known

    def heard_about(self, node: NodeInfo) -> NodeInfo:
        known = self.nodes.get(node.dest_hash)
        if known is not None or node.dest_hash == self.dest_hash:
            return known or node
        if not node_id_is_secure(node.node_id, node.dest_hash, node.port) or len(self.nodes) >= MAX_NODES:
            return node
        node.last_seen = self.now()
        self.nodes[node.dest_hash] = node
        return node

    def failed(self, node: NodeInfo) -> None:
        node.failures += 1
        if node.failures >= NODE_FAILURES:
            self.nodes.pop(node.dest_hash, None)

    def closest(self, target: bytes, count: int = K, exclude: bytes | None = None) -> list[NodeInfo]:
        nodes = [n for n in self.nodes.values() if n.dest_hash != exclude]
        return sorted(nodes, key=lambda n: distance(n.node_id, target))[:count]

    def make_token(self, dest_hash: bytes) -> bytes:
        self._expire_tokens()
        token = self.rng.randbytes(8)
        if len(self.tokens_out) >= MAX_TOKENS:
            self.tokens_out.pop(next(iter(self.tokens_out)))
        self.tokens_out[token] = (dest_hash, self.now())
        return token

    def token_owner(self, token: bytes) -> bytes | None:
        self._expire_tokens()
        entry = self.tokens_out.get(token)
        return entry[0] if entry else None

    def _expire_tokens(self) -> None:
        limit = self.now() - TOKEN_AGE
        for token in [t for t, (_, when) in self.tokens_out.items() if when < limit]:
            del self.tokens_out[token]

    def announce(self, info_hash: bytes, peer_hash: bytes) -> None:
        peers = self.peers.get(info_hash)
        if peers is None:
            if len(self.peers) >= MAX_TORRENTS:
                return
            peers = self.peers[info_hash] = {}
        if peer_hash not in peers and len(peers) >= MAX_PEERS_PER_TORRENT:
            del peers[min(peers, key=peers.get)]
        peers[peer_hash] = self.now()

    def get_peers(self, info_hash: bytes, exclude: bytes | None = None) -> list[bytes]:
        peers = self.peers.get(info_hash, {})
        limit = self.now() - PEER_AGE
        for stale in [p for p, when in peers.items() if when < limit]:
            del peers[stale]
        found = [p for p in peers if p != exclude]
        self.rng.shuffle(found)
        return found[:MAX_WANT]

    def answer(self, msg: KrpcMessage, sender: NodeInfo | None) -> tuple[KrpcMessage, NodeInfo] | None:
        """A query -> (reply, to whom). Queries other than announce_peer come signed (sender known)."""
        args = msg.body
        if msg.method == "announce_peer":
            token, info_hash = args.get(b"token"), args.get(b"info_hash")
            if not isinstance(token, bytes) or not _is_id(info_hash):
                return None
            owner = self.token_owner(token)
            node = self.nodes.get(owner) if owner else None
            if node is None:
                return None
            self.announce(info_hash, owner)
            return KrpcMessage("r", msg.tid, body={b"id": self.node_id}), node
        if sender is None:
            return None
        reply: dict[bytes, Any] = {b"id": self.node_id}
        if msg.method == "ping":
            pass
        elif msg.method == "find_node":
            target = args.get(b"target")
            if not _is_id(target):
                return KrpcMessage("e", msg.tid, error=(203, "find_node without a target")), sender
            reply[b"nodes"] = b"".join(n.to_bytes() for n in self.closest(target, exclude=sender.dest_hash))
        elif msg.method == "get_peers":
            info_hash = args.get(b"info_hash")
            if not _is_id(info_hash):
                return KrpcMessage("e", msg.tid, error=(203, "get_peers without an info_hash")), sender
            reply[b"token"] = self.make_token(sender.dest_hash)
            peers = self.get_peers(info_hash, exclude=sender.dest_hash)
            if peers:
                reply[b"values"] = peers
            else:
                reply[b"nodes"] = b"".join(n.to_bytes() for n in self.closest(info_hash, exclude=sender.dest_hash))
        else:
            return KrpcMessage("e", msg.tid, error=(204, "method unknown")), sender
        return KrpcMessage("r", msg.tid, body=reply), sender


@dataclass(slots=True)
class _Pending:
    node: NodeInfo
    future: asyncio.Future
    info_hash: bytes | None = None


class Dht:
    """The asyncio driver: one query port (+1 for replies) on the torrent session."""

    def __init__(self, session, port: int, *, now: Callable[[], float], rng: random.Random):
        self.session = session
        self.port = port
        self.rng = rng
        self.state = DhtState(session.destination.hash, port, now=now, rng=rng)
        self.pending: dict[bytes, _Pending] = {}
        self.received = 0
        self.sent = 0
        self.announced: dict[bytes, int] = {}       # info-hash -> nodes that took our last announce

    @property
    def rport(self) -> int:
        return self.port + 1

    def start(self) -> None:
        self.session.on_datagram(self._on_query_port, port=self.port)
        self.session.on_datagram(self._on_response_port, port=self.rport)

    def stop(self) -> None:
        self.session.on_datagram(None, port=self.port)
        self.session.on_datagram(None, port=self.rport)
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self.pending.clear()

    # receiving ---------------------------------------------------------------------------------
    def _on_query_port(self, datagram: Datagram) -> None:
        if not datagram.repliable or datagram.sender is None:
            return
        self._receive(datagram, datagram.sender)

    def _on_response_port(self, datagram: Datagram) -> None:
        self._receive(datagram, None)

    def _receive(self, datagram: Datagram, sender: Destination | None) -> None:
        try:
            msg = KrpcMessage.parse(datagram.payload)
        except ProtocolError as exc:
            log.debug("DHT: bad message: %s", exc)
            return
        self.received += 1
        if msg.kind == "q":
            node = None
            if sender is not None:
                node = self.state.heard_from(NodeInfo(msg.body[b"id"], sender.hash, datagram.from_port, sender))
            answer = self.state.answer(msg, node)
            if answer is not None:
                reply, to = answer
                self._send(to, reply, repliable=False)
            return
        pending = self.pending.pop(msg.tid, None)
        if pending is None or pending.future.done():
            return
        if msg.kind == "r":
            node = pending.node
            node.node_id = msg.body[b"id"]
            self.state.heard_from(node)
        pending.future.set_result(msg)

    # sending -----------------------------------------------------------------------------------
    def _send(self, node: NodeInfo, msg: KrpcMessage, *, repliable: bool) -> bool:
        if node.destination is None:
            return False
        to_port = node.port if repliable else node.port + 1
        try:
            self.session.send_datagram(node.destination, msg.to_bytes(), repliable=repliable,
                                       from_port=self.port, to_port=to_port)
        except (NetworkError, ProtocolError, OSError) as exc:
            log.debug("DHT: send failed: %s", exc)
            return False
        self.sent += 1
        return True

    async def _destination(self, node: NodeInfo) -> bool:
        if node.destination is None:
            try:
                node.destination = await self.session.resolve(b32_of(node.dest_hash), timeout=15)
            except (NetworkError, asyncio.TimeoutError):
                self.state.failed(node)
                return False
        return True

    async def query(self, node: NodeInfo, method: str, args: dict[bytes, Any], *,
                    repliable: bool = True) -> KrpcMessage | None:
        if not await self._destination(node):
            return None
        tid = self.rng.randbytes(4)
        future = asyncio.get_running_loop().create_future()
        self.pending[tid] = _Pending(node, future)
        msg = KrpcMessage("q", tid, method, {**args, b"id": self.state.node_id})
        if not self._send(node, msg, repliable=repliable):
            self.pending.pop(tid, None)
            return None
        try:
            return await asyncio.wait_for(future, QUERY_TIMEOUT)
        except asyncio.TimeoutError:
            self.pending.pop(tid, None)
            self.state.failed(node)
            return None

    async def ping(self, destination: Destination, port: int) -> bool:
        node = self.state.nodes.get(destination.hash) or NodeInfo(bytes(20), destination.hash, port, destination)
        node.destination, node.port = destination, port
        reply = await self.query(node, "ping", {})
        return reply is not None and reply.kind == "r"

    async def ping_node(self, peer: Destination | bytes, port: int) -> bool:
        """Ping a node known by destination or hash (its destination is looked up)."""
        if isinstance(peer, Destination):
            return await self.ping(peer, port)
        node = self.state.nodes.get(peer) or NodeInfo(bytes(20), peer, port)
        node.port = port
        reply = await self.query(node, "ping", {})
        return reply is not None and reply.kind == "r"

    async def get_peers(self, info_hash: bytes, *, announce: bool = False, max_queries: int = 30) -> list[bytes]:
        """Iterative lookup; with `announce`, announce_peer to the closest nodes that gave a token."""
        found: list[bytes] = [p for p in self.state.get_peers(info_hash)]
        tried: set[bytes] = set()
        tokens: dict[bytes, tuple[NodeInfo, bytes]] = {}
        for _ in range(max_queries // 3 + 1):
            batch = [n for n in self.state.closest(info_hash, 3 * K) if n.dest_hash not in tried][:3]
            if not batch:
                break
            tried.update(n.dest_hash for n in batch)
            replies = await asyncio.gather(*(self.query(n, "get_peers", {b"info_hash": info_hash}) for n in batch))
            for node, reply in zip(batch, replies):
                if reply is None or reply.kind != "r":
                    continue
                body = reply.body
                if isinstance(body.get(b"token"), bytes):
                    tokens[node.dest_hash] = (node, body[b"token"][:64])
                values = body.get(b"values")
                if isinstance(values, list):
                    found += [v for v in values[:MAX_WANT] if isinstance(v, bytes) and len(v) == 32]
                nodes = body.get(b"nodes")
                if isinstance(nodes, bytes):
                    try:
                        for info in parse_nodes(nodes):
                            self.state.heard_about(info)
                    except KrpcError:
                        pass
            if len(set(found)) >= MAX_WANT and not announce:
                break
        if announce:
            self.state.announce(info_hash, self.state.dest_hash)     # so get_peers to us finds us
            best = sorted(tokens.values(), key=lambda nt: distance(nt[0].node_id, info_hash))[:K]
            acks = await asyncio.gather(*(self.query(node, "announce_peer", {b"info_hash": info_hash, b"port": 6881,
                                                                             b"token": token}, repliable=False)
                                          for node, token in best))
            if len(self.announced) < MAX_TORRENTS or info_hash in self.announced:
                self.announced[info_hash] = sum(1 for a in acks if a is not None and a.kind == "r")
        own = self.state.dest_hash
        return list(dict.fromkeys(p for p in found if p != own))

    def status(self) -> dict[str, Any]:
        return {"port": self.port, "rport": self.rport, "nodes": len(self.state.nodes),
                "torrents": len(self.state.peers), "received": self.received, "sent": self.sent}

    def export_nodes(self) -> list[dict[bytes, Any]]:
        return [{b"dest": n.destination.to_bytes(), b"port": n.port}
                for n in sorted(self.state.nodes.values(), key=lambda n: -n.last_seen)[:200] if n.destination]

