"""libtorrent 2.1, unmodified, as a peer of pyi2p's engine over I2P: libtorrent runs on our SAM bridge on one
pyi2p router, TorrentService (with its built-in tracker) runs in-process on another. libtorrent downloads a
multi-file torrent pyi2p seeds, and pyi2p downloads one libtorrent seeds; the files are identical. The same
again from magnet links, so each side serves the other the metadata (BEP 9)."""
from __future__ import annotations

import hashlib
import random

import pytest

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import MagnetLink, Metainfo, create_torrent, magnet_of
from tests.client.routers import free_port, start_network, wait_for
from tests.sam.test_real_clients_libtorrent import _sam_router, _session, drop_sessions

lt = pytest.importorskip("libtorrent", reason="libtorrent (PyPI libtorrent 2.1) is not installed")

TUNNELS = {"inbound.length": 1, "outbound.length": 1, "inbound.quantity": 2, "outbound.quantity": 2}


def make_folder(folder, sizes, seed):
    rng = random.Random(seed)
    (folder / "inner").mkdir(parents=True)
    for i, size in enumerate(sizes):
        (folder / ("inner" if i % 2 else "") / f"part{i}.dat").write_bytes(rng.randbytes(size))


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def lt_torrent(folder, tracker_url: str) -> bytes:
    creator = lt.create_torrent(lt.list_files(str(folder)), 32 * 1024)
    creator.add_tracker(tracker_url)
    lt.set_piece_hashes(creator, str(folder.parent))
    return lt.bencode(creator.generate())


def lt_add(session, torrent: bytes, save_path):
    params = lt.add_torrent_params()
    params.ti, params.save_path = lt.torrent_info(lt.bdecode(torrent)), str(save_path)
    return session.add_torrent(params)


async def wait_until_all_seed(session, lt_handles, torrents, service, timeout: float) -> None:
    """Until every libtorrent handle and pyi2p torrent seeds; on time-out, what each side saw."""
    alerts: list[str] = []

    def done() -> bool:
        alerts.extend(f"{type(a).__name__}: {a.message()}" for a in session.pop_alerts())
        return all(h.status().is_seeding for h in lt_handles) and all(t.state == "seeding" for t in torrents)

    try:
        await wait_for(done, timeout, interval=0.25)
    except TimeoutError:
        theirs = [(h.status().name, str(h.status().state), h.status().progress) for h in lt_handles]
        pytest.fail(f"no transfer: libtorrent {theirs}; pyi2p {[t.status() for t in torrents]}; tracker "
                    f"{service.status().get('tracker')}; alerts: {alerts[-30:]}")


async def test_libtorrent_and_pyi2p_exchange_torrents_both_ways(tmp_path):
    floodfill, _ = _sam_router(tmp_path, "ff", floodfill=True, sam=False)
    lt_node, lt_sam = _sam_router(tmp_path, "lt")
    py_node, _ = _sam_router(tmp_path, "py", sam=False)
    relays = [_sam_router(tmp_path, f"relay{i}", sam=False)[0] for i in range(2)]
    nodes = [floodfill, *relays, lt_node, py_node]
    service = None
    session = None
    try:
        await start_network(nodes)
        network = InProcessNetwork(py_node.api)
        ours, theirs = tmp_path / "py" / "ours", tmp_path / "lt" / "theirs"
        make_folder(ours, [200_000, 65_536, 1, 150_000], seed=1)
        make_folder(theirs, [180_000, 3, 99_999], seed=2)
        service = TorrentService({"tracker": True, "download_dir": str(tmp_path / "py"), **TUNNELS},
                                 tmp_path / "pydata", network)
        await service.start()
        ours_meta = create_torrent(ours, tracker=service.tracker_url, piece_length=32 * 1024)
        theirs_bytes = lt_torrent(theirs, service.tracker_url)
        theirs_meta = Metainfo.parse(theirs_bytes)
        seeding = await service.add_torrent(ours_meta)
        leeching = await service.add_torrent(theirs_meta)
        assert seeding.state == "seeding" and leeching.state == "downloading"
        ours2, theirs2 = tmp_path / "py" / "ours2", tmp_path / "lt" / "theirs2"
        make_folder(ours2, [90_000, 5], seed=3)
        make_folder(theirs2, [70_000, 12], seed=4)
        ours2_meta = create_torrent(ours2, tracker=service.tracker_url, piece_length=16 * 1024)
        await service.add_torrent(ours2_meta)
        theirs2_bytes = lt_torrent(theirs2, service.tracker_url)
        theirs2_meta = Metainfo.parse(theirs2_bytes)
        by_magnet = await service.add_torrent(magnet=MagnetLink(theirs2_meta.info_hash, None, (service.tracker_url,)))
        assert by_magnet.state == "metadata"

        session = _session(lt_sam, free_port())
        lt_leeching = lt_add(session, ours_meta.to_bytes(), tmp_path / "lt")
        lt_seeding = lt_add(session, theirs_bytes, tmp_path / "lt")
        lt_add(session, theirs2_bytes, tmp_path / "lt")
        params = lt.parse_magnet_uri(magnet_of(ours2_meta).to_str())
        params.save_path = str(tmp_path / "lt")
        lt_by_magnet = session.add_torrent(params)
        await wait_until_all_seed(session, [lt_leeching, lt_by_magnet], [leeching, by_magnet], service, 150)
        assert digests(tmp_path / "lt" / "ours") == digests(ours)
        assert digests(tmp_path / "py" / "theirs") == digests(theirs)     # BEP 47 pad files stay virtual
        assert digests(tmp_path / "lt" / "ours2") == digests(ours2)
        assert digests(tmp_path / "py" / "theirs2") == digests(theirs2)
        assert any(f.pad for f in theirs_meta.info.files)
        assert seeding.uploaded >= ours_meta.info.total_length
        assert lt_seeding.status().total_payload_upload >= theirs_meta.info.total_length
        # libtorrent 2 makes hybrid v1+v2 torrents and announces the truncated v2 hash as well
        assert {ours_meta.info_hash, theirs_meta.info_hash} <= set(service.tracker.swarms)
        assert all(peer.flags & lt.peer_info.i2p_socket for peer in lt_leeching.get_peer_info())
    finally:
        held, session = [session] if session is not None else [], None
        await drop_sessions(held)
        if service is not None:
            await service.stop()
        for node in reversed(nodes):
            await node.stop()
