"""I2PTunnel against i2pd 2.45.1's own tunnels on the private testnet.

One pyi2p router (in-process, inside the namespace) runs a TunnelsService; i2pd router r3 runs the
matching tunnels from a tunnels.d file. Checked, each with a bounded retry:
- i2pd's HTTP proxy fetches a page from a site behind our `http` server tunnel, and the site sees the
  X-I2P-DestB32 of i2pd's proxy;
- an i2pd `client` tunnel reaches a TCP echo service behind our `server` tunnel, and our `client`
  tunnel reaches one behind an i2pd `server` tunnel;
- `udpclient`/`udpserver`: in test_i2ptunnel_udp.py, with each i2pd version;
- IRC: ngircd behind our `irc` server tunnel (WEBIRC), one IRC client through our `ircclient` tunnel
  and one through an i2pd `client` tunnel join one channel and talk; a CTCP VERSION sent on our side
  never reaches the ircd.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import irc.client_aio
import pytest
from aiohttp import web

from apps.network import InProcessNetwork
from apps.tunnels import TunnelsService
from core.config import load_config
from core.data.privatekeys import PrivateKeys
from core.router import Router
from core.tunnel.service import TunnelSettings

pytestmark = pytest.mark.interop

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
SESSION = ("inbound.length = 2\noutbound.length = 2\ninbound.quantity = 2\noutbound.quantity = 2\n"
           "i2cp.leaseSetEncType = 4\n")
I2PD_SESSION = "inbound.length = 2\noutbound.length = 2\ninbound.quantity = 2\noutbound.quantity = 2\n"
STEP_TIMEOUT = 60.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port in the calling thread's namespace."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STARTED = time.monotonic()


def progress(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {text}", flush=True)


async def retry(what: str, attempt, timeout: float = STEP_TIMEOUT, pause: float = 2.0):
    """attempt() until it returns without an error, within `timeout` seconds; the last error otherwise."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            result = await asyncio.wait_for(attempt(), max(5.0, deadline - time.monotonic()))
            progress(f"{what}: works (try {tries})")
            return result
        except (OSError, ConnectionError, TimeoutError, AssertionError, aiohttp.ClientError) as exc:
            if time.monotonic() + pause >= deadline:
                raise AssertionError(f"{what}: still failing after {tries} tries in {timeout:.0f} s: "
                                     f"{type(exc).__name__}: {exc}") from None
            await asyncio.sleep(pause)


async def echo_once(port: int, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        assert got == payload, "echo answered something else"
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError(f"closed after {len(exc.partial)} of {len(payload)} bytes") from None
    finally:
        writer.close()


async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


class IRCClient:
    """An IRC client from PyPI (jaraco's `irc`, asyncio reactor): registers, joins, says, and keeps every raw
    line it receives."""

    def __init__(self, port: int, nick: str):
        self.port, self.nick = port, nick
        self.lines: list[str] = []
        self._new = asyncio.Event()
        self.reactor = irc.client_aio.AioReactor(loop=asyncio.get_running_loop())
        self.reactor.add_global_handler("all_raw_messages", self._on_raw)
        self.reactor.add_global_handler("disconnect", lambda connection, event: self._new.set())
        self.connection = None

    def _on_raw(self, connection, event) -> None:
        self.lines.append(event.arguments[0])
        self._new.set()

    async def connect(self) -> None:
        self.connection = await self.reactor.server().connect("127.0.0.1", self.port, self.nick,
                                                              username=self.nick, ircname=f"{self.nick} test")
        await self.wait_for(lambda line: f" 001 {self.nick} " in line, 60)

    def send(self, *lines: str) -> None:
        for line in lines:
            self.connection.send_raw(line)

    async def wait_for(self, predicate, timeout: float = 30) -> str:
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self.connection is not None and not self.connection.is_connected():
                    raise ConnectionError(f"{self.nick}: connection closed; last lines {self.lines[-3:]}")
                self._new.clear()
                await self._new.wait()

    def close(self) -> None:
        if self.connection is not None and self.connection.is_connected():
            self.connection.disconnect("bye")


def start_ngircd(testnet, folder: Path, port: int) -> subprocess.Popen:
    conf = folder / "ngircd.conf"
    conf.write_text(f"[Global]\nName = irc.test.i2p\nInfo = pyi2p interop ircd\nListen = 127.0.0.1\nPorts = {port}\n"
                    f"PidFile = {folder}/ngircd.pid\nMotdPhrase = test\n[Limits]\nPingTimeout = 300\n"
                    f"[Options]\nDNS = yes\nIdent = no\nPAM = no\nWebIRCPassword = webirc-secret\n")
    log = open(folder / "ngircd.log", "wb")
    return subprocess.Popen(["ip", "netns", "exec", testnet.netns, shutil.which("ngircd") or "/usr/sbin/ngircd",
                             "-n", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT)


async def wait_file(path: Path, timeout: float = 30) -> Path:
    async with asyncio.timeout(timeout):
        while not path.is_file() or path.stat().st_size == 0:
            await asyncio.sleep(0.2)
    return path


async def published(service: TunnelsService, network: InProcessNetwork, timeout: float = 120) -> None:
    """Every session's LeaseSet confirmed by a floodfill (i2pd finds us through the netDb)."""
    await service.wait_ready(timeout)
    failed = [t.get("error") for t in service.status()["tunnels"] if t["state"] != "running"]
    assert not failed, failed
    async with asyncio.timeout(timeout):
        while not all(s._session.session.leaseset_published_at is not None for s in network._sessions):
            await asyncio.sleep(0.2)


@pytest.mark.skipif(shutil.which("ngircd") is None and not os.path.exists("/usr/sbin/ngircd"),
                    reason="ngircd is not installed")
async def test_i2ptunnel_with_i2pd(testnet, tmp_path):
    address = testnet.add_pyi2p_address()
    i2pd = testnet.router("r3")
    i2pd_dir = Path(i2pd.datadir)
    failures: list[str] = []
    ngircd = None
    with testnet.in_netns():
        router = Router(load_config(tmp_path / "node", {"netid": testnet.netid, "host": address, "port": 24400,
                                                        "reseed_file": str(testnet.seed_file), "control_port": 0,
                                                        "sam_port": 0}),
                        tunnel_settings=SETTINGS)
        service: TunnelsService | None = None
        runners: list[web.AppRunner] = []
        servers: list[asyncio.base_events.Server] = []
        transports: list[asyncio.DatagramTransport] = []
        clients: list[IRCClient] = []
        try:
            await router.start()
            progress("router started")
            network = InProcessNetwork(router.client)
            # the services behind the tunnels, on this namespace's loopback
            seen_headers: list[dict] = []

            async def page(request: web.Request) -> web.Response:
                seen_headers.append(dict(request.headers))
                return web.Response(text="hello from behind a pyi2p http tunnel\n",
                                    headers={"Server": "secret-server/1.0", "X-Powered-By": "PHP/8.2"})
            app = web.Application()
            app.router.add_get("/", page)
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            site_port = free_port()
            await web.TCPSite(runner, "127.0.0.1", site_port).start()
            echo_ours = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
            echo_theirs = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
            servers += [echo_ours, echo_theirs]
            irc_port = free_port()
            ngircd = start_ngircd(testnet, tmp_path, irc_port)

            # ours: one server destination (site.dat) with a port per service, one client destination
            datadir = tmp_path / "tunnels"
            datadir.mkdir()
            (datadir / "tunnels.conf").write_text(
                f"[site]\ntype = http\nhost = 127.0.0.1\nport = {site_port}\ninport = 80\nkeys = site.dat\n{SESSION}"
                f"[echo]\ntype = server\nhost = 127.0.0.1\nport = {echo_ours.sockets[0].getsockname()[1]}\n"
                f"inport = 7\nkeys = site.dat\n"
                f"[ircd]\ntype = irc\nhost = 127.0.0.1\nport = {irc_port}\ninport = 6667\nkeys = site.dat\n"
                f"webircpassword = webirc-secret\n")
            service = TunnelsService({}, datadir, network)
            await service.start()
            await published(service, network)
            progress("our server destination is published")
            ours = PrivateKeys.load(datadir / "site.dat").destination.b32_address

            # i2pd's: one destination for all its tunnels (its connection to us hands us its LeaseSet)
            i2pd_echo_port, i2pd_irc_port = free_port(), free_port()
            testnet.set_i2pd_tunnels(i2pd, "pyi2p-interop",
                f"[to-pyi2p-echo]\ntype = client\naddress = 127.0.0.1\nport = {i2pd_echo_port}\n"
                f"destination = {ours}\ndestinationport = 7\nkeys = interop.dat\n{I2PD_SESSION}"
                f"[echo-i2pd]\ntype = server\nhost = 127.0.0.1\nport = {echo_theirs.sockets[0].getsockname()[1]}\n"
                f"inport = 7\nkeys = interop.dat\n"
                f"[to-pyi2p-irc]\ntype = client\naddress = 127.0.0.1\nport = {i2pd_irc_port}\n"
                f"destination = {ours}\ndestinationport = 6667\nkeys = interop.dat\n")
            theirs = PrivateKeys.load(await wait_file(i2pd_dir / "interop.dat")).destination.b32_address
            progress("i2pd's tunnels are loaded")

            # 1. i2pd's HTTP proxy -> our http server tunnel
            async def fetch() -> None:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://{ours}/", proxy=f"http://127.0.0.1:{i2pd.http_proxy}",
                                        timeout=aiohttp.ClientTimeout(total=45)) as response:
                        body = await response.text()
                        assert response.status == 200, f"HTTP {response.status}: {body[:200]}"
                        assert body == "hello from behind a pyi2p http tunnel\n"
                        assert "secret-server" not in response.headers.get("Server", "")
                        assert "X-Powered-By" not in response.headers
            try:
                await retry("i2pd HTTP proxy -> pyi2p http tunnel", fetch, 120)
                caller = seen_headers[-1]["X-I2P-DestB32"]
                tunnels_page = testnet.http_get(i2pd, "/?page=i2p_tunnels")
                assert caller.endswith(".b32.i2p") and caller[:52] in tunnels_page, (
                    f"site saw X-I2P-DestB32 {caller}, not a destination of i2pd's tunnels page")
                assert seen_headers[-1]["Connection"] == "close"
            except AssertionError as exc:
                failures.append(str(exc))
                progress(str(exc))

            # 2. i2pd client tunnel -> our server tunnel -> echo
            try:
                await retry("i2pd client tunnel -> pyi2p server tunnel",
                            lambda: echo_once(i2pd_echo_port, os.urandom(50_000)), 120)
            except AssertionError as exc:
                failures.append(str(exc))
                progress(str(exc))

            # 3. our client tunnel -> i2pd server tunnel -> echo
            # from the destination i2pd's stream came to: i2pd 2.45.1 may never publish a fresh LeaseSet (testnet
            # README pitfall 5), and only the destination it connected to was handed it
            added = await service.control_add({"name": "to-i2pd", "type": "client", "port": 0,
                                               "destination": theirs, "destinationport": 7, "keys": "site.dat"})
            await service.control_add({"name": "irc", "type": "ircclient", "port": 0, "destination": ours,
                                       "destinationport": 6667, "keys": "client.dat"})
            await published(service, network)
            progress("our client destination is published")
            ports = {t["name"]: int(t["listening"].rsplit(":", 1)[1]) for t in service.status()["tunnels"]
                     if t.get("listening")}
            assert added["name"] == "to-i2pd"
            try:
                await retry("pyi2p client tunnel -> i2pd server tunnel",
                            lambda: echo_once(ports["to-i2pd"], os.urandom(50_000)), 120)
            except AssertionError as exc:
                failures.append(str(exc))
                progress(str(exc))

            # 4. IRC: ngircd behind our irc tunnel; alice through our ircclient tunnel, bob through i2pd's client
            try:
                alice, bob = IRCClient(ports["irc"], "alice"), IRCClient(i2pd_irc_port, "bob")
                clients += [alice, bob]
                await alice.connect()
                await retry("IRC through the i2pd client tunnel", bob.connect, 120)
                alice.send("JOIN #i2p")
                await alice.wait_for(lambda line: " 366 alice #i2p" in line)
                bob.send("JOIN #i2p")
                await bob.wait_for(lambda line: " 366 bob #i2p" in line)
                alice.send("PRIVMSG bob :\x01VERSION\x01", "PRIVMSG #i2p :hello bob")
                said = await bob.wait_for(lambda line: "PRIVMSG #i2p" in line and "hello bob" in line)
                # the ircd saw alice coming from our client tunnel's b32 (WEBIRC from the irc server tunnel)
                client_b32 = next(t["b32"] for t in service.status()["tunnels"] if t["name"] == "irc")
                assert said.startswith(":alice!") and said.split(" ")[0].endswith("@" + client_b32), said
                bob.send("PRIVMSG #i2p :hello alice")
                await alice.wait_for(lambda line: "PRIVMSG #i2p" in line and "hello alice" in line)
                assert not any("\x01" in line for line in bob.lines), "a CTCP reached the other side"
            except (AssertionError, TimeoutError, ConnectionError, OSError) as exc:
                failures.append(f"IRC: {type(exc).__name__}: {exc}")
            print("\ntunnels:", {t["name"]: (t["state"], t["connections_total"], t["bytes_in"], t["bytes_out"],
                                             t["errors"], t["last_error"][:80]) for t in service.status()["tunnels"]})
            assert not failures, "\n".join(failures)
        finally:
            for client in clients:
                client.close()
            if service is not None:
                await service.stop()
            for server in servers:
                server.close()
            for transport in transports:
                transport.close()
            for runner in runners:
                await runner.cleanup()
            testnet.set_i2pd_tunnels(i2pd, "pyi2p-interop", None)
            await router.stop()
            if ngircd is not None:
                ngircd.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    ngircd.wait(10)
                if ngircd.poll() is None:
                    ngircd.kill()
