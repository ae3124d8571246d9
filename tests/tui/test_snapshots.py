"""Snapshots of the main tabs (pytest-textual-snapshot; `--snapshot-update` rewrites them after a deliberate
change). A fixed node's answers come from an injected client and the clock is fixed, so every run draws the
same screen; the real node drives the same tabs in test_screens.py."""
from __future__ import annotations

import pytest

from tui.app import ConsoleApp
from tui.client import NotConnected

pytest.importorskip("pytest_textual_snapshot", reason="pip install pytest-textual-snapshot (the test extras)")

NOW = 1_780_000_000.0
B32 = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstu.b32.i2p"
SITE = "sitesitesitesitesitesitesitesitesitesitesitesitesite.b32.i2p"
ANSWERS = {
    "pyi2p.Summary": {"RouterHash": "Rk9PQkFSQkFaUVVYRk9PQkFSQkFaUVVYRk9PQkFSQkE=", "Version": "0.9.66", "Uptime": 3_723_000,
                      "Status": "OK", "NetStatusName": "OK", "KnownRouters": 4211, "Floodfills": 612, "LeaseSets": 87,
                      "ActivePeers": 42, "Peers": {"NTCP2": 42}, "OurTunnels": {"inbound": 6, "outbound": 6},
                      "ParticipatingTunnels": 133, "BuildSuccessRatio": 0.71,
                      "Bandwidth": {"Inbound1s": 153_600, "Outbound1s": 98_304, "Inbound15s": 140_000,
                                    "Outbound15s": 90_000}},
    "pyi2p.Services.List": {"Services": [
        {"name": "naming", "state": "running"},
        {"name": "tunnels", "state": "running", "listen": {"irc": "127.0.0.1:6668"}},
        {"name": "proxy", "state": "running", "listen": {"HTTP": "127.0.0.1:4444", "SOCKS": "127.0.0.1:4447"},
         "b32": B32},
        {"name": "mail", "state": "running", "listen": {"SMTP": "127.0.0.1:7659", "POP3": "127.0.0.1:7660"}, "b32": B32},
        {"name": "torrent", "state": "failed", "error": "download_dir /nowhere: not writable"}]},
    "pyi2p.Tunnels.List": [
        {"name": "irc", "type": "ircclient", "state": "running", "listening": "127.0.0.1:6668",
         "destination": "irc.postman.i2p:6667", "connections_open": 1, "connections_total": 3, "bytes_in": 20480,
         "bytes_out": 4096},
        {"name": "web", "type": "http", "state": "running", "target": "127.0.0.1:8080", "b32": SITE,
         "connections_open": 0, "connections_total": 12, "bytes_in": 3000, "bytes_out": 1_500_000}],
    "pyi2p.Proxy.Status": {"http": "127.0.0.1:4444", "socks": "127.0.0.1:4447", "b32": B32, "outproxy": [],
                           "requests": 120, "errors": 3},
    "pyi2p.AddressBook.List": {"total": 2, "entries": [
        {"name": "site.i2p", "book": "local", "b32": SITE, "source": "control", "destination": None},
        {"name": "stats.i2p", "book": "router", "b32": B32, "source": "http://feed.i2p/hosts.txt"}]},
    "pyi2p.AddressBook.Subscriptions": [{"url": "http://feed.i2p/hosts.txt", "result": "200: 2 names added",
                                         "last_success": NOW - 3600, "failures": 0, "total_added": 2}],
    "pyi2p.Mail.Address": {"addresses": [f"alice@{B32}"]},
    "pyi2p.Mail.Inbox": [{"id": "1", "from": f"bob@{SITE}", "subject": "hello", "date": "Sun, 06 Dec 2026 08:00:00",
                          "size": 1200}],
    "pyi2p.Mail.Queue": [{"id": "q1", "recipients": [f"carol@{SITE}"], "sender": f"alice@{B32}", "attempts": 2,
                          "next_try": NOW + 600, "last_error": "no LeaseSet for the destination"}],
    "pyi2p.Torrent.List": {"torrents": [
        {"info_hash": "aa" * 20, "name": "debian.iso", "state": "downloading", "progress": 0.42, "size": 650 << 20,
         "down_rate": 81920, "up_rate": 10240, "eta": 4900, "peers": 3, "known_peers": 9, "pieces": 2600,
         "trackers": {}, "download_dir": "/data/torrents"},
        {"info_hash": "bb" * 20, "name": "notes.txt", "state": "seeding", "progress": 1.0, "size": 4096,
         "down_rate": 0, "up_rate": 0, "eta": None, "peers": 0, "known_peers": 1}]},
    "pyi2p.Settings.Get": {"file": "/home/me/.pyi2p/config.toml", "sections": {"proxy": {"port": 4444}},
                           "settings": [{"key": "bandwidth", "value": "O", "applies": "now"},
                                        {"key": "floodfill", "value": "false", "applies": "now"},
                                        {"key": "port", "value": "24680", "applies": "restart"}]},
}


class FixedNode:
    """Canned answers of a node, for drawing only."""

    where = "http://127.0.0.1:7650"

    async def call(self, method, params=None, *, timeout_s=None):
        return ANSWERS[method]


def app() -> ConsoleApp:
    console = ConsoleApp(FixedNode(), refresh_s=3600, clock=False, now=lambda: NOW)
    for i in range(150):         # a history for the plots: five minutes of made-up traffic
        console.bw_in.append(20_000 + (i * 7919) % 150_000)
        console.bw_out.append(10_000 + (i * 104_729) % 90_000)
    return console


@pytest.mark.parametrize("key", ["o", "s", "a", "m", "b", "c"])
def test_main_tabs(snap_compare, key):
    assert snap_compare(app(), press=[key, "_", "_"], terminal_size=(140, 40))


class NoNode:
    where = "/home/me/.pyi2p"

    async def call(self, method, params=None, *, timeout_s=None):
        raise NotConnected("no router is listening on http://127.0.0.1:7650/jsonrpc (connection refused)")


def test_no_node(snap_compare):
    assert snap_compare(ConsoleApp(NoNode(), refresh_s=3600, clock=False, now=lambda: NOW), press=["_"],
                        terminal_size=(100, 24))


def test_tunnel_form(snap_compare):
    assert snap_compare(app(), press=["s", "_", "plus", "_"], terminal_size=(140, 40))
