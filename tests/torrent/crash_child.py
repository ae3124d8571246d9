"""Run by test_crash.py: seeds and downloads (rate-limited) in one process, printing the pieces the
downloader has, until the test kills it with SIGKILL."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import Metainfo
from core.client import ClientAPI


async def main(folder: Path) -> None:
    network = InProcessNetwork(ClientAPI())
    seeder = TorrentService({"tracker": True, "download_dir": str(folder / "seed")}, folder / "s", network)
    leecher = TorrentService({"download_dir": str(folder / "get"), "download_limit": 256}, folder / "l", network)
    await seeder.start()
    await leecher.start()
    print("tracker", seeder.tracker_url, flush=True)
    meta = Metainfo.parse(Path(sys.stdin.readline().strip()).read_bytes())
    await seeder.add_torrent(meta)
    torrent = await leecher.add_torrent(meta)
    for _ in range(1200):
        print("have", sum(torrent.picker.have), flush=True)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
