"""`pyi2p torrent create` end to end, and how `list` shows a real service's torrents."""
from __future__ import annotations

import base64
import io

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import Metainfo
from core.client import ClientAPI
from pyi2p.cli import build_parser, main
from pyi2p.torrent import format_list, run_create


def test_create_a_folder_torrent(tmp_path, capsys):
    (tmp_path / "share" / "d").mkdir(parents=True)
    (tmp_path / "share" / "a.bin").write_bytes(b"a" * 70_000)
    (tmp_path / "share" / "d" / "b.bin").write_bytes(b"b" * 10)
    out = tmp_path / "share.torrent"
    assert main(["torrent", "create", str(tmp_path / "share"), "-o", str(out), "--tracker",
                 "http://x.b32.i2p/announce", "--comment", "hello"]) == 0
    meta = Metainfo.parse(out.read_bytes())
    assert meta.announce == "http://x.b32.i2p/announce" and meta.comment == "hello"
    assert [f.path for f in meta.info.files] == [("a.bin",), ("d", "b.bin")]
    printed = capsys.readouterr().out
    assert meta.info_hash.hex() in printed and "magnet:?xt=urn:btih:" in printed
    buf = io.StringIO()
    args = build_parser().parse_args(["torrent", "create", str(tmp_path / "share" / "a.bin"), "-o",
                                      str(tmp_path / "a.torrent"), "--piece-size", "32"])
    assert run_create(args, buf) == 0 and "3 pieces of 32.0 KiB" in buf.getvalue()


def test_create_refuses_an_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["torrent", "create", str(tmp_path / "empty"), "-o", str(tmp_path / "x.torrent")]) == 2
    assert "no files to share" in capsys.readouterr().err and not (tmp_path / "x.torrent").exists()


async def test_list_shows_progress_state_and_name(tmp_path):
    network = InProcessNetwork(ClientAPI())
    service = TorrentService({"download_dir": str(tmp_path)}, tmp_path / "d", network)
    await service.start()
    try:
        (tmp_path / "f.bin").write_bytes(b"x" * 50_000)
        from apps.torrent.metainfo import create_torrent
        added = await service.control_methods()["Add"]({"torrent": base64.b64encode(
            create_torrent(tmp_path / "f.bin").to_bytes()).decode(), "upload_limit": 64})
        assert added["upload_limit"] == 64 and added["download_limit"] == 0
        text = format_list(service.control_methods()["List"]({})["torrents"])
        assert "[########################] 100.0% seeding" in text and "f.bin" in text
        paused = await service.control_methods()["Pause"]({"torrent": "f.bin"})
        assert paused["state"] == "paused"
        resumed = await service.control_methods()["Resume"]({"torrent": paused["info_hash"][:8]})
        assert resumed["state"] == "seeding" and resumed["upload_limit"] == 64
        await service.stop()
        service = TorrentService({"download_dir": str(tmp_path)}, tmp_path / "d", network)
        await service.start()            # the torrent and its own limit are kept
        [kept] = service.control_methods()["List"]({})["torrents"]
        assert kept["state"] == "seeding" and kept["upload_limit"] == 64
        assert (await service.control_methods()["Remove"]({"torrent": "f.bin"}))["removed"] == paused["info_hash"]
        assert format_list(service.control_methods()["List"]({})["torrents"]) == "no torrents\n"
        assert (tmp_path / "f.bin").exists()
    finally:
        await service.stop()
        await network.close()


async def test_bad_config_and_bad_keys_fail_with_the_key_or_file_named(tmp_path):
    from apps.service import ServiceError
    import pytest
    network = InProcessNetwork(ClientAPI())
    try:
        with pytest.raises(ServiceError, match="seed_ratio"):
            TorrentService({"seed_ratio": "lots"}, tmp_path, network)
        with pytest.raises(ServiceError, match="dht_bootstrap"):
            TorrentService({"dht_bootstrap": "x.i2p"}, tmp_path, network)
        (tmp_path / "torrent").mkdir()
        (tmp_path / "torrent" / "torrent.keys").write_bytes(b"not keys")
        service = TorrentService({}, tmp_path, network)
        with pytest.raises(ServiceError, match="torrent.keys"):
            await service.start()
        assert service.status()["state"] == "failed" and "torrent.keys" in service.status()["error"]
    finally:
        await network.close()
