"""`pyi2p testnet up --demo`: the private testnet plus two pyi2p nodes with things to use on it.

p1 hosts the demo services: a small web site (demo.i2p, an `http` server tunnel to a local web server),
an ircd (irc.demo.i2p: Debian's ngircd behind an `irc` server tunnel), a mail host with the mailboxes
alice and bob (mail.demo.i2p), the built-in tracker (tracker.demo.i2p) seeding a small torrent, and the
address book naming them all, published as a subscription feed.
p2 is the user's node: the HTTP proxy, an `ircclient` tunnel on 6668, client tunnels to the mail host's
SMTP and POP3, its torrent client and I2PControl, its address book holding the names and subscribed to
p1's feed. Their ports are carried to the host's own 127.0.0.1 through Unix sockets (pyi2p.portbridge),
so a browser, an IRC or a mail program works without `ip netns exec`.
"""
from __future__ import annotations

import http.client
import json
import random
import re
import secrets
import shutil
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from apps.mail.service import KEYS_FILE as MAIL_KEYS, MAIL_DIR
from apps.mail.store import Accounts
from apps.naming.book import AddressBook
from apps.naming.service import FOLDER as BOOK_DIR, PUBLISH_KEYS
from apps.naming.subscriptions import write_list
from apps.torrent.metainfo import create_torrent
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.fsutil import atomic_write, atomic_write_text

from .testnet import DEFAULT_BASE, Router, Testnet, TestnetError, log

HOST = "p1"                           # the services
USER = "p2"                           # the user's node
SITE_PORT = 8080                      # inside the namespace: the web server behind demo.i2p
IRCD_PORT = 6667                      # inside the namespace: ngircd behind irc.demo.i2p
CHANNEL = "#demo"
ACCOUNTS = {"alice": "alice-demo", "bob": "bob-demo"}
NAMES = ("demo.i2p", "irc.demo.i2p", "mail.demo.i2p", "tracker.demo.i2p")
TORRENT_NAME = "pyi2p-demo"
SITE_MARKER = "Welcome to demo.i2p"
HOPS = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "2", "outbound.quantity": "2"}


def ngircd_binary() -> str | None:
    found = shutil.which("ngircd")
    return found or ("/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").is_file() else None)


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """Where the user's programs connect: the same numbers inside the namespace and on the host."""

    proxy: int = 4444
    irc: int = 6668
    smtp: int = 7659
    pop3: int = 7660

    @classmethod
    def parse(cls, text: str) -> DemoPorts:
        parts = text.split(",")
        if len(parts) != 4 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
            raise TestnetError(f"--demo-ports {text!r}: give PROXY,IRC,SMTP,POP3, e.g. 4444,6668,7659,7660")
        return cls(*(int(p) for p in parts))


class Demo:
    """The demo's files and processes on a Testnet whose first two pyi2p routers are p1 and p2."""

    def __init__(self, net: Testnet, ports: DemoPorts = DemoPorts()):
        if len(net.pyi2p_routers) < 2:
            raise TestnetError("the demo needs two pyi2p routers (p1 hosts the services, p2 is yours)")
        self.net, self.ports = net, ports
        self.host: Router = net.router(HOST)
        self.user: Router = net.router(USER)
        self.folder = net.base / "demo"
        self.ircd = ngircd_binary()

    @property
    def torrent_file(self) -> Path:
        return self.folder / f"{TORRENT_NAME}.torrent"

    @property
    def bridge_dir(self) -> Path:
        return self.net.base / "bridge"

    def bridges(self) -> list[tuple[int, Path]]:
        p = self.ports
        pairs = [(p.proxy, "proxy"), (p.smtp, "smtp"), (p.pop3, "pop3"), (self.user.i2pcontrol, "control")]
        if self.ircd:
            pairs.append((p.irc, "irc"))
        return [(port, self.bridge_dir / f"{name}.sock") for port, name in pairs]

    # ----- files, before the routers start

    def prepare(self) -> None:
        """Keys, configs, site, ircd config, mailboxes, torrent and books; what exists is kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.bridge_dir.mkdir(mode=0o700, exist_ok=True)
        host, user = Path(self.host.datadir), Path(self.user.datadir)
        for d in (host, user, host / MAIL_DIR, host / "torrent", host / BOOK_DIR):
            d.mkdir(parents=True, exist_ok=True)
        dests = {"demo.i2p": _keys(host / "demo-site.dat"), "irc.demo.i2p": _keys(host / "demo-ircd.dat"),
                 "mail.demo.i2p": _keys(host / MAIL_DIR / MAIL_KEYS),
                 "tracker.demo.i2p": _keys(host / "torrent" / "tracker.keys")}
        feed = f"http://{_keys(host / BOOK_DIR / PUBLISH_KEYS).b32_address}/hosts.txt"
        self._write_host_config(host)
        self._write_user_config(user, feed)
        self._write_site()
        if self.ircd:
            self._write_ircd_config()
        accounts = Accounts(host / MAIL_DIR)
        for name, password in ACCOUNTS.items():
            if name not in accounts:
                accounts.add(name, password)
        for datadir, book in ((host, "local"), (user, "router")):
            names = AddressBook(datadir / BOOK_DIR)
            for name, dest in dests.items():
                names.add(name, dest, book=book, source="demo")
        write_list(user / BOOK_DIR, [feed])
        self._write_torrent(host)

    def _write_host_config(self, host: Path) -> None:
        r = self.host
        atomic_write_text(host / "config.toml", _toml_head(r) + f"""
[naming]
subscribe = false
publish = true
session_options = {_inline(HOPS)}

[tunnels]

[proxy]
enabled = false

[mail]
server = true
smtp_port = 0
pop3_port = 0
domain = ["mail.demo.i2p"]
options = {_inline(HOPS)}

[torrent]
tracker = true
tracker_interval = 60
dht = false
{_dotted(HOPS)}
""")
        tunnels = _tunnel("demo-site", type="http", host="127.0.0.1", port=SITE_PORT, keys="demo-site.dat")
        if self.ircd:
            tunnels += _tunnel("demo-ircd", type="irc", host="127.0.0.1", port=IRCD_PORT, keys="demo-ircd.dat",
                               webircpassword=self._webirc_password())
        atomic_write_text(host / "tunnels.conf", "# the demo's services; written by `pyi2p testnet up --demo`\n"
                          + tunnels)

    def _write_user_config(self, user: Path, feed: str) -> None:
        r, p = self.user, self.ports
        atomic_write_text(user / "config.toml", _toml_head(r) + f"""
[naming]
subscriptions = ["{feed}"]
first_update_delay = 30
session_options = {_inline(HOPS)}

[tunnels]

[proxy]
port = {p.proxy}
socks_enabled = false
{_dotted(HOPS)}

[mail]
enabled = false

[torrent]
dht = false
{_dotted(HOPS)}
""")
        tunnels = ""
        if self.ircd:
            tunnels += _tunnel("demo-irc", type="ircclient", port=p.irc, destination="irc.demo.i2p",
                               destinationport=IRCD_PORT)
        for name, port, to in (("demo-smtp", p.smtp, 25), ("demo-pop3", p.pop3, 110)):
            tunnels += _tunnel(name, type="client", port=port, destination="mail.demo.i2p", destinationport=to,
                               keys="mail-client.dat")
        atomic_write_text(user / "tunnels.conf", "# your tunnels to the demo's services; written by "
                          "`pyi2p testnet up --demo`\n" + tunnels)

    def _webirc_password(self) -> str:
        path = self.folder / "webirc.secret"
        if not path.exists():
            atomic_write_text(path, secrets.token_hex(16) + "\n", mode=0o600)
        return path.read_text().strip()

    def _write_ircd_config(self) -> None:
        atomic_write_text(self.folder / "ngircd.conf", f"""\
[Global]
Name = irc.demo.i2p
Info = the pyi2p demo network's IRC server
Listen = 127.0.0.1
Ports = {IRCD_PORT}
PidFile = {self.folder}/ngircd.pid
MotdPhrase = Welcome to IRC on the private I2P demo network. Join {CHANNEL}.
[Limits]
PingTimeout = 300
[Options]
DNS = yes
Ident = no
PAM = no
WebIRCPassword = {self._webirc_password()}
[Channel]
Name = {CHANNEL}
Topic = The pyi2p demo channel: say hello
""", mode=0o600)

    def _write_site(self) -> None:
        site = self.folder / "site"
        site.mkdir(exist_ok=True)
        style = "body{font-family:sans-serif;max-width:40em;margin:2em auto;color:#222}a{color:#6a1b9a}"
        nav = '<p><a href="/">home</a> · <a href="/about.html">about</a> · <a href="/services.html">services</a></p>'

        def page(title: str, body: str) -> str:
            return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
                    f"<style>{style}</style></head>\n<body>{nav}\n{body}\n</body></html>\n")
        atomic_write_text(site / "index.html", page("demo.i2p", f"""<h1>{SITE_MARKER}</h1>
<p>This page came to you over I2P: from your node's HTTP proxy through tunnels of a private network of
i2pd and pyi2p routers, to a server tunnel on another pyi2p node, and back.</p>
<p><img src="/i2p.png" alt="a picture served over I2P" width="192" height="192"></p>
<p>Try the <a href="/services.html">other services</a> of this network.</p>"""))
        atomic_write_text(site / "about.html", page("about demo.i2p", """<h1>About this network</h1>
<p>Five i2pd routers and two pyi2p nodes in a network namespace of your machine, with network id 42:
nothing here can reach the real I2P network or the internet.</p>
<p>The name demo.i2p comes from your node's address book, which also subscribes to the feed this
network publishes.</p>"""))
        atomic_write_text(site / "services.html", page("services", f"""<h1>Services</h1>
<ul><li><b>irc.demo.i2p</b>: IRC, through your client tunnel at 127.0.0.1:{self.ports.irc}, channel {CHANNEL}</li>
<li><b>mail.demo.i2p</b>: a mail host with alice and bob; SMTP 127.0.0.1:{self.ports.smtp}, POP3 127.0.0.1:{self.ports.pop3}</li>
<li><b>tracker.demo.i2p</b>: an open BitTorrent tracker seeding {TORRENT_NAME}</li></ul>"""))
        if not (site / "i2p.png").exists():
            atomic_write(site / "i2p.png", _png(192, 192))

    def _write_torrent(self, host: Path) -> None:
        if self.torrent_file.exists():
            return
        content = host / "torrent" / "downloads" / TORRENT_NAME
        content.mkdir(parents=True, exist_ok=True)
        atomic_write_text(content / "README.txt", "These files came to you over BitTorrent on I2P, from the demo "
                          "node's seed, found through tracker.demo.i2p.\n")
        atomic_write(content / "random.bin", random.Random(42).randbytes(512 * 1024))
        meta = create_torrent(content, tracker="http://tracker.demo.i2p/announce", comment="the pyi2p demo torrent")
        atomic_write(host / "torrent" / "torrents" / f"{meta.info_hash.hex()}.torrent", meta.to_bytes())
        atomic_write(self.torrent_file, meta.to_bytes())

    # ----- processes

    def start_services(self) -> None:
        """The web server and ircd inside the namespace, and both halves of the port bridges."""
        net = self.net
        net.start_extra("demo-web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(SITE_PORT),
                                     "--directory", str(self.folder / "site")])
        if self.ircd:
            net.start_extra("demo-ircd", [self.ircd, "-n", "-f", str(self.folder / "ngircd.conf")])
        specs = [f"{port}={path}" for port, path in self.bridges()]
        serve = net.start_extra("bridge-serve", [sys.executable, "-m", "pyi2p.portbridge", "serve", *specs])
        publish = net.start_extra("bridge-publish", [sys.executable, "-m", "pyi2p.portbridge", "publish", *specs],
                                  in_netns=False)
        for extra in (serve, publish):
            self._wait_ready_line(extra.name)

    def _wait_ready_line(self, name: str, timeout: float = 15.0) -> None:
        path = self.net.base / f"{name}.log"
        extra = next(e for e in self.net.extras if e.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace") if path.exists() else ""
            if "ready" in text.splitlines():
                return
            if not extra.running:
                ports = ", ".join(str(port) for port, _ in self.bridges())
                raise TestnetError(f"{name} stopped: {text.strip()[-300:]} (the host's 127.0.0.1 ports {ports} "
                                   "must be free; --demo-ports picks others)")
            time.sleep(0.1)
        raise TestnetError(f"{name} did not start within {timeout:.0f} s (log: {path})")

    def fetch_site(self, timeout: float = 30.0) -> str:
        """http://demo.i2p/ through the user's proxy on the host's 127.0.0.1; the page, or TestnetError."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports.proxy, timeout=timeout)
        try:
            conn.request("GET", "http://demo.i2p/", headers={"Host": "demo.i2p"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            raise TestnetError(f"proxy 127.0.0.1:{self.ports.proxy}: {exc}") from None
        finally:
            conn.close()
        if response.status != 200 or SITE_MARKER not in body:
            title = re.search(r"<title>([^<]{1,80})</title>", body)     # the proxy's error pages name the cause
            raise TestnetError(f"http://demo.i2p/: HTTP {response.status}" + (f" ({title.group(1)})" if title else ""))
        return body

    def wait_site(self, timeout: float) -> float:
        """Poll demo.i2p through the proxy until it answers (bounded); the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        log.info("waiting up to %.0f s until http://demo.i2p/ answers through the proxy", timeout)
        last = ""
        while True:
            try:
                self.fetch_site(timeout=max(5.0, min(60.0, deadline - time.monotonic())))
                return time.monotonic() - started
            except TestnetError as exc:
                if str(exc) != last:
                    log.info("%.0f s: %s", time.monotonic() - started, exc)
                    last = str(exc)
                dead = [r.name for r in (self.host, self.user) if not r.running]
                if dead:
                    raise TestnetError(f"{', '.join(dead)} stopped (see pyi2p.log in its folder)") from None
                if time.monotonic() >= deadline:
                    raise TestnetError(f"demo.i2p not reachable after {timeout:.0f} s: {exc} "
                                       f"(logs: {self.host.datadir}/pyi2p.log, {self.user.datadir}/pyi2p.log)")
                time.sleep(2.0)

    def instructions(self, ready: bool = True) -> str:
        p, base, user = self.ports, self.net.base, self.user.datadir
        down = "pyi2p testnet down" + ("" if str(base) == _default_base() else f" --base {base}")
        lines = [f"The demo network runs (testnet in {base}). In your own shell:",
                 "",
                 f"  web      curl -x http://127.0.0.1:{p.proxy} http://demo.i2p/",
                 f"           browser: HTTP proxy 127.0.0.1 port {p.proxy}, then open http://demo.i2p/",
                 f"  IRC      irssi -c 127.0.0.1 -p {p.irc} -n yourname, then /join {CHANNEL}"
                 if self.ircd else "  IRC      not available: ngircd is not installed (apt-get install ngircd)",
                 f"  mail     SMTP 127.0.0.1:{p.smtp}, POP3 127.0.0.1:{p.pop3}, no TLS, password login",
                 "           " + ", ".join(f"user {u} password {pw} address {u}@mail.demo.i2p"
                                           for u, pw in ACCOUNTS.items()),
                 f"           swaks --server 127.0.0.1 --port {p.smtp} --auth PLAIN --auth-user alice "
                 f"--auth-password alice-demo --from alice@mail.demo.i2p --to bob@mail.demo.i2p",
                 f"  torrent  pyi2p torrent add {self.torrent_file} --datadir {user} --wait",
                 f"  console  pyi2p tui --datadir {user}",
                 f"  names    {', '.join(NAMES)}",
                 f"  stop     {down}",
                 ""]
        return "\n".join(lines + (["ready"] if ready else []))


def _default_base() -> str:
    return str(Path(DEFAULT_BASE).absolute())


def _keys(path: Path) -> Destination:
    """The destination of the key file at `path`, made (0600) when missing: names are known before start."""
    if not path.exists():
        PrivateKeys.generate().save(path)
    return PrivateKeys.load(path).destination


def _toml_head(r: Router) -> str:
    # everything shares the namespace's 127.0.0.1: SAM next to the router's own ports, no SAM UDP port
    return (f"# demo node {r.name}; written by `pyi2p testnet up --demo`\nport = {r.port}\ncontrol_port = "
            f"{r.i2pcontrol}\nsam_port = {r.sam or r.i2pcontrol + 1}\nsam_udp_port = 0\nbandwidth = \"X\"\n")


def _inline(options: dict[str, str]) -> str:
    return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in options.items()) + "}"


def _dotted(options: dict[str, str]) -> str:
    return "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in options.items())


def _tunnel(name: str, **options: object) -> str:
    lines = [f"\n[{name}]"] + [f"{k} = {v}" for k, v in options.items()]
    lines += [f"{k} = {v}" for k, v in HOPS.items()]
    return "\n".join(lines) + "\n"


def _png(width: int, height: int) -> bytes:
    """A small RGB picture (a violet gradient with rings), made here so the site needs no asset files."""
    rows = bytearray()
    cx, cy = width / 2, height / 2
    for y in range(height):
        rows.append(0)                                  # PNG filter type 0 for each row
        for x in range(width):
            ring = int(((x - cx) ** 2 + (y - cy) ** 2) ** 0.5) // 12 % 2
            rows += bytes((120 + x * 100 // width, 40 + ring * 60, 160 + y * 80 // height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))
