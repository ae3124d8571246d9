"""Bad peers and bad torrents cost only themselves: a peer sending bad pieces is banned after a few, an
oversize message ends its connection, path traversal names and a 100 MB metainfo are refused with a
reason, and the node's other torrents carry on."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

import pytest

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent import wire
from apps.torrent.bencode import bencode
from apps.torrent.engine import BAD_PIECES_BAN
from apps.torrent.metainfo import create_torrent
from core.client import ClientAPI

from .test_swarm import wait_until


@pytest.fixture
async def network():
    net = InProcessNetwork(ClientAPI())
    yield net
    await net.close()


async def evil_peer(session, target, meta, *, oversize=False):
    """Connects, claims every piece, unchokes, and answers every request with junk."""
    reader, writer = await session.connect(target, 0, timeout=10)
    writer.write(wire.Handshake(meta.info_hash, b"-EV0001-" + os.urandom(12)).to_bytes())
    count = meta.info.piece_count
    writer.write(wire.encode(wire.BITFIELD, data=wire.bitfield_bytes([True] * count, count)))
    writer.write(wire.encode(wire.UNCHOKE))
    if oversize:
        writer.write(struct.pack(">I", 0xFFFFFFF0) + b"\x07" + b"x" * 1000)
    await writer.drain()
    codec = wire.PeerWire(count)
    for _ in range(2000):
        data = await asyncio.wait_for(reader.read(65536), 10)
        if not data:
            return "closed"
        for msg in codec.feed(data):
            if isinstance(msg, wire.Message) and msg.kind == wire.REQUEST:
                writer.write(wire.encode(wire.PIECE, index=msg.index, begin=msg.begin, data=os.urandom(msg.length)))
        await writer.drain()
    return "still open"


async def test_bad_pieces_get_a_peer_banned_and_other_torrents_carry_on(network, tmp_path):
    for name, size in (("x.bin", 200_000), ("y.bin", 150_000)):
        (tmp_path / "seed").mkdir(exist_ok=True)
        (tmp_path / "seed" / name).write_bytes(os.urandom(size))
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed")}, tmp_path / "s", network)
    leecher = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "l", network)
    await seeder.start()
    await leecher.start()
    attacker = await network.open_session(name="evil")
    try:
        x = create_torrent(tmp_path / "seed" / "x.bin", piece_length=16384)            # no tracker
        y = create_torrent(tmp_path / "seed" / "y.bin", tracker=seeder.tracker_url, piece_length=16384)
        await seeder.add_torrent(x)
        await seeder.add_torrent(y)
        attacked = await leecher.add_torrent(x)
        other = await leecher.add_torrent(y)

        outcome = await asyncio.wait_for(evil_peer(attacker, leecher.session.destination, x), 30)
        assert outcome == "closed"
        assert attacker.destination.hash in attacked.banned
        assert attacked.hash_failures >= BAD_PIECES_BAN and attacked.status()["progress"] == 0.0
        # a banned peer is refused at once
        assert await asyncio.wait_for(evil_peer(attacker, leecher.session.destination, x), 10) == "closed"

        # a peer sending a 4 GiB message loses its connection; nothing else happens
        other_attacker = await network.open_session(name="evil2")
        assert await asyncio.wait_for(evil_peer(other_attacker, leecher.session.destination, y, oversize=True),
                                      10) == "closed"

        await wait_until(lambda: other.state == "seeding", 30, f"other torrent: {other.status()}")
        attacked.add_peers([seeder.session.destination])
        await wait_until(lambda: attacked.state == "seeding", 30, f"attacked torrent: {attacked.status()}")
        for name in ("x.bin", "y.bin"):
            assert hashlib.sha256((tmp_path / "get" / name).read_bytes()).digest() == \
                hashlib.sha256((tmp_path / "seed" / name).read_bytes()).digest()
        assert leecher.status()["state"] == "running"
    finally:
        await attacker.close()
        await leecher.stop()
        await seeder.stop()


async def test_bad_torrents_refused_with_a_reason(network, tmp_path):
    service = TorrentService({}, tmp_path / "d", network)
    await service.start()
    try:
        add = service.control_methods()["Add"]
        info = {b"name": b"top", b"piece length": 16384, b"pieces": b"\x00" * 20,
                b"files": [{b"length": 5, b"path": [b"..", b"..", b"etc", b"passwd"]}]}
        with pytest.raises(ValueError, match="path traversal refused"):
            await add({"torrent": base64.b64encode(bencode({b"info": info})).decode()})
        huge = b"d4:infod4:name1:x" + b"x" * (100 * 1024 * 1024) + b"ee"
        with pytest.raises(ValueError, match="over"):
            await add({"torrent": base64.b64encode(huge).decode()})
        with pytest.raises(ValueError, match="magnet"):
            await add({"magnet": "magnet:?xt=urn:btih:nothex"})
        assert service.engine.torrents == {} and list((tmp_path / "d" / "torrent" / "torrents").iterdir()) == []
        assert not (tmp_path / "etc").exists()
    finally:
        await service.stop()
