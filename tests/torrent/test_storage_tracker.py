"""Storage across file boundaries, resume data (and what a kill -9 leaves), announce URLs, tracker replies and
the built-in open tracker."""
from __future__ import annotations

import hashlib
import urllib.parse

import pytest

from apps.torrent.bencode import bdecode
from apps.torrent.metainfo import create_torrent
from apps.torrent.storage import ResumeData, Storage
from apps.torrent.tracker import (OpenTracker, TrackerError, announce_target, parse_announce_reply,
                                  parse_http_response, parse_scrape_reply, scrape_url)
from core.data.privatekeys import PrivateKeys


@pytest.fixture
def shared(tmp_path):
    folder = tmp_path / "src" / "t"
    folder.mkdir(parents=True)
    (folder / "a").write_bytes(bytes(range(256)) * 100)       # 25600
    (folder / "b").write_bytes(b"B" * 10)
    (folder / "c").write_bytes(b"C" * 20000)
    return create_torrent(folder, piece_length=16384)


def test_pieces_span_files(shared, tmp_path):
    source = Storage(shared.info, tmp_path / "src")
    assert all(source.verify(i) for i in range(shared.info.piece_count))
    assert source.read(1, 25600 - 16384 - 2, 6) == bytes([254, 255]) + b"BBBB"
    copy = Storage(shared.info, tmp_path / "dst")
    assert not copy.exists()
    copy.allocate()
    assert [p.stat().st_size for p in copy.paths] == [25600, 10, 20000]
    for i in reversed(range(shared.info.piece_count)):
        copy.write_piece(i, source.read(i, 0, shared.info.piece_size(i)))
    for name in "abc":
        assert (tmp_path / "dst" / "t" / name).read_bytes() == (tmp_path / "src" / "t" / name).read_bytes()


def test_resume_and_recheck_after_a_crash(shared, tmp_path):
    source = Storage(shared.info, tmp_path / "src")
    copy = Storage(shared.info, tmp_path / "dst")
    copy.allocate()
    copy.write_piece(0, source.read(0, 0, 16384))
    resume = ResumeData(tmp_path / "r" / "x.resume")
    have = bytearray([1, 0, 0])
    resume.save(shared.info, have, uploaded=5, downloaded=16384, paused=False, seconds_seeded=0)
    # a piece written after the last save (then kill -9) is found by hashing, not fetched again
    copy.write_piece(2, source.read(2, 0, shared.info.piece_size(2)))
    saved = resume.load(shared.info)
    assert saved["have"] == have and saved["uploaded"] == 5
    assert copy.check(saved["have"]) == bytearray([1, 0, 1])
    # a resume file of another torrent or garbage is ignored
    (tmp_path / "r" / "x.resume").write_bytes(b"garbage")
    assert resume.load(shared.info) is None


def test_announce_target_and_scrape_url():
    keys = PrivateKeys.generate()
    host, port, target = announce_target("http://tr.i2p/announce.php?k=1", b"\x01" * 20, b"-PY0100-abcdefghijkl",
                                         keys.destination, uploaded=1, downloaded=2, left=3, event="started")
    assert (host, port) == ("tr.i2p", 80) and target.startswith("/announce.php?k=1&info_hash=%01%01")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
    assert query["ip"] == [keys.destination.b64 + ".i2p"] and query["compact"] == ["1"]
    assert query["event"] == ["started"] and query["left"] == ["3"]
    assert scrape_url("http://tr.i2p/announce") == "http://tr.i2p/scrape"
    assert scrape_url("http://tr.i2p/a") is None
    with pytest.raises(TrackerError):
        announce_target("udp://tr.i2p:80", b"x" * 20, b"y" * 20, keys.destination, uploaded=0, downloaded=0, left=0)


def test_tracker_replies():
    reply = parse_announce_reply(b"d8:intervali600e5:peers64:" + b"a" * 32 + b"b" * 32 + b"e")
    assert reply.interval == 600 and reply.peers == (b"a" * 32, b"b" * 32)
    dest = PrivateKeys.generate().destination
    listed = b"d8:intervali5e5:peersld2:ip%d:%seee" % (len(dest.b64) + 4, (dest.b64 + ".i2p").encode())
    assert parse_announce_reply(listed).peers == (dest,) and parse_announce_reply(listed).interval == 60
    with pytest.raises(TrackerError, match="tracker says: go away"):
        parse_announce_reply(b"d14:failure reason7:go awaye")
    with pytest.raises(TrackerError, match="32-byte"):
        parse_announce_reply(b"d5:peers5:abcdee")
    assert parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef") == b"abc"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"
    assert parse_http_response(chunked) == b"abcd"
    with pytest.raises(TrackerError, match="404"):
        parse_http_response(b"HTTP/1.0 404 Not Found\r\n\r\n")


def test_open_tracker_announce_scrape_and_expiry():
    tracker = OpenTracker(interval=100)
    a, b = PrivateKeys.generate().destination, PrivateKeys.generate().destination
    info_hash = hashlib.sha1(b"t").digest()
    q = urllib.parse.quote_from_bytes(info_hash)

    def get(target: str, peer, now=0.0):
        status, body = tracker.handle(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), peer, now)
        return status, bdecode(body)

    status, body = get(f"/announce?info_hash={q}&left=0&compact=1&event=started", a)
    assert status == 200 and body[b"peers"] == b"" and body[b"complete"] == 1
    status, body = get(f"/announce?info_hash={q}&left=10&compact=1&ip=forged.i2p", b)
    assert body[b"peers"] == a.hash and body[b"incomplete"] == 1          # the stream's sender, not ip=
    _, body = get(f"/announce?info_hash={q}&left=10", a)
    assert body[b"peers"][0][b"ip"] == (b.b64 + ".i2p").encode()
    _, body = get(f"/announce?info_hash={q}&left=0&event=completed", b)
    _, body = get(f"/scrape?info_hash={q}", a)
    assert body[b"files"][info_hash] == {b"complete": 1, b"incomplete": 1, b"downloaded": 1}   # a said left=10
    assert parse_scrape_reply(tracker.scrape([info_hash]))[info_hash]["downloaded"] == 1
    assert get("/announce?info_hash=short", a)[0] == 400
    assert get("/other", a)[0] == 404
    _, body = get(f"/announce?info_hash={q}&left=0&event=stopped", b)
    tracker.expire(now=1000)
    assert tracker.swarms == {}


def test_open_tracker_bounds():
    tracker = OpenTracker(max_torrents=1, max_peers=1)
    a, b = PrivateKeys.generate().destination, PrivateKeys.generate().destination
    ok = tracker.announce(b"1" * 20, a, {}, 0)
    assert b"failure" not in ok
    assert b"tracker full" in tracker.announce(b"2" * 20, a, {}, 0)
    assert b"swarm full" in tracker.announce(b"1" * 20, b, {}, 0)
