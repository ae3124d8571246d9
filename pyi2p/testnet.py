"""A private I2P testnet on one machine: real i2pd routers (and pyi2p routers) in a network namespace.

i2pd 2.45.1 refuses peers at reserved addresses (127/8 included), so the routers live on
198.18.0.x (RFC 2544) on the `lo` of a namespace that has no other interface: nothing can
leave the machine. Every client of the testnet must run inside that namespace
(`ip netns exec NS ...`, or `Testnet.in_netns()` in-process). The facts behind each
choice are in docs/testnet.md.

    pyi2p testnet up [-n 5] [-m 0] [--base DIR] [--wait 120]   # idempotent
    pyi2p testnet up --demo                                     # ... plus demo services (docs/tour.md)
    pyi2p testnet status [--base DIR]
    pyi2p testnet down [--base DIR]                             # idempotent
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import dataclasses
import http.client
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.identity import RouterIdentity
from core.data.routerinfo import RouterInfo
from core.data.reader import Reader
from core.fsutil import atomic_write, atomic_write_text

log = logging.getLogger("pyi2p.testnet")

STATE_FILE = "testnet.json"
SEED_FILE = "seed.zip"
DEFAULT_BASE = "/tmp/pyi2p-testnet"
DEFAULT_NETNS = "pyi2p-testnet"
DEFAULT_FIRST_PORT = 20000
PYI2P_APPS = ("naming", "tunnels", "proxy", "mail", "torrent")   # config.toml tables of `pyi2p run`'s apps
PORT_STRIDE = 10                      # router k uses ports P..P+4, P = first_port + 10*(k-1)
PYI2P_HOST_OFFSET = 100               # pyi2p router j lives on PREFIX.(100+j)
EXTRA_HOST_OFFSET = 200               # in-process routers of tests get PREFIX.(200+i)
RI_REFRESH_AGE_S = 24 * 3600          # README: i2pd wipes its netDb when most seeded RIs are > 270 h old
IDENTITY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0                 # SIGTERM, then SIGKILL (SIGINT would wait up to 10 min)
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NETNS_DIR = "/run/netns"


class TestnetError(Exception):
    """The testnet cannot be brought up, inspected or torn down as asked."""

    __test__ = False                  # not a pytest test class, despite the name


# ---------------------------------------------------------------- RouterInfo files

def process_argv(pid: int | None, *, tries: int = 5) -> list[str]:
    """A process's argv from /proc/PID/cmdline ([] when it is gone). A running i2pd's cmdline now and then
    reads empty (about 1 read in 25,000 here, while its threads change its memory map): an empty read is
    tried again a few times, 10 ms apart, before it counts (a process that exits stays empty)."""
    if not pid:
        return []
    for attempt in range(tries):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                data = f.read()
        except OSError:
            return []
        if data:
            return data.decode("utf-8", "replace").split("\0")[:-1]
        if attempt + 1 < tries:
            time.sleep(0.01)
    return []


def router_hash_b64(router_info: bytes) -> str:
    """I2P-base64 SHA-256 of the RouterIdentity that opens a RouterInfo: its netDb and reseed file name."""
    return b64encode(RouterIdentity.read(Reader(router_info, "RouterInfo")).hash)


def read_signed_router_info(path: str | os.PathLike) -> bytes | None:
    """The file's bytes if they are a whole RouterInfo its router signed; None while missing or half-written."""
    try:
        data = Path(path).read_bytes()
        return data if RouterInfo.parse(data).verify() else None
    except (OSError, ProtocolError):
        return None


def netdb_file(datadir: str | os.PathLike, ident_b64: str) -> Path:
    """i2pd's layout: netDb/r<first char>/routerInfo-<b64>.dat."""
    return Path(datadir) / "netDb" / f"r{ident_b64[0]}" / f"routerInfo-{ident_b64}.dat"


def netdb_hashes(datadir: str | os.PathLike) -> set[str]:
    """Router hashes (b64) of the RouterInfo files in an i2pd netDb."""
    names = Path(datadir).glob("netDb/r*/routerInfo-*.dat")
    return {n.name[len("routerInfo-"):-len(".dat")] for n in names}


def build_reseed_zip(router_infos: dict[str, bytes]) -> bytes:
    """A reseed bundle: a plain zip of routerInfo-<b64>.dat entries (ident b64 -> RI bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for ident_b64, ri in sorted(router_infos.items()):
            z.writestr(f"routerInfo-{ident_b64}.dat", ri)
    return buf.getvalue()


# ---------------------------------------------------------------- network namespace

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(netns: str) -> Iterator[None]:
    """Run the calling thread in network namespace `netns`; sockets made here stay in it afterwards."""
    try:
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    except FileNotFoundError:
        raise TestnetError(f"network namespace {netns!r} does not exist") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise TestnetError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def netns_exists(netns: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, netns))


def netns_pids(netns: str) -> list[int]:
    if not netns_exists(netns):
        return []
    return [int(p) for p in _ip("netns", "pids", netns, check=False).split()]


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def private_netns_name(tag: str) -> str:
    """A namespace name for one process's own testnet: `pyi2p-<tag><PID>-<random>`.

    The PID tells a later run whether the owner is gone; the random part keeps two runs apart that got the
    same PID (namespaces outlive processes, and a machine's PIDs repeat across boots and containers).
    """
    return f"pyi2p-{tag}{os.getpid()}-{os.urandom(3).hex()}"


PRIVATE_NETNS_NAME = re.compile(r"pyi2p-[a-z]+(\d+)(?:-[0-9a-f]{6})?")   # group 1: the owner's PID


def delete_netns(netns: str) -> None:
    if netns_exists(netns):
        _ip("netns", "del", netns)
        log.info("deleted network namespace %s", netns)


def unavailable_reason() -> str | None:
    """Why a testnet cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the testnet needs root (it creates a network namespace)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if i2pd_binary() is None:
        return "i2pd is not installed (apt-get install i2pd)"
    return None


def i2pd_binary() -> str | None:
    """The i2pd a testnet runs unless told otherwise: $PYI2P_I2PD, else `i2pd` in PATH, else Debian's."""
    named = os.environ.get("PYI2P_I2PD")
    if named:
        return named if os.access(named, os.X_OK) else None
    found = shutil.which("i2pd")
    if found:
        return found
    return "/usr/sbin/i2pd" if os.access("/usr/sbin/i2pd", os.X_OK) else None


# ---------------------------------------------------------------- routers

@dataclass
class Router:
    """One router of the testnet; ports are inside the namespace (services on 127.0.0.1)."""

    name: str                         # r1..rN (i2pd), p1..pM (pyi2p)
    kind: str                         # "i2pd" or "pyi2p"
    datadir: str
    address: str                      # NTCP2 and SSU2 bind and publish address
    port: int                         # NTCP2 (TCP) and SSU2 (UDP)
    console: int | None = None
    sam: int | None = None
    http_proxy: int | None = None
    i2cp: int | None = None
    i2pcontrol: int | None = None     # pyi2p routers: I2PControl JSON-RPC
    floodfill: bool = False
    ntcp2: bool = True                # i2pd routers: False runs NTCP2 off, so peers must use SSU2
    binary: str | None = None         # i2pd routers: the i2pd executable (None: i2pd_binary())
    pid: int | None = None
    ident_hash: str = ""              # I2P-base64 SHA-256 of the RouterIdentity

    @property
    def router_info_path(self) -> Path:
        return Path(self.datadir) / "router.info"

    def command(self, netid: int, seed_file: str) -> list[str]:
        if self.kind == "i2pd":
            d = self.datadir
            return [self.binary or i2pd_binary() or "i2pd", "--datadir", d, "--conf", f"{d}/i2pd.conf",
                    "--tunconf", f"{d}/tunnels.conf", "--tunnelsdir", f"{d}/tunnels.d",
                    "--certsdir", f"{d}/certificates"]
        return [sys.executable, "-m", "pyi2p", "run", "--datadir", self.datadir, "--host", self.address,
                "--port", str(self.port), "--netid", str(netid), "--reseed-file", seed_file]

    def owns_process(self, pid: int | None) -> bool:
        """True when `pid` runs the command we start for this router (guards against PID reuse)."""
        argv = process_argv(pid)
        if not argv:
            return False
        # also true for the `ip netns exec NS ...` that is about to exec the router
        marker = ["--conf", f"{self.datadir}/i2pd.conf"] if self.kind == "i2pd" else ["--datadir", self.datadir]
        pairs = zip(argv, argv[1:])
        return tuple(marker) in pairs and (self.kind == "i2pd" or "run" in argv)

    @property
    def running(self) -> bool:
        return self.owns_process(self.pid)


@dataclass
class Extra:
    """A process the testnet runs besides its routers (the demo's web server, ircd, port bridges)."""

    name: str
    argv: list[str]                   # as exec()ed: inside the namespace, after `ip netns exec NS`
    in_netns: bool = True
    pid: int | None = None

    def owns_process(self, pid: int | None) -> bool:
        argv = process_argv(pid)
        if not argv:
            return False
        return argv[-len(self.argv):] == self.argv    # also the `ip netns exec NS ...` about to exec it

    @property
    def running(self) -> bool:
        return self.owns_process(self.pid)


@dataclass
class RouterStatus:
    """What one router's web console says (pyi2p routers: only whether the process runs)."""

    name: str
    running: bool
    known_routers: int | None = None  # netDb RouterInfos, counting itself (i2pd stores its own RI)
    floodfills: int | None = None
    ntcp2_sessions: int | None = None
    ssu2_sessions: int | None = None
    exploratory_in: int | None = None  # established exploratory tunnels of >= 1 hop
    exploratory_out: int | None = None
    network_status: str | None = None
    router_ident: str | None = None   # as the console shows it
    error: str | None = None

    def ready(self, total_routers: int) -> bool:
        if not self.running:
            return False
        if self.known_routers is None:    # no console to ask (pyi2p): running is all we know
            return self.error is None
        # sessions unknown (not asked): established exploratory tunnels of >= 1 hop prove there are some
        has_sessions = self.ntcp2_sessions is None or (self.ntcp2_sessions or 0) + (self.ssu2_sessions or 0) > 0
        return (self.known_routers >= total_routers and has_sessions
                and (self.exploratory_in or 0) > 0 and (self.exploratory_out or 0) > 0)


def i2pd_config(router: Router, *, netid: int, seed_file: str, hops: int, su3: bool = False,
                loglevel: str = "info") -> str:
    """i2pd.conf for one testnet router, from scratch; /etc/i2pd is never read.

    `seed_file` is a plain zip of RouterInfos, or with `su3` a signed bundle that i2pd must verify.
    """
    d = router.datadir
    on = {True: "true", False: "false"}
    reseed_source = f"verify = true\nfile = {seed_file}" if su3 else f"verify = false\nzipfile = {seed_file}"
    return f"""\
# pyi2p testnet router {router.name}; written by `pyi2p testnet up`, rewritten at every up
log = file
logfile = {d}/i2pd.log
loglevel = {loglevel}
pidfile = {d}/i2pd.pid
daemon = false
# private network: peers with another netId (the real I2P is 2) are refused both ways
netid = {netid}
ipv4 = true
ipv6 = false
host = {router.address}
address4 = {router.address}
port = {router.port}
# not behind NAT: no periodic SSU2 peer tests
nat = false
reservedrange = false
floodfill = {on[router.floodfill]}
# X = high bandwidth; client tunnel pools pick such peers first
bandwidth = X
# a handful of routers must all carry transit tunnels
notransit = false

[limits]
transittunnels = 10000

[ntcp2]
enabled = {on[router.ntcp2]}
published = {on[router.ntcp2]}
port = {router.port}

[ssu2]
enabled = true
published = true
port = {router.port}

[http]
enabled = true
address = 127.0.0.1
port = {router.console}
strictheaders = false

[httpproxy]
enabled = true
address = 127.0.0.1
port = {router.http_proxy}
inbound.length = {hops}
outbound.length = {hops}
inbound.quantity = 2
outbound.quantity = 2

[socksproxy]
enabled = false

[sam]
enabled = true
address = 127.0.0.1
port = {router.sam}

[i2cp]
enabled = true
address = 127.0.0.1
port = {router.i2cp}

[bob]
enabled = false

[i2pcontrol]
enabled = false

[upnp]
enabled = false

[nettime]
enabled = false
frompeers = false

# i2pd reseeds at every start while it knows < 5 floodfills: give it the local zip, never URLs
[reseed]
{reseed_source}
threshold = 0
urls =
yggurls =

# must stay enabled (SAM STREAM CONNECT crashes 2.45.1 without it); no subscriptions/defaulturl
# keys at all (an empty one aborts i2pd after 3 min): hosts.txt and subscriptions.txt are files
[addressbook]
enabled = true

[exploratory]
inbound.length = {hops}
outbound.length = {hops}
inbound.quantity = 2
outbound.quantity = 2

[persist]
profiles = false
addressbook = false

[precomputation]
elgamal = false

[meshnets]
yggdrasil = false
"""


# ---------------------------------------------------------------- console scraping (i2pd 2.45.1 HTML)

_TAG = re.compile(r"<[^>]+>")
_ARROW = "&#8658;"


def write_i2pd_datadir(router: Router, *, netid: int, seed_file: str, hops: int = 1, su3: bool = False,
                       loglevel: str = "info") -> None:
    """Everything an i2pd data dir of the testnet needs before its first start (config from scratch)."""
    d = Path(router.datadir)
    (d / "tunnels.d").mkdir(parents=True, exist_ok=True)
    (d / "certificates").mkdir(exist_ok=True)
    atomic_write_text(d / "i2pd.conf", i2pd_config(router, netid=netid, seed_file=seed_file, hops=hops, su3=su3,
                                                        loglevel=loglevel))
    atomic_write_text(d / "tunnels.conf", "# no client tunnels\n")
    # a loaded book (hosts.txt) with zero subscriptions: no download timer, no abort
    atomic_write_text(d / "hosts.txt", "# testnet: no names; use .b32.i2p or base64 destinations\n")
    atomic_write_text(d / "subscriptions.txt", "# testnet: no subscriptions\n")


@dataclass(frozen=True, slots=True)
class ConsoleSummary:
    """The figures on an i2pd console's main page."""

    known_routers: int | None         # counts the router itself: i2pd keeps its own RI in its netDb
    floodfills: int | None
    network_status: str | None
    router_ident: str | None


def parse_main_page(html: str) -> ConsoleSummary:
    text = _TAG.sub(" ", html)

    def number(label: str) -> int | None:
        m = re.search(label + r":\s*(\d+)", text)
        return int(m.group(1)) if m else None
    status = re.search(r"Network status:[ \t]*([^\n\r]*?)[ \t]*(?:\r|\n|$)", text)
    ident = re.search(r"Router Ident:\s*([A-Za-z0-9~=-]{44})", text)
    return ConsoleSummary(known_routers=number("Routers"), floodfills=number("Floodfills"),
                          network_status=status.group(1) if status else None,
                          router_ident=ident.group(1) if ident else None)


def parse_tunnels_page(html: str) -> tuple[int, int]:
    """Established exploratory tunnels (inbound, outbound) with at least one hop.

    Zero-hop tunnels also show as "established (exploratory)"; they have a single arrow.
    """
    inbound, _, outbound = html.partition("Outbound tunnels")

    def count(section: str) -> int:
        items = re.findall(r'<div class="listitem">(.*?)</div>', section, re.S)
        return sum(1 for it in items if "established (exploratory)" in it and it.count(_ARROW) >= 2)
    return count(inbound), count(outbound)


@dataclass(frozen=True, slots=True)
class TransportSession:
    """One established session on an i2pd's transports page; the console shows only 4 hash characters."""

    transport: str                    # "NTCP2" or "SSU2" ("NTCP2v6"... with IPv6)
    hash_prefix: str
    address: str
    port: int
    outbound: bool


_SESSION_ITEM = re.compile(
    r'<div class="listitem">\s*(&#8658;)?\s*([A-Za-z0-9~-]{1,44}):\s*\[?([0-9A-Fa-f.:]+?)\]?:(\d+)')


def parse_transports_page(html: str) -> list[TransportSession]:
    sessions: list[TransportSession] = []
    parts = re.split(r"<b>((?:NTCP2|SSU2)(?:v6)?)</b>", html)
    # re.split keeps the captured names: [before, name, body, name, body, ...]
    for i in range(1, len(parts) - 1, 2):
        for m in _SESSION_ITEM.finditer(parts[i + 1]):
            sessions.append(TransportSession(parts[i], m.group(2), m.group(3), int(m.group(4)), bool(m.group(1))))
    return sessions


# ---------------------------------------------------------------- the testnet

class Testnet:
    """N i2pd routers and M pyi2p routers in one network namespace, with state in `base`/testnet.json."""

    __test__ = False

    def __init__(self, base: str | os.PathLike = DEFAULT_BASE, *, i2pd_count: int = 5, pyi2p_count: int = 0,
                 floodfills: int = 2, netid: int = 42, netns: str = DEFAULT_NETNS,
                 address_prefix: str = "198.18.0", first_port: int = DEFAULT_FIRST_PORT, hops: int = 1,
                 die_with_parent: bool = False, i2pd: str | None = None, i2pd_loglevel: str = "info",
                 ssu2_only: int = 0):
        if not 1 <= i2pd_count < PYI2P_HOST_OFFSET:
            raise TestnetError(f"i2pd_count must be 1..{PYI2P_HOST_OFFSET - 1}")
        if not 0 <= pyi2p_count < EXTRA_HOST_OFFSET - PYI2P_HOST_OFFSET:
            raise TestnetError("pyi2p_count must be 0..99")
        if not 0 <= floodfills <= i2pd_count:
            raise TestnetError("floodfills must be between 0 and the number of i2pd routers")
        if not 0 <= ssu2_only < i2pd_count:
            raise TestnetError("ssu2_only must leave at least one i2pd router with NTCP2")
        if not 1024 <= first_port <= 65535 - PORT_STRIDE * (i2pd_count + pyi2p_count):
            raise TestnetError("first_port leaves no room for the routers' ports")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", netns):
            raise TestnetError(f"bad namespace name {netns!r}")
        if i2pd is not None and not os.access(i2pd, os.X_OK):
            raise TestnetError(f"{i2pd}: not an executable i2pd")
        self.base = Path(base).absolute()
        self.i2pd = os.path.abspath(i2pd) if i2pd else None   # None: i2pd_binary()
        self.netns = netns
        self.netid = netid
        self.address_prefix = address_prefix
        self.first_port = first_port
        self.floodfills = floodfills
        self.hops = hops
        self.i2pd_loglevel = i2pd_loglevel   # "debug" shows each streaming packet's RTT, resends and NACKs
        self.die_with_parent = die_with_parent
        self.extra_addresses: list[str] = []
        self.extras: list[Extra] = []
        self.ready_after_s: float | None = None
        self._children: dict[int, subprocess.Popen] = {}
        self.routers: list[Router] = []
        for k in range(1, i2pd_count + 1):
            p = first_port + PORT_STRIDE * (k - 1)
            self.routers.append(Router(
                name=f"r{k}", kind="i2pd", datadir=str(self.base / f"r{k}"), address=f"{address_prefix}.{k}",
                port=p, console=p + 1, sam=p + 2, http_proxy=p + 3, i2cp=p + 4, floodfill=k <= floodfills,
                ntcp2=k <= i2pd_count - ssu2_only, binary=self.i2pd))
        for j in range(1, pyi2p_count + 1):
            p = first_port + PORT_STRIDE * (i2pd_count + j - 1)
            self.routers.append(Router(
                name=f"p{j}", kind="pyi2p", datadir=str(self.base / f"p{j}"),
                address=f"{address_prefix}.{PYI2P_HOST_OFFSET + j}", port=p, i2pcontrol=p + 1, sam=p + 2))

    # ----- state

    @property
    def seed_file(self) -> Path:
        return self.base / SEED_FILE

    @property
    def i2pd_routers(self) -> list[Router]:
        return [r for r in self.routers if r.kind == "i2pd"]

    @property
    def pyi2p_routers(self) -> list[Router]:
        return [r for r in self.routers if r.kind == "pyi2p"]

    def router(self, name: str | Router) -> Router:
        if isinstance(name, Router):
            return name
        for r in self.routers:
            if r.name == name:
                return r
        raise TestnetError(f"no router {name!r} in this testnet")

    def _layout(self) -> dict[str, object]:
        return {"netns": self.netns, "netid": self.netid, "address_prefix": self.address_prefix,
                "first_port": self.first_port, "floodfills": self.floodfills, "hops": self.hops,
                "routers": [(r.name, r.kind, r.address, r.port) for r in self.routers]}

    def to_json(self) -> dict[str, object]:
        return {"version": 1, "base": str(self.base), "netns": self.netns, "netid": self.netid,
                "address_prefix": self.address_prefix, "first_port": self.first_port,
                "floodfills": self.floodfills, "hops": self.hops, "i2pd": self.i2pd,
                "i2pd_version": i2pd_version(self.i2pd),
                "ready_after_s": self.ready_after_s, "extra_addresses": self.extra_addresses,
                "routers": [dataclasses.asdict(r) for r in self.routers],
                "extras": [dataclasses.asdict(e) for e in self.extras]}

    def save(self) -> None:
        atomic_write_text(self.base / STATE_FILE, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, base: str | os.PathLike = DEFAULT_BASE) -> Testnet | None:
        """The testnet recorded in `base`, or None when there is none."""
        path = Path(base).absolute() / STATE_FILE
        try:
            state = json.loads(path.read_text())
            routers = [Router(**r) for r in state["routers"]]
            net = cls(state["base"], i2pd_count=sum(r.kind == "i2pd" for r in routers),
                      pyi2p_count=sum(r.kind == "pyi2p" for r in routers), floodfills=state["floodfills"],
                      netid=state["netid"], netns=state["netns"], address_prefix=state["address_prefix"],
                      first_port=state["first_port"], hops=state["hops"], i2pd=state.get("i2pd"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise TestnetError(f"{path}: unreadable testnet state ({exc})") from None
        net.routers = routers
        try:
            net.extras = [Extra(**e) for e in state.get("extras", [])]
        except TypeError as exc:
            raise TestnetError(f"{path}: unreadable testnet state ({exc})") from None
        net.extra_addresses = list(state.get("extra_addresses", []))
        net.ready_after_s = state.get("ready_after_s")
        return net

    # ----- up

    def up(self, wait: float = 120.0) -> list[RouterStatus]:
        """Create what is missing and start every router that is not running; wait (bounded) until ready.

        Idempotent: routers still running are kept, stopped ones restart with their identities.
        """
        reason = unavailable_reason()
        if reason:
            raise TestnetError(reason)
        started = time.monotonic()
        self.make_identities()
        for r in self.routers:
            if not r.running:
                self._launch(r)
                log.info("started %s (%s) pid %d", r.name, r.kind, r.pid)
        self.save()
        if wait <= 0:
            return []
        statuses = self.wait_ready(wait)
        self.ready_after_s = round(time.monotonic() - started, 1)
        self.save()
        log.info("ready after %.1f s", self.ready_after_s)
        return statuses

    def make_identities(self) -> None:
        """Namespace, files and a signed identity for every router, each seeded with all the others; starts none."""
        reason = unavailable_reason()
        if reason:
            raise TestnetError(reason)
        self.base.mkdir(parents=True, exist_ok=True)
        self._adopt_previous()
        self._setup_netns()
        self._write_files()
        self.save()
        self._make_identities(self.i2pd_routers)
        self._seed()
        self._make_identities(self.pyi2p_routers)
        self._seed()

    def _adopt_previous(self) -> None:
        previous = Testnet.load(self.base)
        if previous is None:
            return
        self.extras = previous.extras         # kept or restarted by start_extra, stopped by down
        if not any(r.running for r in previous.routers):
            if previous.netns != self.netns and not netns_pids(previous.netns):
                delete_netns(previous.netns)  # the last run here used another name: don't leave it behind
            return
        if previous._layout() != self._layout():
            raise TestnetError(f"a testnet with other parameters runs in {self.base}: `testnet down` it first")
        self.routers = previous.routers
        self.extra_addresses = previous.extra_addresses

    def _setup_netns(self) -> None:
        if not netns_exists(self.netns):
            _ip("netns", "add", self.netns)
            log.info("created network namespace %s", self.netns)
        _ip("-n", self.netns, "link", "set", "lo", "up")
        present = set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", _ip("-n", self.netns, "-4", "addr", "show", "dev", "lo")))
        for address in [r.address for r in self.routers] + self.extra_addresses:
            if address not in present:
                _ip("-n", self.netns, "addr", "add", f"{address}/32", "dev", "lo")

    def _write_files(self) -> None:
        for r in self.routers:
            Path(r.datadir).mkdir(parents=True, exist_ok=True)
            if r.kind == "pyi2p":
                self._write_pyi2p_config(r)
            else:
                write_i2pd_datadir(r, netid=self.netid, seed_file=str(self.seed_file), hops=self.hops,
                                   loglevel=self.i2pd_loglevel)

    def _write_pyi2p_config(self, r: Router) -> None:
        """config.toml for `pyi2p run`: its own I2PControl and SAM ports (no SAM UDP port), since all routers share
        the namespace's 127.0.0.1."""
        path = Path(r.datadir) / "config.toml"
        try:
            text = path.read_text("utf-8")
            settings = tomllib.loads(text)
        except FileNotFoundError:
            text, settings = "# pyi2p testnet router; written by `pyi2p testnet up`\n", {}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TestnetError(f"{path}: {exc}") from None
        wanted = {"port": r.port, "netid": self.netid, "control_port": r.i2pcontrol, "bandwidth": "X"}
        if r.sam:
            wanted.update(sam_port=r.sam, sam_udp_port=0)
        missing = [f"{key} = {json.dumps(value)}" for key, value in wanted.items() if key not in settings]
        # the apps would all want the same 127.0.0.1 ports in the shared namespace: off unless configured
        tables = [f"[{app}]\nenabled = false" for app in PYI2P_APPS if app not in settings]
        if missing or tables:                 # settings someone wrote there stay as they are
            head, table_start, rest = text.partition("\n[")   # top-level keys go before the first table
            head = head.rstrip("\n") + "\n" + "".join(f"{line}\n" for line in missing)
            text = head + (table_start.lstrip("\n") and "[" + rest if table_start else "")
            atomic_write_text(path, text.rstrip("\n") + "\n" + "".join(f"\n{t}\n" for t in tables))

    def _make_identities(self, routers: list[Router]) -> None:
        """Start each router that lacks a fresh router.info until it writes one, then stop it."""
        now = time.time()

        def needs_start(r: Router) -> bool:
            try:
                stale = now - r.router_info_path.stat().st_mtime > RI_REFRESH_AGE_S
            except FileNotFoundError:
                return True
            return stale or read_signed_router_info(r.router_info_path) is None
        todo = [r for r in routers if not r.running and needs_start(r)]
        if not todo:
            return
        log.info("making identities for %s", ", ".join(r.name for r in todo))
        launched_at = time.time() - 1.0
        for r in todo:
            self._launch(r)
        written: dict[str, bytes] = {}        # name -> the first complete, freshly signed router.info

        def check(r: Router) -> bool:
            with contextlib.suppress(FileNotFoundError):
                if r.router_info_path.stat().st_mtime >= launched_at:
                    data = read_signed_router_info(r.router_info_path)
                    if data is not None:
                        written[r.name] = data
            return r.name in written
        deadline = time.monotonic() + IDENTITY_TIMEOUT_S
        pending = list(todo)
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if not check(r)]
            if any(not r.running for r in pending):
                break
            time.sleep(0.1)
        time.sleep(0.5)                       # key files are written around router.info; let them settle
        self._stop(todo)
        for r in todo:
            # a stop can land in the middle of a rewrite: keep the complete copy seen before
            if r.name in written and read_signed_router_info(r.router_info_path) is None:
                log.info("%s: router.info was left incomplete at stop; restoring the signed copy", r.name)
                atomic_write(r.router_info_path, written[r.name])
        failed = [r for r in todo if r.name not in written]
        if failed:
            hints = "; ".join(f"{r.name}: see {self._log_path(r)}" + self._log_tail(r) for r in failed)
            what = "pyi2p run" if failed[0].kind == "pyi2p" else "i2pd"
            raise TestnetError(f"{what} wrote no router.info within {IDENTITY_TIMEOUT_S:.0f} s ({hints})")

    def _seed(self) -> None:
        """Put every router's RouterInfo into every other i2pd's netDb and into seed.zip."""
        infos: dict[str, bytes] = {}
        for r in self.routers:
            if not r.router_info_path.exists():
                continue
            ri = read_signed_router_info(r.router_info_path)
            for _ in range(20):               # a running router may be rewriting it just now
                if ri is not None:
                    break
                time.sleep(0.1)
                ri = read_signed_router_info(r.router_info_path)
            if ri is None:
                raise TestnetError(f"{r.router_info_path} is not a complete signed RouterInfo")
            r.ident_hash = router_hash_b64(ri)
            infos[r.ident_hash] = ri
        atomic_write(self.seed_file, build_reseed_zip(infos))
        for r in self.i2pd_routers:
            for other in self.routers:
                if other is r or other.ident_hash not in infos:
                    continue
                target = netdb_file(r.datadir, other.ident_hash)
                source_mtime = other.router_info_path.stat().st_mtime
                if not target.exists() or target.stat().st_mtime < source_mtime:
                    atomic_write(target, infos[other.ident_hash])
        self.save()

    def _launch(self, r: Router) -> None:
        command = ["ip", "netns", "exec", self.netns, *r.command(self.netid, str(self.seed_file))]
        self._spawn(r, command, self._log_path(r, stdout=True), r.datadir, append=True)

    def _spawn(self, owner: Router | Extra, command: list[str], log_path: Path, cwd: str, *, append: bool) -> None:
        """Start `command` for `owner` (its pid set), output to `log_path`; return once it runs as `owner`."""
        with open(log_path, "ab" if append else "wb") as out:
            # `ip netns exec` exec()s its command, so this PID is the router's (or process's) own
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=cwd, env=child_env(),
                                    preexec_fn=_die_with_parent if self.die_with_parent else None)
        owner.pid = proc.pid
        self._children[proc.pid] = proc
        deadline = time.monotonic() + 5.0     # until exec, /proc/PID/cmdline is empty or still ours
        while not owner.running and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def _log_path(self, r: Router, stdout: bool = False) -> Path:
        if r.kind == "i2pd" and not stdout:
            return Path(r.datadir) / "i2pd.log"
        return Path(r.datadir) / ("stdout.log" if r.kind == "i2pd" else "pyi2p.log")

    def _log_tail(self, r: Router, lines: int = 3) -> str:
        try:
            tail = self._log_path(r).read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return (": " + " | ".join(tail)) if tail else ""

    def _exited(self, pid: int) -> bool:
        """The process is gone or a zombie: it no longer holds the namespace (a bare cmdline check is not enough:
        /proc/PID/cmdline empties early in an exit, while the namespace is still held)."""
        proc = self._children.get(pid)
        if proc is not None and proc.poll() is not None:
            del self._children[pid]
            return True
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            return True
        return state in (b"Z", b"X")

    def start_extra(self, name: str, argv: list[str], *, in_netns: bool = True, cwd: str | None = None) -> Extra:
        """Start a process of the testnet besides the routers (inside the namespace unless told otherwise),
        its output in BASE/<name>.log (from this start on); one that still runs under that name is kept.
        `down` stops it."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
            raise TestnetError(f"bad process name {name!r}")
        extra = next((e for e in self.extras if e.name == name), None)
        if extra is not None and extra.running and extra.argv == argv:
            return extra
        if extra is not None:
            self._stop([extra])
            self.extras.remove(extra)
        extra = Extra(name, list(argv), in_netns)
        command = ["ip", "netns", "exec", self.netns, *argv] if in_netns else list(argv)
        self._spawn(extra, command, self.base / f"{name}.log", cwd or str(self.base), append=False)
        self.extras.append(extra)
        self.save()
        log.info("started %s pid %d", name, extra.pid)
        return extra

    def _stop(self, routers: list[Router] | list[Extra]) -> None:
        """SIGTERM every process we own (all at once), SIGKILL whatever still runs after STOP_TIMEOUT_S."""
        stopping = [r for r in routers if r.running]
        for r in stopping:
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.pid, signal.SIGTERM)         # i2pd: immediate stop; SIGINT = 10-minute drain
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(not self._exited(r.pid) for r in stopping) and time.monotonic() < deadline:
            time.sleep(0.1)
        for r in stopping:
            if not self._exited(r.pid) and r.running:
                log.warning("%s did not stop within %.0f s: SIGKILL", r.name, STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(r.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(not self._exited(r.pid) for r in stopping) and time.monotonic() < deadline:
            time.sleep(0.05)
        for r in routers:
            if not r.running:
                r.pid = None

    # ----- status

    def status(self, *, sessions: bool = True) -> list[RouterStatus]:
        return [self.router_status(r, sessions=sessions) for r in self.routers]

    def set_i2pd_tunnels(self, router: str | Router, name: str, conf: str | None) -> Path:
        """Write (or with None remove) `tunnels.d/<name>.conf` of an i2pd router and make a running i2pd
        re-read its tunnels (SIGHUP). Keys named in `conf` are files in that router's data dir."""
        r = self.router(router)
        if r.kind != "i2pd":
            raise TestnetError(f"{r.name} is not an i2pd router")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
            raise TestnetError(f"bad tunnels file name {name!r}")
        path = Path(r.datadir) / "tunnels.d" / f"{name}.conf"
        if conf is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_text(path, conf)
        if r.running:
            os.kill(r.pid, signal.SIGHUP)   # i2pd's daemon reloads tunnels.conf and tunnels.d on SIGHUP
        return path

    def restart(self, router: str | Router) -> None:
        """Stop one router and start it again (same identity) with its data dir's files as they are now:
        `up()` would rewrite them, this keeps what a test changed (an i2pd subscriptions.txt, say)."""
        r = self.router(router)
        self._stop([r])
        self._launch(r)
        self.save()

    def router_status(self, router: str | Router, *, sessions: bool = True) -> RouterStatus:
        """The console's figures. i2pd 2.45.1's console thread can crash rendering the transports page while
        sessions come and go (a null remote identity), so polling loops pass sessions=False."""
        r = self.router(router)
        st = RouterStatus(name=r.name, running=r.running)
        if not st.running or r.kind != "i2pd":
            return st
        try:
            main = parse_main_page(self.http_get(r, "/"))
            tunnels = parse_tunnels_page(self.http_get(r, "/?page=tunnels"))
            transports = parse_transports_page(self.http_get(r, "/?page=transports")) if sessions else None
        except (OSError, http.client.HTTPException, TestnetError) as exc:
            st.error = f"console: {exc}"[:120]
            return st
        st.known_routers = main.known_routers
        st.floodfills = main.floodfills
        st.network_status = main.network_status
        st.router_ident = main.router_ident
        st.exploratory_in, st.exploratory_out = tunnels
        if transports is not None:
            st.ntcp2_sessions = sum(t.transport == "NTCP2" for t in transports)
            st.ssu2_sessions = sum(t.transport == "SSU2" for t in transports)
        return st

    def wait_ready(self, timeout: float = 120.0) -> list[RouterStatus]:
        """Poll until every i2pd knows all routers, has a session and >= 1-hop exploratory tunnels."""
        total = len(self.routers)
        deadline = time.monotonic() + timeout
        log.info("waiting up to %.0f s until every i2pd knows all %d routers, has sessions and tunnels",
                 timeout, total)
        while True:
            statuses = self.status(sessions=False)
            dead = [s.name for s in statuses if not s.running]
            if dead:
                raise TestnetError(f"router(s) stopped: {', '.join(dead)} "
                                   f"(logs: {', '.join(str(self._log_path(self.router(n))) for n in dead)})")
            if all(s.ready(total) for s in statuses):
                return self.status()          # once, with the sessions, for the table
            if time.monotonic() >= deadline:
                raise TestnetError(f"not ready after {timeout:.0f} s (routers keep running):\n"
                                   + self.format_table(statuses))
            time.sleep(1.0)

    def format_table(self, statuses: list[RouterStatus] | None = None) -> str:
        by_name = {s.name: s for s in statuses or []}
        lines = [f"testnet in {self.base}  netns {self.netns}  netid {self.netid}  "
                 f"(clients: ip netns exec {self.netns} <command>)",
                 f"{'name':4} {'kind':5} {'pid':>7} {'NTCP2/SSU2':20} {'console':>7} {'SAM':>5} {'proxy':>5} "
                 f"{'ff':2} router hash"]
        for r in self.routers:
            def port(p: int | None) -> str:
                return str(p) if p else "-"
            line = (f"{r.name:4} {r.kind:5} {r.pid if r.running else '-':>7} {f'{r.address}:{r.port}':20} "
                    f"{port(r.console):>7} {port(r.sam):>5} {port(r.http_proxy):>5} "
                    f"{'ff' if r.floodfill else '':2} {r.ident_hash or '?'}")
            if r.i2pcontrol:
                line += f"  i2pcontrol {r.i2pcontrol}"
            s = by_name.get(r.name)
            if s is not None and s.known_routers is not None:
                line += (f"\n     routers={s.known_routers} floodfills={s.floodfills} ntcp2={s.ntcp2_sessions} "
                         f"ssu2={s.ssu2_sessions} exploratory={s.exploratory_in}/{s.exploratory_out} "
                         f"status={s.network_status}")
            elif s is not None and s.error:
                line += f"\n     {s.error}"
            lines.append(line)
        for e in self.extras:
            lines.append(f"{e.name:14} {e.pid if e.running else '-':>7} {' '.join(e.argv)[:100]}")
        return "\n".join(lines)

    # ----- down

    def down(self) -> list[int]:
        """Stop our routers and other processes (by recorded PID only), delete the namespace; idempotent.

        Returns the PIDs of foreign processes that kept the namespace alive (then it is left in place).
        """
        running = [p for p in [*self.extras, *self.routers] if p.running]
        for r in running:
            log.info("stopping %s pid %d", r.name, r.pid)
        self._stop([*self.extras, *self.routers])
        for r in [*self.extras, *self.routers]:
            r.pid = None
        if self.base.exists():
            self.save()
        others = [pid for pid in netns_pids(self.netns) if pid != os.getpid()]
        if others:
            log.warning("namespace %s still has processes %s that we did not start: left in place",
                        self.netns, others)
            return others
        delete_netns(self.netns)
        return []

    # ----- helpers for tests and clients

    def in_netns(self) -> contextlib.AbstractContextManager[None]:
        """Move the calling thread into the testnet's namespace (and back); sockets made there stay there."""
        return in_netns(self.netns)

    def http_get(self, router: str | Router, path: str = "/", timeout: float = 5.0) -> str:
        """GET `path` from an i2pd's web console (inside the namespace); the body as text."""
        r = self.router(router)
        if r.console is None:
            raise TestnetError(f"{r.name} has no web console")
        conn = http.client.HTTPConnection("127.0.0.1", r.console, timeout=timeout)
        try:
            with self.in_netns():
                conn.connect()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise TestnetError(f"{r.name} console {path}: HTTP {response.status}")
            return body.decode("utf-8", "replace")
        finally:
            conn.close()

    def i2pd_peers(self, router: str | Router, transport: str = "NTCP2") -> set[str]:
        """Router hashes (I2P base64) with which this i2pd has an established session of `transport`.

        The console prints 4 hash characters; they are completed from the router's own netDb files.
        A prefix that names no single netDb entry is returned as it is.
        """
        r = self.router(router)
        sessions = parse_transports_page(self.http_get(r, "/?page=transports"))
        known = netdb_hashes(r.datadir)
        peers = set()
        for s in sessions:
            if s.transport != transport:
                continue
            matches = [h for h in known if h.startswith(s.hash_prefix)]
            peers.add(matches[0] if len(matches) == 1 else s.hash_prefix)
        return peers

    def known_routers(self, router: str | Router) -> int | None:
        """RouterInfos in this i2pd's netDb, itself included (console main page)."""
        return parse_main_page(self.http_get(router, "/")).known_routers

    def sam_port(self, router: str | Router) -> int:
        r = self.router(router)
        if r.sam is None:
            raise TestnetError(f"{r.name} has no SAM bridge")
        return r.sam

    def add_pyi2p_address(self) -> str:
        """A fresh PREFIX.(200+i) address on the namespace's lo, for an in-process router of the tests."""
        used = set(self.extra_addresses)
        for i in range(1, 256 - EXTRA_HOST_OFFSET):
            address = f"{self.address_prefix}.{EXTRA_HOST_OFFSET + i}"
            if address not in used:
                _ip("-n", self.netns, "addr", "add", f"{address}/32", "dev", "lo")
                self.extra_addresses.append(address)
                self.save()
                return address
        raise TestnetError("no free extra address left in the namespace")


def child_env() -> dict[str, str]:
    """The environment of the processes we start: they import the same pyi2p as this process."""
    env = dict(os.environ)
    source = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


def _die_with_parent() -> None:
    # child side of fork: the router gets SIGTERM when the thread that started it ends
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


_version_cache: dict[str | None, str] = {}


def i2pd_version(binary: str | None = None) -> str:
    """First line of `i2pd --version` ("i2pd version 2.45.1 (0.9.56)") for `binary` (None: i2pd_binary())."""
    if binary not in _version_cache:
        path = binary or i2pd_binary()
        text = ""
        if path:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        _version_cache[binary] = text.splitlines()[0] if text else "unknown"
    return _version_cache[binary]


# ---------------------------------------------------------------- CLI

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `testnet up|status|down` on the `pyi2p` command's subparsers."""
    parser = subparsers.add_parser("testnet", help="a private testnet of i2pd (and pyi2p) routers",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="testnet_command", required=True)
    up = actions.add_parser("up", help="create and start the testnet (idempotent), wait until ready")
    up.add_argument("-n", type=int, default=5, dest="i2pd_count", help="i2pd routers (default 5)")
    up.add_argument("-m", type=int, default=0, dest="pyi2p_count", help="pyi2p routers (default 0)")
    up.add_argument("--netid", type=int, default=42, help="private network id (default 42)")
    up.add_argument("--floodfills", type=int, default=2, help="the first F i2pd routers are floodfills (default 2)")
    up.add_argument("--first-port", type=int, default=DEFAULT_FIRST_PORT,
                    help=f"router k uses ports P..P+4, P = first + 10*(k-1) (default {DEFAULT_FIRST_PORT})")
    up.add_argument("--netns", default=DEFAULT_NETNS, help=f"network namespace (default {DEFAULT_NETNS})")
    up.add_argument("--wait", type=float, default=120.0, help="seconds to wait until ready; 0: don't (default 120)")
    up.add_argument("--ssu2-only", type=int, default=0, metavar="K",
                    help="the last K i2pd routers run with NTCP2 off, so peers reach them over SSU2 (default 0)")
    up.add_argument("--i2pd", metavar="PATH", help="the i2pd executable to run (default: $PYI2P_I2PD, else i2pd in PATH)")
    up.add_argument("--demo", action="store_true",
                    help="also a web site, IRC, mail and a torrent on the network, reachable from this host "
                         "(two pyi2p nodes at least; see docs/tour.md)")
    up.add_argument("--demo-ports", default="4444,6668,7659,7660", metavar="PROXY,IRC,SMTP,POP3",
                    help="with --demo: the ports on this host's 127.0.0.1 (default 4444,6668,7659,7660)")
    up.set_defaults(func=_cmd_up)
    status = actions.add_parser("status", help="per-router state from the consoles")
    status.set_defaults(func=_cmd_status)
    down = actions.add_parser("down", help="stop every router and delete the namespace (idempotent)")
    down.set_defaults(func=_cmd_down)
    for p in (up, status, down):
        p.add_argument("--base", default=DEFAULT_BASE, help=f"state and data dir (default {DEFAULT_BASE})")
    return parser


@contextlib.contextmanager
def _progress_to_stderr() -> Iterator[None]:
    """Show the harness's progress on stderr for the length of one command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[testnet] %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        pyi2p_count = max(args.pyi2p_count, 2) if args.demo else args.pyi2p_count
        net = Testnet(args.base, i2pd_count=args.i2pd_count, pyi2p_count=pyi2p_count,
                      floodfills=args.floodfills, netid=args.netid, netns=args.netns, first_port=args.first_port,
                      i2pd=args.i2pd, ssu2_only=args.ssu2_only)
        with _progress_to_stderr():
            demo = None
            if args.demo:
                from .demo import Demo, DemoPorts
                demo = Demo(net, DemoPorts.parse(args.demo_ports))
                demo.prepare()
                net.make_identities()
                demo.start_services()
            statuses = net.up(wait=args.wait)
            if demo is not None and args.wait > 0:
                demo.wait_site(max(30.0, args.wait - (time.monotonic() - started)))
    except TestnetError as exc:
        print(f"testnet up: {exc}", file=sys.stderr)
        return 1
    print(net.format_table(statuses))
    if net.ready_after_s is not None and statuses:
        print(f"READY after {net.ready_after_s:.1f} s")
    if demo is not None:
        if args.wait > 0:
            print(f"demo.i2p answered through the proxy {time.monotonic() - started:.1f} s after the start")
        print()
        print(demo.instructions(ready=args.wait > 0), flush=True)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        net = Testnet.load(args.base)
        if net is None:
            print(f"testnet status: no testnet in {args.base}", file=sys.stderr)
            return 1
        statuses = net.status()
    except TestnetError as exc:
        print(f"testnet status: {exc}", file=sys.stderr)
        return 1
    print(net.format_table(statuses))
    ready = all(s.ready(len(net.routers)) for s in statuses)
    print("READY" if ready else "NOT READY")
    return 0 if ready else 1


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        net = Testnet.load(args.base)
        if net is None:
            print(f"testnet down: nothing recorded in {args.base}")
            return 0
        with _progress_to_stderr():
            leftover = net.down()
    except TestnetError as exc:
        print(f"testnet down: {exc}", file=sys.stderr)
        return 1
    if leftover:
        print(f"namespace {net.netns} kept: processes {leftover} still run in it", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pyi2p.testnet up|status|down`: the same subcommands without the rest of `pyi2p`."""
    parser = argparse.ArgumentParser(prog="pyi2p")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["testnet", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
