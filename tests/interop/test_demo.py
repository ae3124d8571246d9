"""`pyi2p testnet up --demo` as a newcomer uses it: from this host's own 127.0.0.1 (through the port bridges),
the web site through the printed proxy with curl, mail with smtplib and poplib, IRC, the torrent with the
node's own client; then `down` leaves no process, namespace or port behind."""
from __future__ import annotations

import filecmp
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

from pyi2p.demo import ACCOUNTS, CHANNEL, SITE_MARKER, TORRENT_NAME, ngircd_binary
from pyi2p.testnet import netns_exists

pytestmark = pytest.mark.interop

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


def test_demo_network_from_the_host(testnet_requirements, tmp_path):
    base = tmp_path / "demo"
    netns = f"pyi2p-d{os.getpid()}"
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
        assert got.returncode == 0, got.stdout[-500:] + got.stderr[-500:]
        print(f"torrent downloaded in {time.monotonic() - t0:.1f} s")
        for name in ("README.txt", "random.bin"):
            assert filecmp.cmp(base / "p1" / "torrent" / "downloads" / TORRENT_NAME / name,
                               base / "p2" / "torrent" / "downloads" / TORRENT_NAME / name, shallow=False)
    finally:
        down = _pyi2p("testnet", "down", "--base", str(base), timeout=120)
    assert down.returncode == 0, down.stderr
    assert not netns_exists(netns)
    assert _our_processes(base) == []
    for port in (proxy, irc, smtp, pop3):
        assert not _listening(port), f"127.0.0.1:{port} still answers"
    assert not list((base / "bridge").glob("*.sock"))
