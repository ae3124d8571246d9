"""The I2P DHT: KRPC codec and node state (fake clock), and a magnet with no tracker between pyi2p nodes:
the seeder announces into the DHT through a third node, the downloader finds it there and fetches the
metadata (ut_metadata) and the files."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.dht import (DhtState, KrpcError, KrpcMessage, NodeInfo, node_id_is_secure, parse_nodes,
                              secure_node_id)
from apps.torrent.metainfo import MagnetLink, create_torrent
from core.client import ClientAPI
from core.clock import FakeClock
from core.data.errors import ProtocolError

from .test_swarm import digests, make_files, wait_until


def test_secure_node_id_and_node_info():
    rng = random.Random(1)
    h = bytes(range(32))
    nid = secure_node_id(h, 0x1234, rng)
    assert nid[:4] == h[:4] and nid[4:6] == bytes([4 ^ 0x12, 5 ^ 0x34]) and len(nid) == 20
    assert node_id_is_secure(nid, h, 0x1234) and not node_id_is_secure(nid, h, 0x1235)
    info = NodeInfo(nid, h, 0x1234)
    assert len(info.to_bytes()) == 54 and NodeInfo.parse(info.to_bytes()).to_bytes() == info.to_bytes()
    assert [n.dest_hash for n in parse_nodes(info.to_bytes() * 2)] == [h, h]
    with pytest.raises(KrpcError):
        parse_nodes(b"x" * 53)


def test_krpc_round_trip_and_refusals():
    q = KrpcMessage("q", b"ab", "get_peers", {b"id": b"i" * 20, b"info_hash": b"h" * 20})
    assert KrpcMessage.parse(q.to_bytes()) == q
    r = KrpcMessage("r", b"ab", body={b"id": b"j" * 20, b"values": [b"p" * 32]})
    assert KrpcMessage.parse(r.to_bytes()) == r
    e = KrpcMessage("e", b"ab", error=(201, "generic"))
    assert KrpcMessage.parse(e.to_bytes()) == e
    for bad in (b"de", b"d1:t2:ab1:y1:qe", b"d1:ad2:id3:shorte1:q4:ping1:t2:ab1:y1:qe", b"x" * 20000):
        with pytest.raises(KrpcError):
            KrpcMessage.parse(bad)


@given(st.binary(max_size=200))
def test_fuzzed_krpc_raises_only_protocol_errors(data):
    try:
        KrpcMessage.parse(data)
    except ProtocolError:
        pass


def test_state_answers_tokens_and_announces():
    clock = FakeClock()
    rng = random.Random(2)
    state = DhtState(b"\x01" * 32, 7000, now=clock.monotonic, rng=rng)
    asker = state.heard_from(NodeInfo(secure_node_id(b"\x02" * 32, 7100, rng), b"\x02" * 32, 7100))
    other = NodeInfo(secure_node_id(b"\x03" * 32, 7200, rng), b"\x03" * 32, 7200)
    state.heard_about(other)
    state.heard_about(NodeInfo(b"\x00" * 20, b"\x04" * 32, 7300))        # insecure id: not kept
    assert set(state.nodes) == {b"\x02" * 32, b"\x03" * 32}
    ih = b"h" * 20
    reply, to = state.answer(KrpcMessage("q", b"t1", "get_peers", {b"id": asker.node_id, b"info_hash": ih}), asker)
    assert to is asker and NodeInfo.parse(reply.body[b"nodes"]).dest_hash == b"\x03" * 32
    token = reply.body[b"token"]
    # announce_peer comes unsigned: the token says who it is
    reply, to = state.answer(KrpcMessage("q", b"t2", "announce_peer", {b"id": asker.node_id, b"info_hash": ih,
                                                                        b"token": token, b"port": 6881}), None)
    assert to is asker and state.get_peers(ih) == [b"\x02" * 32]
    reply, _ = state.answer(KrpcMessage("q", b"t3", "get_peers", {b"id": other.node_id, b"info_hash": ih}), other)
    assert reply.body[b"values"] == [b"\x02" * 32]
    assert state.answer(KrpcMessage("q", b"t4", "announce_peer", {b"id": other.node_id, b"info_hash": ih,
                                                                   b"token": b"forged"}), None) is None
    assert state.answer(KrpcMessage("q", b"t5", "ping", {b"id": other.node_id}), None) is None   # unsigned
    assert state.answer(KrpcMessage("q", b"t6", "vote", {b"id": other.node_id}), other)[0].error[0] == 204
    clock.mono += 11 * 60
    assert state.token_owner(token) is None                               # tokens live 10 minutes
    clock.mono += 60 * 60
    assert state.get_peers(ih) == []


@pytest.fixture
async def network():
    net = InProcessNetwork(ClientAPI())
    yield net
    await net.close()


async def test_magnet_without_tracker_through_the_dht(network, tmp_path):
    hub = TorrentService({"download_dir": str(tmp_path / "hub")}, tmp_path / "c", network)
    await hub.start()
    boot = [f"{hub.session.b32}:{hub.dht.port}"]
    seeder = TorrentService({"download_dir": str(tmp_path / "seed"), "dht_bootstrap": boot}, tmp_path / "a", network)
    leecher = TorrentService({"download_dir": str(tmp_path / "get"), "dht_bootstrap": boot}, tmp_path / "b", network)
    await seeder.start()
    await leecher.start()
    try:
        share = tmp_path / "seed" / "share"
        make_files(share, [90_000, 33_000], seed=5)
        meta = create_torrent(share)                    # no tracker anywhere
        await seeder.add_torrent(meta)
        await wait_until(lambda: hub.dht.state.get_peers(meta.info_hash), 30, f"announce: {hub.status()}")
        torrent = await leecher.add_torrent(magnet=MagnetLink(meta.info_hash))
        await wait_until(lambda: torrent.state == "seeding", 60, f"download: {torrent.status()} {leecher.status()}")
        assert digests(tmp_path / "get" / "share") == digests(share)
        assert leecher.status()["dht"]["nodes"] >= 1 and torrent.status()["trackers"] == {}
    finally:
        for service in (leecher, seeder, hub):
            await service.stop()
    # the DHT port and nodes are kept for the next start
    again = TorrentService({}, tmp_path / "b", network)
    await again.start()
    try:
        assert again.dht.port == leecher_port(tmp_path / "b")
    finally:
        await again.stop()


def leecher_port(datadir):
    from apps.torrent.bencode import bdecode
    return bdecode((datadir / "torrent" / "dht.dat").read_bytes())[b"port"]
