"""Metainfo v1: single and multi-file, info-hash of the exact info bytes, path traversal and size caps refused,
magnet links, and `create_torrent` choosing the piece size."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, strategies as st

from apps.torrent.bencode import bdecode, bencode
from apps.torrent.metainfo import (MagnetLink, Metainfo, MetainfoError, choose_piece_length,
                                   create_torrent, magnet_of)
from core.data.errors import ProtocolError


def torrent(info: dict, **top) -> bytes:
    return bencode({b"announce": b"http://tracker.i2p/announce", b"info": info, **top})


def multi(paths, piece=16384):
    files = [{b"length": 10, b"path": p} for p in paths]
    pieces = -(-10 * len(paths) // piece)
    return {b"name": b"top", b"piece length": piece, b"pieces": b"\x00" * 20 * pieces, b"files": files}


def test_single_and_multi_file():
    single = {b"name": b"a.bin", b"piece length": 16384, b"length": 20000, b"pieces": b"x" * 40}
    meta = Metainfo.parse(torrent(single))
    assert meta.info.files[0].path == ("a.bin",) and meta.info.total_length == 20000
    assert meta.info.piece_size(1) == 20000 - 16384
    assert meta.info_hash == hashlib.sha1(bencode(single)).digest()
    assert meta.trackers == ["http://tracker.i2p/announce"]
    m = Metainfo.parse(torrent(multi([[b"d", b"x"], [b"y"]])))
    assert [f.path for f in m.info.files] == [("d", "x"), ("y",)] and [f.offset for f in m.info.files] == [0, 10]
    assert Metainfo.parse(m.to_bytes()).info_hash == m.info_hash


@pytest.mark.parametrize("path", [[b".."], [b"a", b".."], [b"..", b"etc", b"passwd"], [b"a/b"], [b"a\\b"],
                                  [b""], [b"."], [b"C:evil"], [b"x\x00"], []])
def test_path_traversal_refused(path):
    with pytest.raises(MetainfoError, match="path"):
        Metainfo.parse(torrent(multi([path])))


@pytest.mark.parametrize("name", [b"..", b"../x", b"/etc", b""])
def test_bad_name_refused(name):
    with pytest.raises(MetainfoError):
        Metainfo.parse(torrent({b"name": name, b"piece length": 16384, b"length": 1, b"pieces": b"x" * 20}))


def test_caps_and_consistency():
    with pytest.raises(MetainfoError, match="over the"):
        Metainfo.parse(b"d4:infod" + b"0:" * 10 + b" " * (100 * 1024 * 1024))      # a 100 MB metainfo
    with pytest.raises(MetainfoError, match="piece hashes"):
        Metainfo.parse(torrent({b"name": b"a", b"piece length": 16384, b"length": 20000, b"pieces": b"x" * 20}))
    with pytest.raises(MetainfoError, match="power of two"):
        Metainfo.parse(torrent({b"name": b"a", b"piece length": 1000, b"length": 1, b"pieces": b"x" * 20}))
    with pytest.raises(MetainfoError, match="twice"):
        Metainfo.parse(torrent(multi([[b"a"], [b"a"]])))
    with pytest.raises(MetainfoError, match="under another"):
        Metainfo.parse(torrent(multi([[b"a"], [b"a", b"b"]])))


@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_protocol_errors(data):
    try:
        Metainfo.parse(b"d4:info" + data + b"e")
    except ProtocolError:
        pass


@given(st.dictionaries(st.sampled_from([b"name", b"piece length", b"length", b"pieces", b"files", b"private"]),
                       st.integers(-5, 1 << 20) | st.binary(max_size=60)
                       | st.lists(st.dictionaries(st.sampled_from([b"length", b"path"]),
                                                  st.integers(-1, 100) | st.lists(st.binary(max_size=5), max_size=3)),
                                  max_size=3)))
def test_fuzzed_info_dicts(info):
    try:
        meta = Metainfo.parse(torrent(info))
    except ProtocolError:
        return
    assert all(".." not in f.path and all(f.path) for f in meta.info.files)


def test_create_single_and_folder(tmp_path):
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_bytes(b"a" * 40000)
    (tmp_path / "d" / "s" / "b.txt").write_bytes(b"b" * 5)
    (tmp_path / "d" / ".hidden").write_bytes(b"h")
    meta = create_torrent(tmp_path / "d", tracker="http://t.i2p/announce", comment="hi", now=lambda: 1700000000)
    again = Metainfo.parse(meta.to_bytes())
    assert again == meta and again.comment == "hi" and again.creation_date == 1700000000
    assert [f.path for f in meta.info.files] == [("a.txt",), ("s", "b.txt")]
    data = b"a" * 40000 + b"b" * 5
    assert meta.info.pieces == tuple(hashlib.sha1(data[i:i + 16384]).digest() for i in range(0, len(data), 16384))
    one = create_torrent(tmp_path / "d" / "a.txt")
    assert not one.info.multi_file and one.info.name == "a.txt"
    assert bdecode(one.to_bytes())[b"info"][b"length"] == 40000


def test_piece_length_grows_with_size():
    assert choose_piece_length(1000) == 16384
    assert choose_piece_length(20 * 1024 * 1024) == 16384
    assert choose_piece_length(700 * 1024 * 1024) == 512 * 1024
    assert choose_piece_length(1 << 40) == 16 * 1024 * 1024


def test_magnet_links():
    h = bytes(range(20))
    link = MagnetLink.parse(f"magnet:?xt=urn:btih:{h.hex()}&dn=some+name&tr=http%3A%2F%2Ft.i2p%2Fa")
    assert link == MagnetLink(h, "some name", ("http://t.i2p/a",))
    assert MagnetLink.parse(link.to_str()) == link
    import base64
    assert MagnetLink.parse("magnet:?xt=urn:btih:" + base64.b32encode(h).decode()).info_hash == h
    for bad in ("http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:zz"):
        with pytest.raises(ProtocolError):
            MagnetLink.parse(bad)


def test_magnet_of_torrent(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 10)
    meta = create_torrent(tmp_path / "f", tracker="http://t.i2p/announce")
    assert MagnetLink.parse(magnet_of(meta).to_str()).info_hash == meta.info_hash
