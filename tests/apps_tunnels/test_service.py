"""Tunnel pairs over an in-process I2P (InProcessNetwork(ClientAPI())) with real TCP/UDP on 127.0.0.1:
echo, bulk data, HTTP through aiohttp, IRC, UDP, many connections, and tunnels that cannot start."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat

import pytest
from aiohttp import web

from apps.network import InProcessNetwork
from apps.service import ServiceError
from apps.tunnels import TunnelsService
from core.client import ClientAPI
from core.data.privatekeys import PrivateKeys

TIMEOUT = 20


@pytest.fixture
async def services():
    started: list[TunnelsService] = []
    yield started
    for service in started:
        await service.stop()


@pytest.fixture
async def echo_port():
    async def echo(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def start(services, tmp_path, network, conf: str, **deps) -> TunnelsService:
    (tmp_path / "tunnels.conf").write_text(conf)
    service = TunnelsService({}, tmp_path, network, **deps)
    services.append(service)
    await service.start()
    await service.wait_ready(TIMEOUT)
    return service


async def until(predicate, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def tunnel(service: TunnelsService, name: str) -> dict:
    return next(t for t in service.status()["tunnels"] if t["name"] == name)


def local_port(service: TunnelsService, name: str) -> int:
    return int(tunnel(service, name)["listening"].rsplit(":", 1)[1])


async def server_b32(services, tmp_path, network, conf: str) -> tuple[TunnelsService, str]:
    service = await start(services, tmp_path, network, conf)
    return service, service.status()["tunnels"][0]["b32"]


async def exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    chunks = []
    async with asyncio.timeout(TIMEOUT):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    writer.close()
    return b"".join(chunks)


def two_dirs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return tmp_path / "a", tmp_path / "b"


async def echo_pair(services, tmp_path, network, echo_port, client_extra: str = "", server_extra: str = ""):
    server_dir, client_dir = two_dirs(tmp_path)
    server, b32 = await server_b32(services, server_dir, network,
                                   f"[echo]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\nkeys = echo.dat\n"
                                   + server_extra)
    client = await start(services, client_dir, network,
                         f"[to-echo]\ntype = client\nport = 0\ndestination = {b32}\n" + client_extra)
    return server, client


async def test_bulk_data_through_a_client_server_pair(services, tmp_path, network, echo_port):
    server, client = await echo_pair(services, tmp_path, network, echo_port)
    payload = os.urandom(4 * 1024 * 1024)
    answer = await exchange(local_port(client, "to-echo"), payload)
    assert hashlib.sha256(answer).digest() == hashlib.sha256(payload).digest()
    await until(lambda: tunnel(client, "to-echo")["connections_open"] == tunnel(server, "echo")["connections_open"] == 0)
    c, s = tunnel(client, "to-echo"), tunnel(server, "echo")
    assert (c["connections_total"], c["bytes_out"], c["bytes_in"], c["connections_open"]) == (1, len(payload), len(payload), 0)
    assert (s["connections_total"], s["bytes_in"], s["bytes_out"], s["errors"]) == (1, len(payload), len(payload), 0)
    assert c["state"] == s["state"] == "running"
    assert c["listening"].startswith("127.0.0.1:") and c["b32"].endswith(".b32.i2p")
    key_file = tmp_path / "a" / "echo.dat"
    assert PrivateKeys.load(key_file).destination.b32_address == s["b32"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_100_concurrent_connections(services, tmp_path, network, echo_port):
    server, client = await echo_pair(services, tmp_path, network, echo_port)
    port = local_port(client, "to-echo")
    # all at once: in-process delivery hands the server destination the 100 SYNs in one burst
    connections = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(100)))
    await until(lambda: tunnel(server, "echo")["connections_open"] == 100)
    payloads = [os.urandom(20_000 + i) for i in range(100)]

    async def talk(connection, payload):
        reader, writer = connection
        writer.write(payload)
        writer.write_eof()
        answer = b""
        async with asyncio.timeout(TIMEOUT):
            while chunk := await reader.read(65536):
                answer += chunk
        writer.close()
        return answer
    answers = await asyncio.gather(*(talk(c, p) for c, p in zip(connections, payloads)))
    assert answers == payloads
    assert tunnel(client, "to-echo")["connections_total"] == 100
    assert tunnel(client, "to-echo")["errors"] == 0


async def test_destination_list_and_name(services, tmp_path, network, echo_port):
    server_dir, client_dir = two_dirs(tmp_path)
    _, b32 = await server_b32(services, server_dir, network,
                              f"[echo]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\ninport = 7\n")
    network.resolver = {"echo.i2p": next(s for s in network._sessions).destination}.get
    client = await start(services, client_dir, network,
                         f"[named]\ntype = client\nport = 0\ndestination = echo.i2p, {b32}\ndestinationport = 7\n"
                         f"[wrongport]\ntype = client\nport = 0\ndestination = {b32}\ndestinationport = 8\n")
    for _ in range(4):
        assert await exchange(local_port(client, "named"), b"ping") == b"ping"
    assert await exchange(local_port(client, "wrongport"), b"ping") == b""      # nothing serves port 8
    assert tunnel(client, "wrongport")["errors"] == 1


async def test_keepaliveinterval_pings_the_destination(services, tmp_path, network, echo_port):
    _, client = await echo_pair(services, tmp_path, network, echo_port, client_extra="keepaliveinterval = 1\n")
    gone = PrivateKeys.generate().destination.b32_address      # nobody serves it: its pings go unanswered
    (tmp_path / "c").mkdir()
    lost = await start(services, tmp_path / "c", network, f"[lost]\ntype = client\nport = 0\ndestination = {gone}\n"
                                                          f"keepaliveinterval = 1\n[quiet]\ntype = client\nport = 0\n"
                                                          f"destination = {gone}\n")
    await until(lambda: tunnel(client, "to-echo")["keepalive_pongs"] >= 2
                and tunnel(lost, "lost")["keepalive_missed"] >= 1)
    assert tunnel(lost, "lost")["keepalive_pongs"] == 0
    assert (tunnel(lost, "quiet")["keepalive_pongs"], tunnel(lost, "quiet")["keepalive_missed"]) == (0, 0)


async def test_http_server_tunnel(services, tmp_path, network):
    async def page(request: web.Request) -> web.Response:
        seen = {k: v for k, v in request.headers.items()}
        return web.Response(text=json.dumps(seen), headers={"X-Powered-By": "PHP/8.2", "X-Runtime": "1"})
    runner = web.AppRunner(_app(page))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]
        server_dir, client_dir = two_dirs(tmp_path)
        server, b32 = await server_b32(services, server_dir, network,
                                       f"[web]\ntype = http\nhost = 127.0.0.1\nport = {port}\nhostoverride = site.local\n")
        client = await start(services, client_dir, network, f"[browse]\ntype = client\nport = 0\ndestination = {b32}\n")
        request = (b"GET / HTTP/1.1\r\nHost: site.i2p\r\nX-I2P-DestB32: forged.b32.i2p\r\n"
                   b"Connection: keep-alive\r\n\r\n")
        answer = await exchange(local_port(client, "browse"), request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        for name in (b"server:", b"date:", b"x-powered-by:", b"x-runtime:"):
            assert name not in head.lower()
        seen = json.loads(body)
        assert seen["X-I2P-DestB32"] == tunnel(client, "browse")["b32"]
        assert seen["X-I2P-DestB64"] == next(s for s in network._sessions if s.b32 == seen["X-I2P-DestB32"]).destination.b64
        assert seen["Host"] == "site.local" and seen["Connection"] == "close"
        # a head over 64 KB is answered 431 and never reaches the site
        answer = await exchange(local_port(client, "browse"), b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert (await exchange(local_port(client, "browse"), b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert tunnel(server, "web")["errors"] == 2
    finally:
        await runner.cleanup()


def _app(handler) -> web.Application:
    app = web.Application()
    app.router.add_get("/", handler)
    return app


async def test_http_server_tunnel_site_down(services, tmp_path, network):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    server_dir, client_dir = two_dirs(tmp_path)
    server, b32 = await server_b32(services, server_dir, network,
                                   f"[web]\ntype = http\nhost = 127.0.0.1\nport = {dead_port}\n")
    client = await start(services, client_dir, network, f"[b]\ntype = client\nport = 0\ndestination = {b32}\n")
    answer = await exchange(local_port(client, "b"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert str(dead_port) in tunnel(server, "web")["last_error"]


async def test_http_server_tunnel_names_a_caller_that_sends_no_request(services, tmp_path, network, monkeypatch):
    import apps.tunnels.tunnels
    monkeypatch.setattr(apps.tunnels.tunnels, "HEAD_TIMEOUT", 0.5)
    server_dir, client_dir = two_dirs(tmp_path)
    server, b32 = await server_b32(services, server_dir, network, "[web]\ntype = http\nhost = 127.0.0.1\nport = 9\n")
    client = await start(services, client_dir, network, f"[b]\ntype = client\nport = 0\ndestination = {b32}\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", local_port(client, "b"))
    writer.write(b"GET / HTTP/1.1\r\n")                 # and nothing more
    await writer.drain()
    await until(lambda: tunnel(server, "web")["errors"] == 1)
    caller = tunnel(client, "b")["b32"]
    assert tunnel(server, "web")["last_error"] == f"request from {caller}: no request head within 0.5 s"
    writer.close()


async def test_accesslist(services, tmp_path, network, echo_port):
    server_dir, client_dir = two_dirs(tmp_path)
    allowed = PrivateKeys.generate()
    allowed.save(client_dir / "allowed.dat")
    server, b32 = await server_b32(services, server_dir, network,
                                   f"[echo]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n"
                                   f"accesslist = {allowed.destination.b32_address}\n")
    client = await start(services, client_dir, network,
                         f"[in]\ntype = client\nport = 0\ndestination = {b32}\nkeys = allowed.dat\n"
                         f"[out]\ntype = client\nport = 0\ndestination = {b32}\n")
    assert await exchange(local_port(client, "in"), b"hello") == b"hello"
    assert await exchange(local_port(client, "out"), b"hello") == b""
    s = tunnel(server, "echo")
    assert (s["connections_total"], s["connections_refused"]) == (1, 1)


async def test_irc_client_and_server_tunnels(services, tmp_path, network):
    received: list[bytes] = []
    said = asyncio.Event()

    async def ircd(reader, writer):
        writer.write(b":irc.test 001 alice :Welcome\r\n:bob!b@x PRIVMSG alice :\x01VERSION\x01\r\n"
                     b":bob!b@x PRIVMSG #c :hi alice\r\n:irc.test KILL alice :nope\r\n")
        await writer.drain()
        while line := await reader.readline():
            received.append(line)
            if line.startswith(b"QUIT"):
                said.set()
                break
        writer.close()
    ircd_server = await asyncio.start_server(ircd, "127.0.0.1", 0)
    try:
        port = ircd_server.sockets[0].getsockname()[1]
        server_dir, client_dir = two_dirs(tmp_path)
        _, b32 = await server_b32(services, server_dir, network,
                                  f"[ircd]\ntype = irc\nhost = 127.0.0.1\nport = {port}\nwebircpassword = pw\n")
        client = await start(services, client_dir, network, f"[irc]\ntype = ircclient\nport = 0\ndestination = {b32}\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", local_port(client, "irc"))
        writer.write(b"NICK alice\r\nUSER alice myhost.lan srv :Alice\r\nPRIVMSG bob :\x01VERSION\x01\r\n"
                     b"PRIVMSG #c :hello\r\nQUIT :irssi 1.4 on Linux\r\n")
        await writer.drain()
        await asyncio.wait_for(said.wait(), TIMEOUT)
        got = []
        async with asyncio.timeout(TIMEOUT):
            while line := await reader.readline():
                got.append(line)
        writer.close()
        caller = tunnel(client, "irc")["b32"]
        assert received == [f"WEBIRC pw cgiirc {caller} 127.0.0.1\r\n".encode(), b"NICK alice\r\n",
                            f"USER alice {caller} * Alice\r\n".encode(), b"PRIVMSG #c hello\r\n", b"QUIT :leaving\r\n"]
        assert got == [b":irc.test 001 alice Welcome\r\n", b":bob!b@x PRIVMSG #c :hi alice\r\n"]
    finally:
        ircd_server.close()


async def test_udp_client_and_server_tunnels(services, tmp_path, network):
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(b"echo:" + data, addr)
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        echo_port = echo_transport.get_extra_info("sockname")[1]
        server_dir, client_dir = two_dirs(tmp_path)
        _, b32 = await server_b32(services, server_dir, network,
                                  f"[udp-echo]\ntype = udpserver\nhost = 127.0.0.1\nport = {echo_port}\n")
        client = await start(services, client_dir, network,
                             f"[udp]\ntype = udpclient\nport = 0\ndestination = {b32}\ndestinationport = 0\n")
        port = local_port(client, "udp")
        replies: asyncio.Queue = asyncio.Queue()

        class App(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                replies.put_nowait(data)
        # the destination's lookup runs in the background: until it is done datagrams are dropped
        async with asyncio.timeout(TIMEOUT):
            while tunnel(client, "udp")["errors"] == 0 and not client._tunnels["udp"]._remote:
                await asyncio.sleep(0.05)
            while client._tunnels["udp"]._remote is None:
                await asyncio.sleep(0.05)
        apps = []
        for _ in range(2):
            transport, _ = await loop.create_datagram_endpoint(App, local_addr=("127.0.0.1", 0),
                                                               remote_addr=("127.0.0.1", port))
            apps.append(transport)
        for i in range(5):                              # a burst: repliable first, raw after (as i2pd)
            for n, app in enumerate(apps):
                app.sendto(b"%d-%d" % (n, i))
        got = set()
        async with asyncio.timeout(TIMEOUT):
            while len(got) < 10:
                got.add(await replies.get())
        assert got == {b"echo:%d-%d" % (n, i) for n in range(2) for i in range(5)}
        u = tunnel(client, "udp")
        assert (u["connections_total"], u["bytes_out"]) == (2, sum(len(b"%d-%d" % (n, i)) for n in range(2) for i in range(5)))
        for app in apps:
            app.close()
    finally:
        echo_transport.close()


async def test_shared_key_file_shares_one_destination(services, tmp_path, network, echo_port):
    service = await start(services, tmp_path, network,
                          f"[a]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\ninport = 1\nkeys = same.dat\n"
                          f"[b]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\ninport = 2\nkeys = same.dat\n"
                          f"[c]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\nkeys = transient-x\n"
                          f"[d]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\ninport = 9\nkeys = transient-x\n"
                          f"[e]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n")
    b32 = {name: tunnel(service, name)["b32"] for name in "abcde"}
    assert b32["a"] == b32["b"] and b32["c"] == b32["d"]
    assert len(set(b32.values())) == 3
    assert len(network._sessions) == 3
    await service.control_stop({"name": "a"})
    assert len(network._sessions) == 3          # b still uses it
    await service.control_stop({"name": "b"})
    assert len(network._sessions) == 2


async def test_port_taken_key_dir_missing_and_unknown_name_fail_alone(services, tmp_path, network, echo_port):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        network.resolver = {}.get
        service = await start(services, tmp_path, network,
                              f"[busy]\ntype = client\nport = {port}\ndestination = x.i2p\n"
                              f"[nokeys]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\nkeys = nodir/k.dat\n"
                              f"[nowhere]\ntype = client\nport = 0\ndestination = nowhere.i2p\n"
                              f"[bad]\ntype = client\nport = 0\ndestination = not an address\n"
                              f"[fine]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n")
        busy, nokeys, nowhere, bad = (tunnel(service, n) for n in ("busy", "nokeys", "nowhere", "bad"))
        assert busy["state"] == "failed" and f"127.0.0.1:{port}" in busy["error"] and "tunnels.conf:1" in busy["error"]
        assert nokeys["state"] == "failed" and str(tmp_path / "nodir" / "k.dat") in nokeys["error"]
        assert "does not exist" in nokeys["error"]
        assert nowhere["state"] == "failed" and "nowhere.i2p" in nowhere["error"] and "resolve" in nowhere["error"]
        assert "tunnels.conf:10" in nowhere["error"]
        assert bad["state"] == "failed" and "not an address" in bad["error"]
        assert "listening" not in nowhere          # its port was given back
        assert tunnel(service, "fine")["state"] == "running"
        status = service.status()
        assert status["state"] == "running" and list(status["listen"]) == ["fine"]
        assert status["listen"]["fine"] == tunnel(service, "fine")["b32"]
    finally:
        taken.close()


async def test_a_peer_opening_500_connections_is_bounded(services, tmp_path, network, echo_port):
    server_dir, client_dir = two_dirs(tmp_path)
    # one destination, two tunnels: the flooded one (port 0, any) and another on port 2
    server, b32 = await server_b32(services, server_dir, network,
                                   f"[echo]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\nmaxconns = 30\n"
                                   f"keys = site.dat\n[other]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n"
                                   f"inport = 2\nkeys = site.dat\n")
    client = await start(services, client_dir, network,
                         f"[flood]\ntype = client\nport = 0\ndestination = {b32}\nmaxconns = 60\n"
                         f"[calm]\ntype = client\nport = 0\ndestination = {b32}\ndestinationport = 2\n")
    port = local_port(client, "flood")
    held = []
    for _ in range(500):
        try:
            held.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    try:
        async with asyncio.timeout(TIMEOUT):
            while tunnel(client, "flood")["connections_refused"] + tunnel(client, "flood")["connections_total"] < 500:
                await asyncio.sleep(0.05)
            while tunnel(server, "echo")["connections_open"] + tunnel(server, "echo")["connections_refused"] < 60:
                await asyncio.sleep(0.05)
        f, s = tunnel(client, "flood"), tunnel(server, "echo")
        # never more than maxconns at once; how many are refused depends on how fast the others end
        assert f["connections_open"] <= 60 and f["connections_refused"] > 0 and len(held) == 500
        assert s["connections_open"] <= 30 and s["connections_refused"] >= 30
        assert await exchange(local_port(client, "calm"), b"still here") == b"still here"
    finally:
        for _, writer in held:
            writer.close()


async def test_reload_starts_and_stops_only_what_changed(services, tmp_path, network, echo_port):
    conf = (f"[keep]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n"
            f"[change]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n"
            f"[drop]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n")
    service = await start(services, tmp_path, network, conf)
    before = {n: tunnel(service, n)["b32"] for n in ("keep", "change")}
    (tmp_path / "tunnels.conf").write_text("# moved down a line\n" + conf.replace("[drop]", "[new]").replace(
        f"[change]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n",
        f"[change]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\ninport = 5\n"))
    result = await service.reload()
    assert sorted(result["stopped"]) == ["change", "drop"] and sorted(result["started"]) == ["change", "new"]
    await service.wait_ready(TIMEOUT)
    assert tunnel(service, "keep")["b32"] == before["keep"]
    assert tunnel(service, "change")["b32"] != before["change"]       # transient: a new destination
    assert {t["name"] for t in await service.control_list({})} == {"keep", "change", "new"}


async def test_add_remove_start_stop(services, tmp_path, network, echo_port):
    service = await start(services, tmp_path, network, f"[a]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n")
    added = await service.control_add({"name": "b", "type": "server", "host": "127.0.0.1", "port": echo_port})
    assert added["state"] in ("starting", "running")
    assert (tmp_path / "tunnels.d" / "b.conf").read_text() == f"[b]\ntype = server\nhost = 127.0.0.1\nport = {echo_port}\n"
    with pytest.raises(ValueError):
        await service.control_add({"name": "b", "type": "server", "host": "h", "port": 1})
    with pytest.raises(ValueError, match="port"):
        await service.control_add({"name": "c", "type": "server", "host": "h", "port": 99999})
    with pytest.raises(ValueError):
        await service.control_add({"name": "d", "type": "server", "host": "h\n[evil]", "port": 1})
    await service.wait_ready(TIMEOUT)
    assert (await service.control_stop({"name": "a"}))["state"] == "stopped"
    assert (await service.control_start({"name": "a"}))["state"] in ("starting", "running")
    await service.control_remove({"name": "b"})
    assert not (tmp_path / "tunnels.d" / "b.conf").exists()
    await service.control_remove({"name": "a"})
    assert "[a]" not in (tmp_path / "tunnels.conf").read_text()
    assert await service.control_list({}) == []
    with pytest.raises(ValueError):
        await service.control_start({"name": "a"})


async def test_first_start_writes_a_default_file(tmp_path, network):
    service = TunnelsService({"enabled": True}, tmp_path, network)
    await service.start()
    try:
        text = (tmp_path / "tunnels.conf").read_text()
        assert "#[IRC]" in text and "#port = 6668" in text and "#type = ircclient" in text
        assert service.status()["tunnels"] == [] and service.status()["state"] == "running"
    finally:
        await service.stop()


async def test_unwritable_conf_fails_the_service(tmp_path, network):
    (tmp_path / "file").write_text("")
    service = TunnelsService({}, tmp_path, network, conf_path=tmp_path / "file" / "tunnels.conf")
    with pytest.raises(ServiceError, match="tunnels.conf"):
        await service.start()
    assert service.status()["state"] == "failed"


async def test_proxy_sections_go_to_the_factory(services, tmp_path, network):
    made = []

    class FakeProxy:
        name = "proxy"

        def __init__(self, kind, options):
            self.kind, self.options, self.state = kind, options, "stopped"

        async def start(self):
            self.state = "running"

        async def stop(self):
            self.state = "stopped"

        def status(self):
            return {"state": self.state, "listening": f"127.0.0.1:{self.options['port']}"}

        def control_methods(self):
            return {}

    def factory(kind, options):
        made.append(FakeProxy(kind, options))
        return made[-1]
    conf = "[http]\ntype = httpproxy\nport = 4444\noutproxy = exit.i2p\n[socks]\ntype = socks\nport = 4447\n"
    service = await start(services, tmp_path, network, conf, proxy_factory=factory)
    assert [(m.kind, m.options["outproxy"] if "outproxy" in m.options else None) for m in made] == [
        ("httpproxy", "exit.i2p"), ("socks", None)]
    assert tunnel(service, "http")["state"] == "running" and tunnel(service, "http")["listening"] == "127.0.0.1:4444"
    await service.stop()
    assert all(m.state == "stopped" for m in made)

    (tmp_path / "b").mkdir()
    other = await start(services, tmp_path / "b", network, conf)
    assert tunnel(other, "http")["state"] == "unavailable" and "not available" in tunnel(other, "http")["error"]
