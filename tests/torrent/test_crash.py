"""kill -9 in the middle of a download loses at most the pieces in flight: a restart finds every piece that
was written (resume data, then hashing what the resume file did not list yet) and fetches only the rest."""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sys
from pathlib import Path

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import create_torrent
from core.client import ClientAPI

from .test_swarm import wait_until

ROOT = Path(__file__).resolve().parents[2]


async def test_kill_9_then_restart_fetches_only_what_is_missing(tmp_path):
    payload = tmp_path / "seed" / "big.bin"
    payload.parent.mkdir()
    payload.write_bytes(random.Random(4).randbytes(2 * 1024 * 1024))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.torrent.crash_child", str(tmp_path),
                                                cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        tracker = (await asyncio.wait_for(proc.stdout.readline(), 30)).split()[1].decode()
        meta = create_torrent(payload, tracker=tracker, piece_length=16384)
        (tmp_path / "t.torrent").write_bytes(meta.to_bytes())
        proc.stdin.write(b"%s\n" % str(tmp_path / "t.torrent").encode())
        await proc.stdin.drain()
        had = 0
        for _ in range(1200):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            had = int(line.split()[1])
            if had >= 40:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert 40 <= had < meta.info.piece_count

    network = InProcessNetwork(ClientAPI())
    seeder = TorrentService({"tracker": True, "download_dir": str(tmp_path / "seed")}, tmp_path / "s", network)
    leecher = TorrentService({"download_dir": str(tmp_path / "get")}, tmp_path / "l", network)
    await seeder.start()                       # the same tracker destination (its keys were kept)
    await leecher.start()
    try:
        assert seeder.tracker_url == tracker
        [torrent] = leecher.engine.torrents.values()
        found = sum(torrent.picker.have)
        assert found >= had                    # every piece reported written survived the kill
        before = torrent.downloaded
        assert [t.state for t in seeder.engine.torrents.values()] == ["seeding"]     # kept from before the kill
        await wait_until(lambda: torrent.state == "seeding", 60, f"after restart: {torrent.status()}")
        fetched = torrent.downloaded - before
        assert fetched == (meta.info.piece_count - found) * 16384
        assert hashlib.sha256((tmp_path / "get" / "big.bin").read_bytes()).digest() == \
            hashlib.sha256(payload.read_bytes()).digest()
    finally:
        await leecher.stop()
        await seeder.stop()
        await network.close()
