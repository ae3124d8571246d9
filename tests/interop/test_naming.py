"""Naming with real i2pd routers: i2pd's address book subscribes to a feed we publish (with a line signed
by `pyi2p naming sign`) and its HTTP proxy then loads our site by the name; we subscribe to a hosts.txt
served from behind an i2pd HTTP server tunnel and reach that site by a name it gave us."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from apps.naming.apply import apply_feed
from apps.naming.feed import parse_line, verify_line
from apps.naming.http import HttpError, format_response, get_through_proxy, http_get, serve_http_stream
from apps.naming.service import NamingService
from apps.network import IncomingStream, InProcessNetwork, NetworkError
from core.config import load_config
from core.data.privatekeys import PrivateKeys
from core.router import Router
from core.tunnel.service import TunnelSettings
from pyi2p.cli import main as cli
from tests.client.routers import free_port

pytestmark = pytest.mark.interop

OPTIONS = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "2", "outbound.quantity": "2"}
SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
# i2pd's AddressBook.h: first subscription fetch 3 min after start, then a retry each minute while its
# shared destination is not ready
I2PD_FIRST_FETCH_S = 180
I2PD_WAIT_S = 420


def make_router(testnet, tmp_path: Path, name: str) -> Router:
    address = testnet.add_pyi2p_address()
    return Router(load_config(tmp_path / name, {"netid": testnet.netid, "host": address, "port": free_port(),
                                                "reseed_file": str(testnet.seed_file), "control_port": 0,
                                                "sam_port": 0}), tunnel_settings=SETTINGS)


def page(text: bytes):
    async def handler(stream: IncomingStream) -> None:
        await serve_http_stream(stream.reader, stream.writer,
                                lambda request: format_response(200, "OK", {"Content-Type": "text/plain"}, text))
    return handler


def log_tail(testnet, router: str, needle: str = "Addressbook", lines: int = 8) -> str:
    text = (Path(testnet.router(router).datadir) / "i2pd.log").read_text(errors="replace")
    return "\n".join([line for line in text.splitlines() if needle in line][-lines:])


async def test_i2pd_subscribes_to_our_feed_and_its_proxy_loads_our_site_by_name(testnet, tmp_path, capsys):
    router = make_router(testnet, tmp_path, "registrar")
    r4 = testnet.router("r4")
    with testnet.in_netns():
        await router.start()
        network = InProcessNetwork(router.client)
        registrar = NamingService({"publish": True, "subscribe": False, "session_options": OPTIONS},
                                  tmp_path / "registrar", network)
        try:
            site_keys = PrivateKeys.generate()
            site_keys.save(tmp_path / "site.keys")
            site = await network.open_session(site_keys, OPTIONS, name="site")
            await site.serve(page(b"hello from a pyi2p site"), port=80)
            await registrar.start()
            b32 = await registrar.wait_published(180)

            # the site registers with a line signed by its own key; the registrar checks and takes it
            assert cli(["naming", "sign", "pysite.i2p", str(tmp_path / "site.keys")]) == 0
            signed = capsys.readouterr().out.strip()
            assert "#!" in signed and verify_line(parse_line(signed))
            assert apply_feed(registrar.book, signed + "\n", source="registration").added == 1
            registrar.book.add("plain.i2p", site.destination)

            # i2pd reads subscriptions.txt at start: write it and restart r4
            (Path(r4.datadir) / "subscriptions.txt").write_text(f"http://{b32}/hosts.txt\n")
            await asyncio.to_thread(testnet.restart, "r4")
            started = time.monotonic()
            body, error = None, ""
            while time.monotonic() - started < I2PD_WAIT_S:
                await asyncio.sleep(10)
                if registrar.publisher.requests == 0:
                    continue
                try:
                    body = await get_through_proxy("127.0.0.1", r4.http_proxy, "http://pysite.i2p/", timeout=60)
                    break
                except (OSError, HttpError, TimeoutError) as exc:
                    error = str(exc)
            assert registrar.publisher.requests > 0, (
                f"i2pd did not fetch our hosts.txt within {I2PD_WAIT_S} s; its log:\n{log_tail(testnet, 'r4')}")
            assert body == b"hello from a pyi2p site", (
                f"i2pd's proxy did not load http://pysite.i2p/ ({error}); its log:\n{log_tail(testnet, 'r4')}")
            assert "Got update from" in log_tail(testnet, "r4", lines=50)
            # i2pd's parser took the signed line (it drops the '#!' part: a plain add for it)
            print(f"\ni2pd fetched our feed after {time.monotonic() - started:.0f} s "
                  f"({registrar.publisher.requests} requests) and loaded the site by its name")
        finally:
            (Path(r4.datadir) / "subscriptions.txt").write_text("# testnet: no subscriptions\n")
            await registrar.stop()
            await network.close()
            await router.stop()


async def serve_local_http(files: dict) -> asyncio.Server:
    """A plain HTTP server on 127.0.0.1 (what an i2pd server tunnel forwards to), our own parser and writer."""
    async def handle(reader, writer):
        async def answer(request):
            make = files.get(request.target.split("?")[0])
            if make is None:
                return format_response(404, "Not Found", {})
            return format_response(200, "OK", {"Content-Type": "text/plain", "ETag": '"one"'}, make())
        await serve_http_stream(reader, writer, answer)
    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_we_subscribe_to_a_hosts_txt_behind_an_i2pd_server_tunnel(testnet, tmp_path):
    router = make_router(testnet, tmp_path, "subscriber")
    datadir = Path(testnet.router("r3").datadir)
    with testnet.in_netns():
        keyfile: list[Path] = []

        def hosts() -> bytes:
            # the site behind the same i2pd tunnel, by a name only this feed gives
            return f"i2pdsite.i2p={PrivateKeys.load(keyfile[0]).destination.b64}\n".encode()
        server = await serve_local_http({"/hosts.txt": hosts, "/": lambda: b"hello from behind i2pd"})
        port = server.sockets[0].getsockname()[1]
        await router.start()
        network = InProcessNetwork(router.client)
        naming = None
        try:
            state = None
            # i2pd 2.45.1 sometimes never publishes a fresh LeaseSet (testnet README pitfall 5): a new tunnel
            for attempt in range(3):
                name = f"naming{attempt}"
                keyfile[:] = [datadir / f"{name}.dat"]
                testnet.set_i2pd_tunnels("r3", name, f"[{name}]\ntype = http\nhost = 127.0.0.1\nport = {port}\n"
                                         f"keys = {name}.dat\ninbound.length = 1\noutbound.length = 1\n")
                for _ in range(50):
                    if keyfile[0].exists():
                        break
                    await asyncio.sleep(0.2)
                b32 = PrivateKeys.load(keyfile[0]).destination.b32_address
                url = f"http://{b32}/hosts.txt"
                if naming is not None:
                    await naming.stop()
                (tmp_path / "node" / "addressbook").mkdir(parents=True, exist_ok=True)
                (tmp_path / "node" / "addressbook" / "subscriptions.txt").write_text(url + "\n")
                naming = NamingService({"session_options": OPTIONS, "fetch_timeout": 30}, tmp_path / "node", network)
                started = time.monotonic()
                while time.monotonic() - started < 90:
                    state = await naming.subscriptions.update(url)
                    if state.result.startswith("ok"):
                        break
                    await asyncio.sleep(5)
                if state.result.startswith("ok"):
                    break
                testnet.set_i2pd_tunnels("r3", name, None)
            assert state is not None and state.result == "ok: 1 added, 0 changed, 0 removed, 0 skipped", state
            assert state.etag == '"one"'
            site = PrivateKeys.load(keyfile[0]).destination
            assert naming.book.lookup("i2pdsite.i2p") == site

            # what the node does: host names resolve through the book
            network.resolver = naming.book.lookup
            client = await network.open_session(None, OPTIONS, name="browser")
            response = None
            for _ in range(6):
                try:
                    response = await http_get(client, "http://i2pdsite.i2p/", max_body=1 << 16, timeout=30)
                    break
                except (NetworkError, HttpError, TimeoutError):
                    await asyncio.sleep(2)
            assert response is not None and response.status == 200 and response.body == b"hello from behind i2pd"
            again = await naming.subscriptions.update(url)
            assert again.result in ("not modified", "ok: 0 added, 0 changed, 0 removed, 0 skipped")
        finally:
            if naming is not None:
                await naming.stop()
            server.close()
            await network.close()
            await router.stop()
