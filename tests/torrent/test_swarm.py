"""pyi2p to pyi2p over an in-memory I2P: a multi-file torrent seeded by one TorrentService reaches another
through the built-in tracker, byte for byte; a restarted downloader does not fetch again what it has."""
from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import Metainfo, create_torrent
from apps.torrent.tracker import scrape
from core.client import ClientAPI


@pytest.fixture
async def network():
    net = InProcessNetwork(ClientAPI())
    yield net
    await net.close()


def make_files(folder, sizes, seed=1):
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    (folder / "sub").mkdir()
    paths = []
    for i, size in enumerate(sizes):
        path = folder / ("sub" if i % 2 else "") / f"file{i}.bin"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


async def wait_until(predicate, timeout, what):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


async def test_multi_file_torrent_through_the_builtin_tracker(network, tmp_path):
    share = tmp_path / "seed" / "share"
    make_files(share, [300_000, 1, 70_000, 0, 524_288])
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed")}, tmp_path / "a", network)
    await seeder.start()
    leecher = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "b", network)
    await leecher.start()
    try:
        meta = create_torrent(share, tracker=seeder.tracker_url, piece_length=32768)
        seeding = await seeder.add_torrent(Metainfo.parse(meta.to_bytes()))
        assert seeding.state == "seeding"          # the files are there: checked, not fetched
        leeching = await leecher.add_torrent(Metainfo.parse(meta.to_bytes()))
        await wait_until(lambda: leeching.state == "seeding", 60, f"download: {leeching.status()}")
        assert digests(tmp_path / "get" / "share") == digests(share)
        assert seeding.uploaded >= meta.info.total_length
        status = seeder.status()
        assert status["tracker"]["announces"] >= 2 and status["tracker"]["torrents"] == 1
        # a scrape over I2P: both are seeders now (the leecher announced "completed")
        await wait_until(lambda: seeder.tracker.swarms[meta.info_hash].downloaded == 1, 20, "completed announce")
        scraped = await scrape(leecher.session, seeder.tracker_url, [meta.info_hash])
        assert scraped[meta.info_hash] == {"complete": 2, "incomplete": 0, "downloaded": 1}
        assert status["tracker"]["url"].endswith(".b32.i2p/announce")
        assert status["listen"] == {"peers": seeder.session.b32, "tracker": status["tracker"]["url"]}
        assert status["state"] == "running" and status["torrents"] == 1 and status["seeding"] == 1
    finally:
        await leecher.stop()
        await seeder.stop()

    # restart: the resume data says it is all there, nothing is fetched again
    again = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "b", network)
    await again.start()
    try:
        [torrent] = again.engine.torrents.values()
        assert torrent.state == "seeding" and torrent.downloaded == leeching.downloaded
    finally:
        await again.stop()


async def test_magnet_link_fetches_the_metadata_from_peers(network, tmp_path):
    share = tmp_path / "seed" / "share"
    make_files(share, [100_000, 40_000], seed=3)
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed")}, tmp_path / "a", network)
    await seeder.start()
    leecher = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "b", network)
    await leecher.start()
    try:
        meta = create_torrent(share, tracker=seeder.tracker_url)
        await seeder.add_torrent(meta)
        from apps.torrent.service import magnet_link
        added = await leecher.control_methods()["Add"]({"magnet": magnet_link(meta)})
        assert added["state"] == "metadata" and added["name"] == "share"
        [torrent] = leecher.engine.torrents.values()
        await wait_until(lambda: torrent.state == "seeding", 60, f"magnet download: {torrent.status()}")
        assert digests(tmp_path / "get" / "share") == digests(share)
        # the metadata is kept as a .torrent, so a restart needs no peer to know what it has
        assert (tmp_path / "b" / "torrent" / "torrents" / f"{meta.info_hash.hex()}.torrent").read_bytes() \
            and not list((tmp_path / "b" / "torrent" / "torrents").glob("*.magnet"))
        listed = leecher.control_methods()["List"]({})["torrents"]
        assert listed[0]["progress"] == 1.0 and listed[0]["size"] == 140_000
    finally:
        await leecher.stop()
        await seeder.stop()


async def test_seeding_goal_stops_the_torrent(network, tmp_path):
    share = tmp_path / "seed" / "one.bin"
    share.parent.mkdir()
    share.write_bytes(random.Random(9).randbytes(100_000))
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed"), "seed_ratio": 1.0},
                            tmp_path / "a", network)
    await seeder.start()
    leecher = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "b", network)
    await leecher.start()
    try:
        meta = create_torrent(share, tracker=seeder.tracker_url)
        seeding = await seeder.add_torrent(meta)
        assert seeding.state == "seeding"
        leeching = await leecher.add_torrent(meta)
        await wait_until(lambda: leeching.state == "seeding", 30, f"download: {leeching.status()}")
        await wait_until(lambda: seeding.state == "finished", 10, f"goal: {seeding.status()}")
        assert seeding.uploaded >= meta.info.total_length and seeding.peers == {}
        assert seeder.control_methods()["List"]({})["torrents"][0]["state"] == "finished"
        resumed = await seeder.control_methods()["Resume"]({"torrent": "one.bin"})
        assert resumed["state"] == "seeding"
    finally:
        await leecher.stop()
        await seeder.stop()


async def test_a_swarm_of_one_seeder_and_three_leechers(network, tmp_path):
    share = tmp_path / "seed" / "share"
    make_files(share, [400_000, 250_000, 3], seed=6)
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed"), "dht": False,
                             "torrent_upload_limit": 512}, tmp_path / "s", network)
    await seeder.start()
    leechers = [TorrentService({"download_dir": str(tmp_path / f"get{i}"), "dht": False}, tmp_path / f"l{i}", network)
                for i in range(3)]
    try:
        for leecher in leechers:
            await leecher.start()
        meta = create_torrent(share, tracker=seeder.tracker_url, piece_length=16384)
        await seeder.add_torrent(meta)
        torrents = [await leecher.add_torrent(meta) for leecher in leechers]
        await wait_until(lambda: all(t.state == "seeding" for t in torrents), 90,
                         f"swarm: {[t.status() for t in torrents]}")
        for i in range(3):
            assert digests(tmp_path / f"get{i}" / "share") == digests(share)
        # the seeder's upload was limited, so the leechers traded pieces among themselves too
        assert sum(t.uploaded for t in torrents) > 0
    finally:
        for service in (*leechers, seeder):
            await service.stop()


@pytest.mark.parametrize("limited", ["global download", "torrent upload"])
async def test_rate_limits_hold_a_transfer_back(network, tmp_path, limited):
    """320 KiB at 64 KiB/s (after a 64 KiB burst) cannot take less than 4 s, whichever side limits it."""
    share = tmp_path / "seed" / "r.bin"
    share.parent.mkdir()
    share.write_bytes(random.Random(8).randbytes(320 * 1024))
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed"), "dht": False},
                            tmp_path / "a", network)
    leecher = TorrentService({"download_dir": str(tmp_path / "get"), "dht": False,
                              **({"download_limit": 64} if limited == "global download" else {})}, tmp_path / "b",
                             network)
    await seeder.start()
    await leecher.start()
    try:
        meta = create_torrent(share, tracker=seeder.tracker_url, piece_length=16384)
        seeding = await seeder.add_torrent(meta, upload_limit=64 if limited == "torrent upload" else None)
        assert seeding.bucket_up.rate == (64 * 1024 if limited == "torrent upload" else 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        leeching = await leecher.add_torrent(meta)
        await wait_until(lambda: leeching.state == "seeding", 60, f"download: {leeching.status()}")
        assert loop.time() - started >= 3.5
        assert digests(tmp_path / "get") == digests(tmp_path / "seed")
    finally:
        await leecher.stop()
        await seeder.stop()


async def test_i2p_pex_introduces_peers(network, tmp_path, monkeypatch):
    """No tracker, no DHT: B knows only A, A knows S; A's i2p_pex message tells B about S."""
    import apps.torrent.engine as engine
    monkeypatch.setattr(engine, "PEX_INTERVAL", 0.5)
    share = tmp_path / "s" / "p.bin"
    share.parent.mkdir()
    share.write_bytes(random.Random(10).randbytes(300_000))
    meta = create_torrent(share)
    # A downloads slowly, so it is still connected to S when its pex messages go out
    services = [TorrentService({"download_dir": str(tmp_path / name), "dht": False,
                                **({"download_limit": 32} if name == "a" else {})}, tmp_path / f"d{name}", network)
                for name in ("s", "a", "b")]
    seeder, a, b = services
    try:
        for service in services:
            await service.start()
        await seeder.add_torrent(meta)
        a_torrent = await a.add_torrent(meta)
        b_torrent = await b.add_torrent(meta)
        a_torrent.add_peers([seeder.session.destination])
        b_torrent.add_peers([a.session.destination])
        await wait_until(lambda: seeder.session.destination.hash in b_torrent.known, 30,
                         f"pex: {b_torrent.status()}")
        await wait_until(lambda: b_torrent.state == "seeding", 30, f"download: {b_torrent.status()}")
        assert (tmp_path / "b" / "p.bin").read_bytes() == share.read_bytes()
    finally:
        for service in services:
            await service.stop()
