"""The asyncio drivers: a Torrent (its swarm, pieces and trackers) and a PeerConnection per I2P stream.

Protocol decisions live in the sans-I/O parts (wire, picker, choker, tracker, storage); this file
moves bytes between them and the network, and owns every task it starts.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from apps.network import NetworkError
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.encoding import b32encode

from . import wire
from .choker import RECHOKE_INTERVAL, Choker, PeerRates
from .metainfo import Info, MetainfoError, Metainfo
from .picker import PiecePicker
from .ratelimit import RateMeter, TokenBucket
from .storage import ResumeData, Storage
from .tracker import TrackerError, announce_target, http_get, parse_announce_reply

log = logging.getLogger(__name__)

PIPELINE = 64                      # outstanding block requests per peer at least (I2P round trips are long)
MAX_PIPELINE = 256                 # and at most; in between, what the peer delivers in PIPELINE_SECONDS
PIPELINE_SECONDS = 6.0
MAX_PEER_REQUESTS = 500            # requests a peer may queue with us
DEFAULT_REQQ = 250                 # what a peer is assumed to queue when its extension handshake does not say
MAX_PEERS = 40                     # connections per torrent
MAX_KNOWN_PEERS = 500
BAD_PIECES_BAN = 3                 # pieces that fail their hash before a peer is banned
REQUEST_TIMEOUT = 60.0
HANDSHAKE_TIMEOUT = 60.0
IDLE_TIMEOUT = 300.0
KEEPALIVE = 100.0
RECONNECT_DELAY = 60.0
METADATA_PIECE = 16 * 1024
MAX_METADATA = 10 * 1024 * 1024
UT_METADATA = 3                    # our extension ids: ut_metadata (BEP 9)
I2P_DHT = 4                        # i2p_dht: the peer's DHT ports (bittorrent.md "DHT")
I2P_PEX = 5                        # i2p_pex: peers as 32-byte hashes (bittorrent.md "PEX")
PEX_INTERVAL = 60.0
PEX_MAX = 50
DHT_INTERVAL = 15 * 60.0
RESUME_SAVE_INTERVAL = 5.0


def peer_key(destination_or_hash: Destination | bytes) -> bytes:
    return destination_or_hash.hash if isinstance(destination_or_hash, Destination) else destination_or_hash


def b32_of(dest_hash: bytes) -> str:
    return b32encode(dest_hash) + ".b32.i2p"


@dataclass(slots=True)
class KnownPeer:
    target: Destination | bytes
    next_try: float = 0.0
    failures: int = 0


@dataclass(slots=True)
class Limits:
    """Rate buckets that apply to a transfer: the torrent's own and the global ones."""

    up: list[TokenBucket] = field(default_factory=list)
    down: list[TokenBucket] = field(default_factory=list)


class PeerConnection:
    def __init__(self, torrent: "Torrent", key: bytes, reader, writer, *, outbound: bool):
        self.torrent = torrent
        self.key = key
        self.reader = reader
        self.writer = writer
        self.outbound = outbound
        self.wire = wire.PeerWire(torrent.info.piece_count if torrent.info else None)
        self.peer_id = b""
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.have: list[bool] = []
        self.raw_bitfield: bytes | None = None      # before we know the piece count (magnets)
        self.outstanding: dict[tuple[int, int], float] = {}
        self.peer_requests: list[tuple[int, int, int]] = []
        self.ext: dict[bytes, int] = {}
        self.metadata_size = 0
        self.reqq = DEFAULT_REQQ
        self.client = ""
        self.down = RateMeter(torrent.now)
        self.up = RateMeter(torrent.now)
        self.last_received = torrent.now()
        self.last_sent = torrent.now()
        self.last_piece = torrent.now()
        self.send_lock = asyncio.Lock()
        self.upload_wakeup = asyncio.Event()
        self.closed = False
        self.destination: Destination | None = None
        self.pex_sent: set[bytes] = set()
        self.task: asyncio.Task | None = None

    # sending ----------------------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        async with self.send_lock:
            self.writer.write(data)
            self.last_sent = self.torrent.now()
            await self.writer.drain()

    async def send_message(self, kind: int, **fields: Any) -> None:
        await self.send(wire.encode(kind, **fields))

    async def run(self, handshake: wire.Handshake | None) -> None:
        """Talk to the peer until it or we hang up. `handshake`: theirs, already read (inbound)."""
        t = self.torrent
        self.task = asyncio.current_task()
        uploader = asyncio.get_running_loop().create_task(self._upload_loop())
        try:
            items: list = []
            await self.send(wire.Handshake(t.info_hash, t.peer_id).to_bytes())
            if handshake is not None:
                self.wire.handshake = handshake
            else:
                while self.wire.handshake is None:
                    items = await asyncio.wait_for(self._read(), HANDSHAKE_TIMEOUT)
                items.pop(0)
                if self.wire.handshake.info_hash != t.info_hash:
                    raise wire.WireError("handshake for another torrent")
            self.peer_id = self.wire.handshake.peer_id
            if self.peer_id == t.peer_id:
                raise wire.WireError("connected to ourselves")
            if self.wire.handshake.extensions:
                await self.send(wire.encode_extended(0, t.extension_handshake()))
            if t.info is not None and any(t.picker.have):
                await self.send_message(wire.BITFIELD, data=wire.bitfield_bytes(t.picker.have, t.info.piece_count))
            t.on_connected(self)
            while not self.closed:
                for item in items:
                    await t.on_message(self, item)
                items = await self._read()
        finally:
            self.closed = True
            uploader.cancel()
            self.writer.close()
            t.on_disconnected(self)

    async def _read(self) -> list:
        chunk = await asyncio.wait_for(self.reader.read(65536), IDLE_TIMEOUT)
        if not chunk:
            raise ConnectionResetError("peer closed the stream")
        self.last_received = self.torrent.now()
        self.down.add(len(chunk))
        self.torrent.meter_down.add(len(chunk))
        delay = max((b.delay(len(chunk)) for b in self.torrent.limits.down), default=0.0)
        if delay:
            await asyncio.sleep(delay)
        return self.wire.feed(chunk)

    async def _upload_loop(self) -> None:
        try:
            await self._upload()
        except (ConnectionError, OSError, NetworkError) as exc:
            log.debug("%s: upload to %s ended: %s", self.torrent.name, b32_of(self.key), exc)
            self.close()

    async def _upload(self) -> None:
        t = self.torrent
        while True:
            if not self.peer_requests or self.am_choking:
                self.upload_wakeup.clear()
                await self.upload_wakeup.wait()
                continue
            index, begin, length = self.peer_requests.pop(0)
            if t.info is None or not t.picker.have[index]:
                continue
            data = await asyncio.to_thread(t.storage.read, index, begin, length)
            delay = max((b.delay(length) for b in t.limits.up), default=0.0)
            if delay:
                await asyncio.sleep(delay)
            if self.am_choking or self.closed:
                continue
            await self.send_message(wire.PIECE, index=index, begin=begin, data=data)
            self.up.add(length)
            t.meter_up.add(length)
            t.uploaded += length

    def close(self) -> None:
        """Hang up; a read in progress is cancelled rather than left to time out."""
        self.closed = True
        self.writer.close()
        if self.task is not None and self.task is not asyncio.current_task() and not self.task.done():
            self.task.cancel()

    def info_dict(self) -> dict[str, Any]:
        have = sum(self.have) if self.have else 0
        return {"peer": b32_of(self.key), "client": self.client, "outbound": self.outbound,
                "progress": round(have / len(self.have), 4) if self.have else 0.0,
                "down_rate": round(self.down.rate()), "up_rate": round(self.up.rate()),
                "choked": self.peer_choking, "choking": self.am_choking,
                "interested": self.am_interested, "peer_interested": self.peer_interested}


class Torrent:
    def __init__(self, engine: "Engine", info_hash: bytes, *, meta: Metainfo | None = None, name: str | None = None,
                 trackers: list[str] | None = None, download_dir: Path, resume_path: Path,
                 up_limit: int = 0, down_limit: int = 0, seed_ratio: float = 0.0, seed_time: float = 0.0):
        self.engine = engine
        self.info_hash = info_hash
        self.meta = meta
        self.info: Info | None = meta.info if meta else None
        self.name = name or (meta.info.name if meta else info_hash.hex())
        self.trackers = list(trackers if trackers is not None else (meta.trackers if meta else []))
        self.download_dir = Path(download_dir)
        self.resume = ResumeData(resume_path)
        self.peer_id = engine.peer_id
        self.now = engine.now
        self.rng = engine.rng
        self.bucket_up = TokenBucket(up_limit, self.now)
        self.bucket_down = TokenBucket(down_limit, self.now)
        self.limits = Limits([self.bucket_up, engine.bucket_up], [self.bucket_down, engine.bucket_down])
        self.meter_up = RateMeter(self.now)
        self.meter_down = RateMeter(self.now)
        self.seed_ratio = seed_ratio
        self.seed_time = seed_time
        self.uploaded = 0
        self.downloaded = 0
        self.seconds_seeded = 0
        self.state = "stopped"
        self.error: str | None = None
        self.paused = False
        self.peers: dict[bytes, PeerConnection] = {}
        self.connecting: set[bytes] = set()
        self.known: dict[bytes, KnownPeer] = {}
        self.banned: set[bytes] = set()
        self.bad_pieces: dict[bytes, float] = {}
        self.blocks: dict[int, bytearray] = {}
        self.contributors: dict[int, set[bytes]] = {}
        self.hashing: set[int] = set()
        self.choker = Choker(4, rng=self.rng)
        self.picker: PiecePicker | None = None
        self.storage: Storage | None = None
        self.metadata: bytearray | None = None
        self.metadata_have: set[int] = set()
        self.tasks: set[asyncio.Task] = set()
        self.resume_dirty = False
        self.tracker_status: dict[str, str] = {}
        self.completed_announced = False
        self.hash_failures = 0
        self.finished = False              # a seeding goal was met
        self.limits_set = False            # limits given when added win over saved ones

    # lifecycle ------------------------------------------------------------------------------------
    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        """A side task's network trouble ends only that task; anything else is a bug worth a traceback."""
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, (ConnectionError, OSError, ProtocolError, NetworkError, asyncio.TimeoutError)):
            log.debug("%s: %s", self.name, exc)
        elif exc is not None:
            log.error("%s: task failed", self.name, exc_info=exc)

    async def start(self) -> None:
        self.paused = self.finished = False
        self.error = None
        if self.info is not None and self.storage is None:
            await self._open_storage()
        if self.error:
            return
        self.state = self._active_state()
        self.spawn(self._maintain())
        self.spawn(self._announce_loop())
        self.spawn(self._dht_loop())

    async def _open_storage(self) -> None:
        self.state = "checking"
        info = self.info
        try:
            storage = Storage(info, self.download_dir)
            saved = self.resume.load(info)
            if saved is not None:
                self.uploaded, self.downloaded = saved["uploaded"], saved["downloaded"]
                self.seconds_seeded = saved["seconds_seeded"]
                for bucket, rate in ((self.bucket_up, saved["up_limit"]), (self.bucket_down, saved["down_limit"])):
                    if isinstance(rate, int) and rate >= 0 and not self.limits_set:
                        bucket.set_rate(rate)
            existed = storage.exists()
            await asyncio.to_thread(storage.allocate)
            if existed:
                # pieces the resume file vouches for are trusted; the rest are hashed (kill -9 safety)
                have = await asyncio.to_thread(storage.check, saved["have"] if saved else None)
            else:
                have = bytearray(info.piece_count)
        except (OSError, MetainfoError) as exc:
            self.state, self.error = "error", f"storage: {exc}"
            return
        self.storage = storage
        self.picker = PiecePicker(info.piece_count, info.piece_size, rng=self.rng)
        for i, bit in enumerate(have):
            if bit:
                self.picker.mark_have(i)
        self.resume_dirty = True
        self.save_resume()

    def _active_state(self) -> str:
        if self.paused:
            return "paused"
        if self.info is None:
            return "metadata"
        if self.picker.complete:
            return "seeding"
        return "downloading"

    async def stop(self, *, announce: bool = True) -> None:
        for peer in list(self.peers.values()):
            peer.close()
        current = asyncio.current_task()
        tasks = [task for task in self.tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if announce and self.info is not None and self.state not in ("stopped", "error"):
            try:        # best effort: a tracker that does not answer soon is not waited for
                await asyncio.wait_for(asyncio.gather(*(self._announce(url, "stopped", timeout=10)
                                                        for url in self.trackers[:4]), return_exceptions=True), 10)
            except asyncio.TimeoutError:
                pass
        self.save_resume(force=True)
        if self.state != "error":
            self.state = "paused" if self.paused else "stopped"

    async def pause(self) -> None:
        self.paused = True
        await self.stop()
        self.state = "finished" if self.finished else "paused"
        self.save_resume(force=True)

    def save_resume(self, force: bool = False) -> None:
        if self.info is None or self.picker is None or not (force or self.resume_dirty):
            return
        try:
            self.resume.save(self.info, self.picker.have, uploaded=self.uploaded, downloaded=self.downloaded,
                             paused=self.paused, seconds_seeded=int(self.seconds_seeded),
                             up_limit=self.bucket_up.rate, down_limit=self.bucket_down.rate)
            self.resume_dirty = False
        except OSError as exc:
            log.warning("%s: resume data not saved: %s", self.name, exc)

    # peers -----------------------------------------------------------------------------------------
    def add_peers(self, peers) -> None:
        for peer in peers:
            key = peer_key(peer)
            if key == self.engine.our_hash or key in self.banned:
                continue
            known = self.known.get(key)
            if known is None:
                if len(self.known) >= MAX_KNOWN_PEERS:
                    continue
                self.known[key] = KnownPeer(peer)
            elif isinstance(peer, Destination):
                known.target = peer

    async def _connect(self, key: bytes, known: KnownPeer) -> None:
        target = known.target if isinstance(known.target, Destination) else b32_of(known.target)
        try:
            reader, writer = await self.engine.session.connect(target, 0, timeout=HANDSHAKE_TIMEOUT)
        except (NetworkError, OSError, asyncio.TimeoutError) as exc:
            known.failures += 1
            known.next_try = self.now() + RECONNECT_DELAY * min(8, 2 ** known.failures)
            log.debug("%s: connect to %s failed: %s", self.name, b32_of(key), exc)
            return
        finally:
            self.connecting.discard(key)
        if key in self.peers or self.paused:
            writer.close()
            return
        await self.run_peer(key, reader, writer, None,
                            destination=known.target if isinstance(known.target, Destination) else None)

    async def run_peer(self, key: bytes, reader, writer, handshake: wire.Handshake | None, *,
                       destination: Destination | None = None) -> None:
        peer = PeerConnection(self, key, reader, writer, outbound=handshake is None)
        peer.destination = destination
        self.peers[key] = peer
        try:
            await peer.run(handshake)
        except (ProtocolError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                NetworkError, OSError) as exc:
            log.debug("%s: peer %s gone: %s", self.name, b32_of(key), exc)
        finally:
            if self.peers.get(key) is peer:
                del self.peers[key]
            known = self.known.get(key)
            if known is not None:
                known.next_try = self.now() + RECONNECT_DELAY

    def accepts(self, key: bytes) -> bool:
        if key in self.connecting and key > self.engine.our_hash:
            return False      # both dialled at once: the stream opened by the lower hash is the one kept
        return not self.paused and self.state not in ("error", "stopped") and key not in self.banned \
            and key not in self.peers and len(self.peers) < MAX_PEERS

    def on_connected(self, peer: PeerConnection) -> None:
        self.known.setdefault(peer.key, KnownPeer(peer.key)).failures = 0

    def on_disconnected(self, peer: PeerConnection) -> None:
        if self.picker is not None and peer.have:
            self.picker.peer_lost(peer.have, peer.key)
        elif self.picker is not None:
            self.picker.release(peer.key)

    def ban(self, key: bytes, reason: str) -> None:
        log.info("%s: banned peer %s: %s", self.name, b32_of(key), reason)
        self.banned.add(key)
        self.known.pop(key, None)
        peer = self.peers.get(key)
        if peer is not None:
            peer.close()

    # messages --------------------------------------------------------------------------------------
    async def on_message(self, peer: PeerConnection, msg: wire.Message) -> None:
        kind = msg.kind
        if kind == -1:
            return
        if kind == wire.CHOKE:
            peer.peer_choking = True
            peer.outstanding.clear()
            if self.picker is not None:
                self.picker.release(peer.key)
        elif kind == wire.UNCHOKE:
            peer.peer_choking = False
            await self._request_more(peer)
        elif kind == wire.INTERESTED:
            peer.peer_interested = True
            if not self.peers_unchoked_full():
                await self._unchoke(peer)
        elif kind == wire.NOT_INTERESTED:
            peer.peer_interested = False
        elif kind == wire.HAVE:
            if self.info is None:
                return
            if msg.index >= self.info.piece_count:
                raise wire.WireError(f"have for piece {msg.index} of {self.info.piece_count}")
            if not peer.have:
                peer.have = [False] * self.info.piece_count
            if not peer.have[msg.index]:
                peer.have[msg.index] = True
                self.picker.peer_has(msg.index)
            await self._update_interest(peer)
        elif kind == wire.BITFIELD:
            if self.info is None:
                peer.raw_bitfield = msg.data
                return
            self._take_bitfield(peer, msg.data)
            await self._update_interest(peer)
        elif kind == wire.REQUEST:
            if self.info is None or msg.index >= self.info.piece_count or not self.picker.have[msg.index] \
                    or msg.begin + msg.length > self.info.piece_size(msg.index):
                raise wire.WireError(f"request for a block we do not have ({msg.index}, {msg.begin})")
            if peer.am_choking:
                return
            if len(peer.peer_requests) >= MAX_PEER_REQUESTS:
                raise wire.WireError(f"over {MAX_PEER_REQUESTS} requests queued")
            peer.peer_requests.append((msg.index, msg.begin, msg.length))
            peer.upload_wakeup.set()
        elif kind == wire.CANCEL:
            try:
                peer.peer_requests.remove((msg.index, msg.begin, msg.length))
            except ValueError:
                pass
        elif kind == wire.PIECE:
            await self._on_block(peer, msg)
        elif kind == wire.EXTENDED:
            await self._on_extended(peer, msg)

    def _take_bitfield(self, peer: PeerConnection, data: bytes) -> None:
        if len(data) != (self.info.piece_count + 7) // 8:
            raise wire.WireError("bitfield of the wrong length")
        if peer.have:
            self.picker.peer_lost(peer.have, peer.key)
        peer.have = wire.bitfield_pieces(data, self.info.piece_count)
        self.picker.peer_bitfield(peer.have)
        if self.picker.complete and all(peer.have):
            peer.close()          # two seeders have nothing to say to each other

    def peers_unchoked_full(self) -> bool:
        return sum(1 for p in self.peers.values() if not p.am_choking) >= self.choker.slots

    async def _unchoke(self, peer: PeerConnection) -> None:
        if peer.am_choking:
            peer.am_choking = False
            await peer.send_message(wire.UNCHOKE)
            peer.upload_wakeup.set()

    async def _choke(self, peer: PeerConnection) -> None:
        if not peer.am_choking:
            peer.am_choking = True
            peer.peer_requests.clear()
            await peer.send_message(wire.CHOKE)

    async def _update_interest(self, peer: PeerConnection) -> None:
        if self.picker is None:
            return
        wants = bool(peer.have) and not self.picker.complete and any(
            h and not mine for h, mine in zip(peer.have, self.picker.have))
        if wants != peer.am_interested:
            peer.am_interested = wants
            await peer.send_message(wire.INTERESTED if wants else wire.NOT_INTERESTED)
        if wants:
            await self._request_more(peer)

    async def _request_more(self, peer: PeerConnection) -> None:
        if self.picker is None or peer.peer_choking or not peer.have or self.paused:
            return
        depth = max(PIPELINE, min(MAX_PIPELINE, int(peer.down.rate() * PIPELINE_SECONDS) // wire.BLOCK))
        depth = min(depth, peer.reqq)
        room = depth - len(peer.outstanding)
        if room < depth // 4 and peer.outstanding:
            return
        now = self.now()
        picks = self.picker.pick(peer.key, peer.have, room)
        if not picks:
            return
        for index, begin, length in picks:
            peer.outstanding[(index, begin)] = now
        await peer.send(b"".join(wire.encode(wire.REQUEST, index=i, begin=b, length=n) for i, b, n in picks))

    async def _on_block(self, peer: PeerConnection, msg: wire.Message) -> None:
        if self.info is None or msg.index >= self.info.piece_count:
            raise wire.WireError("piece for a piece that does not exist")
        if peer.outstanding.pop((msg.index, msg.begin), None) is None and msg.index not in self.picker.partial:
            return                   # neither asked of this peer nor still wanted
        peer.last_piece = self.now()
        expected = self.picker.block_span(msg.index, msg.begin // wire.BLOCK)[2] if msg.begin % wire.BLOCK == 0 else -1
        if msg.length != expected:
            raise wire.WireError(f"block of {msg.length} bytes where {expected} were asked")
        needed, others = self.picker.received(msg.index, msg.begin, peer.key)
        if needed:
            buf = self.blocks.get(msg.index)
            if buf is None:
                buf = self.blocks[msg.index] = bytearray(self.info.piece_size(msg.index))
            buf[msg.begin:msg.begin + msg.length] = msg.data
            self.contributors.setdefault(msg.index, set()).add(peer.key)
            self.downloaded += msg.length
            for key in others:
                other = self.peers.get(key)
                if other is not None and other.outstanding.pop((msg.index, msg.begin), None) is not None:
                    self.spawn(other.send_message(wire.CANCEL, index=msg.index, begin=msg.begin, length=msg.length))
            if self.picker.piece_ready(msg.index) and msg.index not in self.hashing:
                self.hashing.add(msg.index)
                self.spawn(self._finish_piece(msg.index))
        await self._request_more(peer)

    async def _finish_piece(self, index: int) -> None:
        data = bytes(self.blocks.pop(index))
        contributors = self.contributors.pop(index, set())
        try:
            ok = await asyncio.to_thread(self.storage.verify_and_write, index, data)
        except OSError as exc:
            self.state, self.error = "error", f"storage: {exc}"
            await self.stop(announce=False)
            return
        finally:
            self.hashing.discard(index)
        if not ok:
            self.hash_failures += 1
            self.picker.piece_failed(index)
            for key in contributors:
                # a piece with several sources blames each in part, so one liar cannot get honest peers banned
                self.bad_pieces[key] = self.bad_pieces.get(key, 0.0) + 1 / len(contributors)
                if self.bad_pieces[key] >= BAD_PIECES_BAN:
                    self.ban(key, f"{self.bad_pieces[key]:.1f} pieces failed their hash")
            for peer in list(self.peers.values()):
                self.spawn(self._request_more(peer))
            return
        self.picker.mark_have(index)
        self.resume_dirty = True
        for peer in list(self.peers.values()):
            if peer.wire.handshake is not None and not peer.closed:
                self.spawn(self._send_have(peer, index))
        if self.picker.complete:
            self.state = "seeding"
            self.save_resume(force=True)
            self.spawn(self._announce_all("completed"))
            for peer in list(self.peers.values()):
                if peer.have and all(peer.have):
                    peer.close()

    async def _send_have(self, peer: PeerConnection, index: int) -> None:
        try:
            await peer.send_message(wire.HAVE, index=index)
            if self.picker.complete and peer.am_interested:
                peer.am_interested = False
                await peer.send_message(wire.NOT_INTERESTED)
        except (ConnectionError, OSError):
            pass

    # extension protocol (BEP 10) and ut_metadata (BEP 9) ----------------------------------------
    def extension_handshake(self) -> dict[bytes, Any]:
        m = {b"ut_metadata": UT_METADATA, b"i2p_pex": I2P_PEX}
        if self.engine.dht is not None:
            m[b"i2p_dht"] = I2P_DHT
        out: dict[bytes, Any] = {b"m": m, b"v": b"pyi2p", b"reqq": MAX_PEER_REQUESTS}
        if self.info is not None:
            out[b"metadata_size"] = len(self.info.raw)
        return out

    async def _on_extended(self, peer: PeerConnection, msg: wire.Message) -> None:
        payload, tail = wire.decode_extended(msg.data)
        if msg.ext_id == 0:
            m = payload.get(b"m")
            if isinstance(m, dict):
                peer.ext = {k: v for k, v in m.items() if isinstance(v, int) and 0 < v < 256}
            v = payload.get(b"v")
            if isinstance(v, bytes):
                peer.client = v.decode("utf-8", "replace")[:40]
            reqq = payload.get(b"reqq")
            if isinstance(reqq, int) and reqq > 0:
                peer.reqq = min(reqq, MAX_PIPELINE)
            size = payload.get(b"metadata_size")
            if isinstance(size, int) and 0 < size <= MAX_METADATA:
                peer.metadata_size = size
            dht = self.engine.dht
            if dht is not None and b"i2p_dht" in peer.ext:
                await peer.send(wire.encode_extended(peer.ext[b"i2p_dht"], {b"port": dht.port, b"rport": dht.rport}))
            if self.info is None:
                await self._request_metadata(peer)
            return
        if msg.ext_id == UT_METADATA:
            await self._on_metadata(peer, payload, tail)
        elif msg.ext_id == I2P_DHT:
            port = payload.get(b"port")
            if self.engine.dht is not None and isinstance(port, int) and 0 < port < 65535:
                self.engine.dht_contact(peer.destination or peer.key, port)
        elif msg.ext_id == I2P_PEX:
            added = payload.get(b"added")
            if isinstance(added, bytes) and len(added) % 32 == 0:
                self.add_peers([added[i:i + 32] for i in range(0, min(len(added), 32 * PEX_MAX), 32)])

    async def _on_metadata(self, peer: PeerConnection, payload: dict, tail: bytes) -> None:
        msg_type, piece = payload.get(b"msg_type"), payload.get(b"piece")
        if not isinstance(piece, int) or piece < 0:
            raise wire.WireError("ut_metadata without a piece number")
        their_id = peer.ext.get(b"ut_metadata")
        if msg_type == 0:                                   # request
            if their_id is None:
                return
            if self.info is None or piece * METADATA_PIECE >= len(self.info.raw):
                await peer.send(wire.encode_extended(their_id, {b"msg_type": 2, b"piece": piece}))
                return
            chunk = self.info.raw[piece * METADATA_PIECE:(piece + 1) * METADATA_PIECE]
            await peer.send(wire.encode_extended(their_id, {b"msg_type": 1, b"piece": piece,
                                                            b"total_size": len(self.info.raw)}, chunk))
        elif msg_type == 1 and self.info is None and self.metadata is not None:   # data
            start = piece * METADATA_PIECE
            if start >= len(self.metadata) or len(tail) != min(METADATA_PIECE, len(self.metadata) - start):
                raise wire.WireError("ut_metadata piece of the wrong size")
            self.metadata[start:start + len(tail)] = tail
            self.metadata_have.add(piece)
            if len(self.metadata_have) * METADATA_PIECE >= len(self.metadata):
                await self._metadata_complete()

    async def _request_metadata(self, peer: PeerConnection) -> None:
        their_id = peer.ext.get(b"ut_metadata")
        if their_id is None or not peer.metadata_size:
            return
        if self.metadata is None or len(self.metadata) != peer.metadata_size:
            self.metadata = bytearray(peer.metadata_size)
            self.metadata_have = set()
        count = -(-len(self.metadata) // METADATA_PIECE)
        await peer.send(b"".join(wire.encode_extended(their_id, {b"msg_type": 0, b"piece": i})
                                 for i in range(count) if i not in self.metadata_have))

    async def _metadata_complete(self) -> None:
        raw = bytes(self.metadata)
        self.metadata, self.metadata_have = None, set()
        if hashlib.sha1(raw).digest() != self.info_hash:
            log.info("%s: metadata did not match the info-hash; asking again", self.name)
            for peer in list(self.peers.values()):
                self.spawn(self._request_metadata(peer))
            return
        try:
            info = Info.parse(raw)
        except ProtocolError as exc:
            self.state, self.error = "error", f"metadata: {exc}"
            return
        self.info = info
        self.name = info.name
        self.meta = Metainfo(info=info, announce=self.trackers[0] if self.trackers else None,
                             announce_list=tuple((t,) for t in self.trackers))
        self.engine.metadata_received(self)
        await self._open_storage()
        if self.error:
            return
        self.state = self._active_state()
        for peer in list(self.peers.values()):
            peer.wire.piece_count = info.piece_count
            if peer.raw_bitfield is not None:
                try:
                    self._take_bitfield(peer, peer.raw_bitfield)
                except ProtocolError:
                    peer.close()
                    continue
            self.spawn(self._update_interest(peer))

    # periodic work ---------------------------------------------------------------------------------
    async def _maintain(self) -> None:
        last_rechoke = float("-inf")
        last_save = last_pex = self.now()
        while True:
            now = self.now()
            self._connect_more(now)
            if now - last_rechoke >= RECHOKE_INTERVAL:
                last_rechoke = now
                await self._rechoke(now)
            for peer in list(self.peers.values()):
                stale = [k for k, t in peer.outstanding.items() if now - t > REQUEST_TIMEOUT]
                if stale and now - peer.last_piece > REQUEST_TIMEOUT:
                    peer.outstanding.clear()
                    self.picker.release(peer.key)
                    self.spawn(self._request_more(peer))
                if now - peer.last_sent > KEEPALIVE and peer.wire.handshake is not None:
                    self.spawn(peer.send_message(-1))
            if self.state == "seeding":
                self.seconds_seeded += 1
                if self._goal_reached():
                    self.finished = True
                    self.spawn(self.pause())
                    return
            if self.info is None:
                for peer in list(self.peers.values()):
                    if peer.metadata_size and self.metadata is None:
                        self.spawn(self._request_metadata(peer))
            if now - last_pex >= PEX_INTERVAL:
                last_pex = now
                self._send_pex()
            if now - last_save >= RESUME_SAVE_INTERVAL:
                last_save = now
                self.save_resume()
            await asyncio.sleep(1.0)

    def _send_pex(self) -> None:
        if self.info is not None and self.info.private:
            return
        connected = set(self.peers)
        for peer in list(self.peers.values()):
            their_id = peer.ext.get(b"i2p_pex")
            if their_id is None or peer.wire.handshake is None:
                continue
            added = [k for k in connected - peer.pex_sent if k != peer.key][:PEX_MAX]
            dropped = [k for k in peer.pex_sent - connected][:PEX_MAX]
            if not added and not dropped:
                continue
            peer.pex_sent = (peer.pex_sent | set(added)) - set(dropped)
            self.spawn(peer.send(wire.encode_extended(their_id, {b"added": b"".join(added),
                                                                  b"dropped": b"".join(dropped)})))

    def _goal_reached(self) -> bool:
        size = self.info.total_length if self.info else 0
        if self.seed_ratio and size and self.uploaded / size >= self.seed_ratio:
            return True
        return bool(self.seed_time) and self.seconds_seeded >= self.seed_time

    def _connect_more(self, now: float) -> None:
        if self.paused or (self.picker is not None and self.picker.complete):
            return     # seeders wait to be found
        room = MAX_PEERS - len(self.peers) - len(self.connecting)
        for key, known in list(self.known.items()):
            if room <= 0:
                break
            if key in self.peers or key in self.connecting or key in self.banned or known.next_try > now:
                continue
            self.connecting.add(key)
            known.next_try = now + RECONNECT_DELAY
            self.spawn(self._connect(key, known))
            room -= 1

    async def _rechoke(self, now: float) -> None:
        seeding = self.picker is not None and self.picker.complete
        rates = [PeerRates(p.key, p.peer_interested, p.up.rate() if seeding else p.down.rate())
                 for p in self.peers.values()]
        unchoke = self.choker.rechoke(rates, now)
        for peer in list(self.peers.values()):
            try:
                if peer.key in unchoke:
                    await self._unchoke(peer)
                else:
                    await self._choke(peer)
            except (ConnectionError, OSError):
                peer.close()

    # trackers ----------------------------------------------------------------------------------
    def left(self) -> int:
        return self.picker.missing_bytes() if self.picker else 1

    async def _announce(self, url: str, event: str | None, *, timeout: float = 90.0) -> int | None:
        session = self.engine.session
        try:
            host, port, target = announce_target(url, self.info_hash, self.peer_id, session.destination,
                                                 uploaded=self.uploaded, downloaded=self.downloaded,
                                                 left=self.left(), event=event)
            body = await http_get(session, host, port, target, timeout=timeout)
            reply = parse_announce_reply(body)
        except (TrackerError, NetworkError, OSError, asyncio.TimeoutError, ProtocolError) as exc:
            self.tracker_status[url] = f"error: {exc}"
            return None
        self.tracker_status[url] = f"ok: {len(reply.peers)} peers"
        self.add_peers(reply.peers)
        return reply.interval

    async def _announce_all(self, event: str | None) -> int:
        intervals = await asyncio.gather(*(self._announce(url, event) for url in self.trackers[:8]))
        ok = [i for i in intervals if i]
        return min(ok) if ok else 0

    async def _dht_loop(self) -> None:
        """Find peers in the DHT and announce ourselves there; soon and often while alone."""
        dht = self.engine.dht
        if dht is None or (self.info is not None and self.info.private):
            return
        lonely = 0
        while True:
            try:
                found = await dht.get_peers(self.info_hash, announce=True)
            except (NetworkError, ProtocolError, OSError) as exc:
                log.debug("%s: DHT lookup failed: %s", self.name, exc)
                found = []
            self.add_peers(found)
            # alone, or not yet announced anywhere (the table was empty): look again soon
            settled = (self.peers or self.state == "seeding") and dht.announced.get(self.info_hash, 0) > 0
            lonely = 0 if settled else lonely + 1
            await asyncio.sleep(min(DHT_INTERVAL, 5 * 2 ** (lonely - 1)) if lonely else DHT_INTERVAL)

    async def _announce_loop(self) -> None:
        if not self.trackers:
            return
        event: str | None = "started"
        failures = lonely = 0
        while True:
            interval = await self._announce_all(event)
            if interval:
                event, failures = None, 0
                # a leecher with no peers asks again soon (5 s, doubling), so a new swarm forms quickly
                lonely = 0 if self.peers or self.state == "seeding" else lonely + 1
                wait = min(interval, 5 * 2 ** (lonely - 1)) if lonely else interval
            else:
                failures += 1
                wait = min(300, 10 * 2 ** min(failures, 5))
            await asyncio.sleep(wait)

    # reporting -------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        size = self.info.total_length if self.info else 0
        missing = self.picker.missing_bytes() if self.picker else size
        down = self.meter_down.rate()
        eta = None
        if missing and down > 0:
            eta = math.ceil(missing / down)
        return {"info_hash": self.info_hash.hex(), "name": self.name, "state": self.state,
                "error": self.error, "size": size,
                "progress": round(1 - missing / size, 4) if size else 0.0,
                "pieces": self.info.piece_count if self.info else 0,
                "down_rate": round(down), "up_rate": round(self.meter_up.rate()),
                "downloaded": self.downloaded, "uploaded": self.uploaded, "eta": eta,
                "peers": len(self.peers), "known_peers": len(self.known), "banned": len(self.banned),
                "hash_failures": self.hash_failures, "trackers": dict(self.tracker_status),
                "upload_limit": self.bucket_up.rate // 1024, "download_limit": self.bucket_down.rate // 1024,
                "download_dir": str(self.download_dir)}


class Engine:
    """What all torrents share: our destination, peer id, global limits, incoming streams."""

    def __init__(self, session, *, now: Callable[[], float], rng: random.Random, peer_id: bytes,
                 up_limit: int = 0, down_limit: int = 0):
        self.session = session
        self.now = now
        self.rng = rng
        self.peer_id = peer_id
        self.our_hash = session.destination.hash if session is not None else b""
        self.bucket_up = TokenBucket(up_limit, now)
        self.bucket_down = TokenBucket(down_limit, now)
        self.torrents: dict[bytes, Torrent] = {}
        self.on_metadata: Callable[[Torrent], None] | None = None
        self.dht = None                 # a dht.Dht when the DHT is on
        self.tasks: set[asyncio.Task] = set()

    def dht_contact(self, peer: Destination | bytes, port: int) -> None:
        """A peer told us its DHT port: ping it, so it joins our routing table."""
        if self.dht is None or len(self.tasks) > 64:
            return
        task = asyncio.get_running_loop().create_task(self.dht.ping_node(peer, port))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def metadata_received(self, torrent: Torrent) -> None:
        if self.on_metadata is not None:
            self.on_metadata(torrent)

    async def handle_stream(self, stream) -> None:
        """An inbound stream: the BitTorrent handshake picks the torrent."""
        key = stream.peer.hash
        try:
            head = await asyncio.wait_for(stream.reader.readexactly(wire.HANDSHAKE_LEN), HANDSHAKE_TIMEOUT)
            handshake = wire.Handshake.parse(head)
        except (ProtocolError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            stream.writer.close()
            return
        torrent = self.torrents.get(handshake.info_hash)
        if torrent is None or not torrent.accepts(key):
            stream.writer.close()
            return
        torrent.add_peers([stream.peer])
        await torrent.run_peer(key, stream.reader, stream.writer, handshake, destination=stream.peer)
