"""libtorrent 2.1 over I2P: two libtorrent sessions, each on the SAM bridge of its own pyi2p router, exchange a
small torrent. They find each other through an HTTP tracker hosted on an I2P destination of a third router
(the floodfill publishes no LeaseSet of its own here, so the tracker lives on a relay)
(libtorrent takes I2P peers from trackers: 32-byte destination hashes in a compact "peers" string)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import urllib.parse

import pytest

from core.client import open_stream_session
from core.config import load_config
from core.data.identity import Destination
from core.router import Router
from tests.client.routers import SETTINGS, ClientRouter, free_port, start_network, wait_for

lt = pytest.importorskip("libtorrent", reason="libtorrent (PyPI libtorrent 2.1) is not installed")

TUNNELS = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "1", "outbound.quantity": "1"}
PIECE = 16 * 1024
CONTENT = os.urandom(5 * PIECE + 1234)


def _sam_router(tmp_path, name: str, floodfill: bool = False, sam: bool = True) -> tuple[ClientRouter, int]:
    sam_port = free_port() if sam else 0
    config = load_config(tmp_path / "routers" / name, {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                           "floodfill": floodfill, "control_port": 0, "sam_port": sam_port,
                                           "sam_udp_port": 0})
    return ClientRouter(Router(config, tunnel_settings=SETTINGS)), sam_port


class I2PTracker:
    """A minimal HTTP tracker on an I2P destination: announces carry ip=<base64 destination>.i2p."""

    def __init__(self) -> None:
        self.swarms: dict[bytes, set[bytes]] = {}
        self.announces = 0

    async def handle(self, reader, writer) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            target = head.split(b" ", 2)[1].decode()
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query, encoding="latin-1")
            info_hash = query["info_hash"][0].encode("latin-1")
            announcer = Destination.from_b64(query["ip"][0].removesuffix(".i2p"))
            swarm = self.swarms.setdefault(info_hash, set())
            swarm.add(announcer.hash)
            self.announces += 1
            peers = b"".join(h for h in sorted(swarm) if h != announcer.hash)
            body = lt.bencode({"interval": 5, "min interval": 1, "peers": peers})
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        finally:
            writer.close()


def _session(sam_port: int, listen_port: int) -> "lt.session":
    settings = {
        "i2p_hostname": "127.0.0.1", "i2p_port": sam_port, "proxy_type": lt.proxy_type_t.i2p_proxy,
        "allow_i2p_mixed": False, "i2p_inbound_length": 1, "i2p_outbound_length": 1,
        "i2p_inbound_quantity": 1, "i2p_outbound_quantity": 1,
        "listen_interfaces": f"127.0.0.1:{listen_port}", "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "announce_to_all_trackers": True,
        "alert_mask": lt.alert_category.error | lt.alert_category.status | lt.alert_category.tracker,
    }
    return lt.session(lt.session_params(settings))


async def drop_sessions(sessions: list) -> None:
    """Stops libtorrent sessions: paused here, their last references dropped in a worker thread. libtorrent's
    session destructor waits for its SAM connections, which our bridge on this event loop must answer: dropped
    on the loop's own thread it can hold the loop for good. The caller keeps no other reference."""
    for session in sessions:
        session.pause()
    await asyncio.wait_for(asyncio.to_thread(sessions.clear), 60)


def _torrent(tmp_path, tracker_url: str) -> "lt.torrent_info":
    source = tmp_path / "seed"
    source.mkdir()
    (source / "payload.bin").write_bytes(CONTENT)
    creator = lt.create_torrent(lt.list_files(str(source / "payload.bin")), PIECE)
    creator.add_tracker(tracker_url)
    lt.set_piece_hashes(creator, str(source))
    return lt.torrent_info(lt.bencode(creator.generate()))


def _params(info: "lt.torrent_info", save_path) -> "lt.add_torrent_params":
    params = lt.add_torrent_params()
    params.ti, params.save_path = info, str(save_path)
    return params


async def test_libtorrent_sessions_exchange_a_torrent(tmp_path):
    floodfill, _ = _sam_router(tmp_path, "ff", floodfill=True, sam=False)
    (seed_node, seed_sam), (leech_node, leech_sam) = _sam_router(tmp_path, "seed"), _sam_router(tmp_path, "leech")
    relays = [_sam_router(tmp_path, f"relay{i}", sam=False)[0] for i in range(2)]
    nodes = [floodfill, *relays, seed_node, leech_node]
    sessions = []
    tracker_streams = None
    try:
        await start_network(nodes)
        tracker = I2PTracker()
        tracker_session = await relays[0].api.open_session(options=TUNNELS, name="tracker")
        await asyncio.wait_for(tracker_session.wait_published(), 60)
        tracker_streams = open_stream_session(tracker_session)
        await tracker_streams.start_server(tracker.handle)
        info = _torrent(tmp_path, f"http://{tracker_session.b32_address}/announce")

        seeder = _session(seed_sam, free_port())
        leecher = _session(leech_sam, free_port())
        sessions = [seeder, leecher]
        seeding = seeder.add_torrent(_params(info, tmp_path / "seed"))
        leeching = leecher.add_torrent(_params(lt.torrent_info(info), tmp_path / "leech"))

        alerts: list[str] = []

        def done() -> bool:
            for session in sessions:
                alerts.extend(f"{type(a).__name__}: {a.message()}" for a in session.pop_alerts())
            return leeching.status().is_seeding

        try:
            await wait_for(done, 120, interval=0.25)
        except TimeoutError:
            pytest.fail(f"no transfer: seeder {seeding.status().state} peers {seeding.status().num_peers}, "
                        f"leecher {leeching.status().state} {leeching.status().progress:.2f}, tracker announces "
                        f"{tracker.announces}; alerts: {alerts[-30:]}")
        assert hashlib.sha256((tmp_path / "leech" / "payload.bin").read_bytes()).digest() == \
            hashlib.sha256(CONTENT).digest()
        assert tracker.announces >= 2
        assert seeding.status().total_payload_upload >= len(CONTENT)   # the seeder sent it, not a cache
        # any peer still connected came over I2P (libtorrent flags its SAM streams)
        assert all(peer.flags & lt.peer_info.i2p_socket for peer in leeching.get_peer_info())
    finally:
        seeder = leecher = None
        await drop_sessions(sessions)
        if tracker_streams is not None:
            await tracker_streams.close()
        for node in reversed(nodes):
            await node.stop()
