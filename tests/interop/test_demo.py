"""`pyi2p testnet up --demo` as a newcomer uses it: from this host's own 127.0.0.1 (through the port bridges),
the web site through the printed proxy with curl, mail with smtplib and poplib, IRC, the torrent with the
node's own client; then `down` leaves no process, namespace or port behind."""
from __future__ import annotations

import filecmp
import importlib
import logging
import os
import poplib
import re
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from apps.naming.book import AddressBook
from apps.tunnels.config import load_tunnels
from apps.torrent.metainfo import Metainfo
from core.config import load_config, read_sections
from core.data.privatekeys import PrivateKeys
from pyi2p.demo import ACCOUNTS, CHANNEL, NAMES, SITE_MARKER, TORRENT_NAME, Demo, DemoPorts, ngircd_binary
from pyi2p.node import APPS
from pyi2p.testnet import Testnet, TestnetError, netns_exists, private_netns_name

WAIT_S = 240                          # `up --demo` on a fresh base: about 30 s on a 2-core machine
DEFAULT_PORTS = (4444, 6668, 7659, 7660)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> tuple[int, ...]:
    """The defaults when this host has them free (as a user would), else free ones."""
    if all(_free(p) for p in DEFAULT_PORTS):
        return DEFAULT_PORTS
    found: list[int] = []
    for _ in range(len(DEFAULT_PORTS)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            found.append(s.getsockname()[1])
    return tuple(found)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


def _pyi2p(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyi2p", *args], capture_output=True, text=True, timeout=timeout)


def _retry(what: str, attempt, timeout: float, pause: float = 3.0):
    """A fresh client tunnel may drop its first connection while its router looks the service up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except (OSError, smtplib.SMTPException, poplib.error_proto, AssertionError) as exc:
            if time.monotonic() + pause >= deadline:
                raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from None
            time.sleep(pause)


def _our_processes(base: Path) -> list[str]:
    """Command lines that mention the demo's folder: every process it started does."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").replace("\0", " ")
        except OSError:
            continue
        if str(base) in argv:
            found.append(f"{pid}: {argv[:120]}")
    return found


@pytest.mark.interop
def test_demo_network_from_the_host(testnet_requirements, tmp_path):
    base = tmp_path / "demo"
    netns = private_netns_name("d")
    proxy, irc, smtp, pop3 = _ports()
    started = time.monotonic()
    up = _pyi2p("testnet", "up", "--demo", "--base", str(base), "--netns", netns, "--first-port", "32000",
                "--wait", str(WAIT_S), "--demo-ports", f"{proxy},{irc},{smtp},{pop3}", timeout=WAIT_S + 120)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        print(f"\nup --demo: ready after {time.monotonic() - started:.1f} s")
        lines = up.stdout.splitlines()
        assert lines[-1] == "ready", up.stdout[-1500:]
        # what it prints for the user's shell, and nothing that needs `ip netns exec`
        curl_line = next(line for line in lines if "curl -x" in line)
        printed_proxy = re.search(r"curl -x (http://127\.0\.0\.1:\d+) http://demo\.i2p/", curl_line).group(1)
        assert printed_proxy == f"http://127.0.0.1:{proxy}"
        for text in (f"SMTP 127.0.0.1:{smtp}", f"POP3 127.0.0.1:{pop3}", "pyi2p tui --datadir",
                     "alice@mail.demo.i2p", "tracker.demo.i2p"):
            assert text in up.stdout, text
        assert "ip netns exec" not in up.stdout.split("The demo network runs")[1]

        # the web site, with curl through the printed proxy on this host's 127.0.0.1
        t0 = time.monotonic()
        page = subprocess.run(["curl", "-s", "-m", "60", "-x", printed_proxy, "http://demo.i2p/"],
                              capture_output=True, text=True, timeout=90).stdout
        print(f"first page through the proxy: {time.monotonic() - t0:.2f} s")
        assert SITE_MARKER in page, page[:300]
        picture = subprocess.run(["curl", "-s", "-m", "60", "-x", printed_proxy, "http://demo.i2p/i2p.png"],
                                 capture_output=True, timeout=90).stdout
        assert picture.startswith(b"\x89PNG\r\n\x1a\n") and len(picture) > 1000

        # mail: alice sends to bob through the mail host (SMTP client tunnel), bob reads it (POP3 tunnel)
        subject = f"hello from the demo test {uuid.uuid4().hex[:8]}"

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", smtp, timeout=60) as client:
                client.login("alice", ACCOUNTS["alice"])
                client.sendmail("alice@mail.demo.i2p", ["bob@mail.demo.i2p"],
                                f"From: alice@mail.demo.i2p\r\nTo: bob@mail.demo.i2p\r\nSubject: {subject}\r\n\r\n"
                                "Hi Bob, this went over I2P.\r\n")
        _retry("SMTP through the client tunnel", send, 120)

        def read() -> bytes:
            box = poplib.POP3("127.0.0.1", pop3, timeout=60)
            try:
                box.user("bob")
                box.pass_(ACCOUNTS["bob"])
                count, _ = box.stat()
                messages = [b"\r\n".join(box.retr(i)[1]) for i in range(1, count + 1)]
            finally:
                box.quit()
            found = [m for m in messages if subject.encode() in m]
            assert found, f"{count} messages, none with the subject"
            return found[0]
        message = _retry("POP3 through the client tunnel", read, 120)
        assert b"Hi Bob, this went over I2P." in message and b"From: alice@mail.demo.i2p" in message

        # IRC through the ircclient tunnel to ngircd behind the irc server tunnel
        if ngircd_binary() is not None:
            def join() -> str:
                with socket.create_connection(("127.0.0.1", irc), timeout=60) as s:
                    s.sendall(f"NICK newcomer\r\nUSER newcomer 0 * :demo test\r\nJOIN {CHANNEL}\r\n".encode())
                    seen = b""
                    deadline = time.monotonic() + 60
                    while f" 366 newcomer {CHANNEL} ".encode() not in seen:
                        assert time.monotonic() < deadline, seen[-300:]
                        chunk = s.recv(4096)
                        assert chunk, f"closed; got {seen[-300:]!r}"
                        seen += chunk
                    s.sendall(b"QUIT\r\n")
                    return seen.decode("utf-8", "replace")
            joined = _retry("IRC through the client tunnel", join, 120)
            assert f"JOIN {CHANNEL}" in joined and "332 newcomer" in joined     # the channel's topic
        else:
            assert "ngircd is not installed" in up.stdout

        # the torrent, with the node's own client over I2PControl (the bridged control port)
        torrent = base / "demo" / f"{TORRENT_NAME}.torrent"
        t0 = time.monotonic()
        got = _pyi2p("torrent", "add", str(torrent), "--datadir", str(base / "p2"), "--wait", timeout=240)
        assert (got.returncode, got.stderr) == (0, ""), got.stdout[-500:] + got.stderr[-500:]
        print(f"torrent downloaded in {time.monotonic() - t0:.1f} s")
        for name in ("README.txt", "random.bin"):
            assert filecmp.cmp(base / "p1" / "torrent" / "downloads" / TORRENT_NAME / name,
                               base / "p2" / "torrent" / "downloads" / TORRENT_NAME / name, shallow=False)

        # the commands that talk to a running node print nothing on stderr either
        user = str(base / "p2")
        for args in (("status", "--datadir", user), ("torrent", "list", "--datadir", user),
                     ("naming", "--datadir", user, "lookup", "irc.demo.i2p"), ("testnet", "status", "--base", str(base))):
            result = _pyi2p(*args, timeout=60)
            assert result.stderr == "" and result.stdout, args
            assert result.returncode == 0 or args[0] == "testnet", args   # testnet status: 1 while an i2pd rebuilds
    finally:
        down = _pyi2p("testnet", "down", "--base", str(base), timeout=120)
    assert down.returncode == 0, down.stderr
    assert not netns_exists(netns)
    assert _our_processes(base) == []
    for port in (proxy, irc, smtp, pop3):
        assert not _listening(port), f"127.0.0.1:{port} still answers"
    assert not list((base / "bridge").glob("*.sock"))


# ---------------------------------------------------------------- the demo's files, without a network

def test_demo_files_give_each_node_what_its_apps_accept(tmp_path, caplog):
    net = Testnet(tmp_path, i2pd_count=2, pyi2p_count=2, first_port=30000)
    demo = Demo(net, DemoPorts(5444, 5668, 5659, 5660))
    demo.prepare()
    net._write_files()                            # what `up` adds: netid, and apps off where no table is
    host, user = Path(net.router("p1").datadir), Path(net.router("p2").datadir)
    for datadir, router in ((host, net.router("p1")), (user, net.router("p2"))):
        config = load_config(datadir)
        assert (config.port, config.control_port, config.netid, config.sam_udp_port) == \
            (router.port, router.i2pcontrol, 42, 0)
        assert config.sam_port not in (router.port, router.i2pcontrol)
        sections = read_sections(datadir)
        assert set(sections) == {"naming", "tunnels", "proxy", "mail", "torrent"}
        with caplog.at_level(logging.WARNING):
            for spec in APPS:
                options = {k: v for k, v in sections[spec.name].items() if k != "enabled"}
                factory = getattr(importlib.import_module(spec.module), spec.factory)
                factory(options, datadir, None)   # validates its table: a bad value raises
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        tunnels = load_tunnels(datadir / "tunnels.conf")
        assert not tunnels.problems, tunnels.problems
    assert read_sections(user)["proxy"]["port"] == 5444 and read_sections(user)["mail"]["enabled"] is False
    assert read_sections(host)["mail"]["server"] is True and read_sections(host)["torrent"]["tracker"] is True
    client = {t.name: t for t in load_tunnels(user / "tunnels.conf").tunnels}
    assert (client["demo-smtp"].port, client["demo-pop3"].port) == (5659, 5660)

    # every name is the destination of the key file its service will load, in both nodes' books
    keys = {"demo.i2p": host / "demo-site.dat", "irc.demo.i2p": host / "demo-ircd.dat",
            "mail.demo.i2p": host / "mail" / "destination.keys", "tracker.demo.i2p": host / "torrent" / "tracker.keys"}
    assert set(keys) == set(NAMES)
    for datadir in (host, user):
        book = AddressBook(datadir / "addressbook")
        for name, path in keys.items():
            assert book.lookup(name) == PrivateKeys.load(path).destination, (datadir, name)
            assert path.stat().st_mode & 0o777 == 0o600
    publish = PrivateKeys.load(host / "addressbook" / "publish.keys").destination.b32_address
    assert (user / "addressbook" / "subscriptions.txt").read_text().splitlines()[-1] == \
        f"http://{publish}/hosts.txt"

    meta = Metainfo.parse(demo.torrent_file.read_bytes())
    assert meta.announce == "http://tracker.demo.i2p/announce"
    assert (host / "torrent" / "torrents" / f"{meta.info_hash.hex()}.torrent").read_bytes() == meta.to_bytes()
    assert (net.base / "demo" / "site" / "i2p.png").read_bytes().startswith(b"\x89PNG")
    assert SITE_MARKER in (net.base / "demo" / "site" / "index.html").read_text()

    # a second `up` keeps identities, accounts and the torrent
    before = {p: p.read_bytes() for p in [*keys.values(), demo.torrent_file, host / "mail" / "accounts.json"]}
    Demo(net, DemoPorts(5444, 5668, 5659, 5660)).prepare()
    assert {p: p.read_bytes() for p in before} == before


def test_demo_needs_two_pyi2p_nodes_and_four_ports(tmp_path):
    with pytest.raises(TestnetError, match="two pyi2p routers"):
        Demo(Testnet(tmp_path, i2pd_count=2, pyi2p_count=1))
    assert DemoPorts.parse("1,2,3,4") == DemoPorts(1, 2, 3, 4)
    for bad in ("4444,6668,7659", "4444,6668,7659,x", "4444,6668,7659,70000"):
        with pytest.raises(TestnetError, match="--demo-ports"):
            DemoPorts.parse(bad)
