"""libtorrent 2.1 on i2pd's SAM bridge and pyi2p's TorrentService on an in-process router, on the private
testnet of i2pd routers (once per i2pd version): libtorrent downloads a multi-file torrent pyi2p seeds, pyi2p
downloads one libtorrent seeds, with pyi2p's built-in tracker; the files are identical (SHA-256)."""
from __future__ import annotations

import asyncio

import pytest

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import Metainfo, create_torrent
from core.config import load_config
from core.router import Router
from core.tunnel.service import TunnelSettings
from tests.client.routers import free_port
from tests.sam.test_real_clients_libtorrent import _session, drop_sessions
from tests.torrent.test_libtorrent import (digests, lt_add, lt_torrent, make_folder,
                                          wait_until_all_seed)

pytestmark = pytest.mark.interop
lt = pytest.importorskip("libtorrent", reason="libtorrent (PyPI libtorrent 2.1) is not installed")

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
OPTIONS = {"inbound.length": 2, "outbound.length": 2, "inbound.quantity": 2, "outbound.quantity": 2,
           "i2cp.leaseSetEncType": "4"}


async def test_libtorrent_on_i2pd_sam_and_pyi2p_exchange_torrents(each_i2pd_testnet, tmp_path):
    testnet = each_i2pd_testnet
    address = testnet.add_pyi2p_address()
    with testnet.in_netns():
        router = Router(load_config(tmp_path / "py", {"netid": testnet.netid, "host": address, "port": 24310,
                                                      "reseed_file": str(testnet.seed_file), "control_port": 0,
                                                      "sam_port": 0}), tunnel_settings=SETTINGS)
        service = session = None
        try:
            await router.start()
            service = TorrentService({"tracker": True, "dht": False, "download_dir": str(tmp_path / "py"), **OPTIONS},
                                     tmp_path / "pydata", InProcessNetwork(router.client))
            await asyncio.wait_for(service.start(), 180)
            ours, theirs = tmp_path / "py" / "ours", tmp_path / "lt" / "theirs"
            make_folder(ours, [300_000, 65_536, 1, 120_000], seed=11)
            make_folder(theirs, [250_000, 7, 40_000], seed=12)
            ours_meta = create_torrent(ours, tracker=service.tracker_url, piece_length=32 * 1024)
            theirs_bytes = lt_torrent(theirs, service.tracker_url)
            theirs_meta = Metainfo.parse(theirs_bytes)
            seeding = await service.add_torrent(ours_meta)
            leeching = await service.add_torrent(theirs_meta)

            session = _session(testnet.sam_port("r3"), free_port())
            lt_leeching = lt_add(session, ours_meta.to_bytes(), tmp_path / "lt")
            lt_add(session, theirs_bytes, tmp_path / "lt")
            await wait_until_all_seed(session, [lt_leeching], [leeching], service, 360)
            assert digests(tmp_path / "lt" / "ours") == digests(ours)
            assert digests(tmp_path / "py" / "theirs") == digests(theirs)
            assert seeding.uploaded >= ours_meta.info.total_length
            assert {ours_meta.info_hash, theirs_meta.info_hash} <= set(service.tracker.swarms)
        finally:
            held, session = [session] if session is not None else [], None
            await drop_sessions(held)
            if service is not None:
                await service.stop()
            await router.stop()
