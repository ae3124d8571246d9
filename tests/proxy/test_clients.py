"""Real, unmodified clients against ProxyService over an in-process I2P: curl's SOCKS modes, aiohttp
(pages, POST, a websocket), python-socks, and headless Chromium (a page with images, a form POST, and a
screenshot of the unknown-host page)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
from python_socks.async_.asyncio import Proxy

from .conftest import curl, start_proxy

SCREENSHOT = os.environ.get("PYI2P_PROXY_SCREENSHOT")   # where to keep the unknown-host page's PNG, if set


async def test_curl_socks5_hostname_socks4a_and_user_password(proxy, site):
    five = await curl("--socks5-hostname", proxy.socks_address, "http://site.i2p/")
    assert five.code == 200 and b"hello from the site" in five.body
    four_a = await curl("--socks4a", proxy.socks_address, f"http://{site.session.b32}/img/1.png")
    assert four_a.code == 200 and four_a.body.startswith(b"\x89PNG")
    userpass = await curl("-x", f"socks5h://someone:anything@{proxy.socks_address}", "http://site.i2p/big")
    assert userpass.code == 200 and len(userpass.body) == 1 << 20
    unknown = await curl("--socks5-hostname", proxy.socks_address, "http://nosuch.i2p/")
    assert unknown.code == 0 and "(4)" in unknown.stderr           # host unreachable
    clearnet = await curl("--socks5-hostname", proxy.socks_address, "http://example.com/")
    assert clearnet.code == 0 and "(2)" in clearnet.stderr         # not allowed: no outproxy
    plain_ip = await curl("--socks5", proxy.socks_address, "http://127.0.0.1:1/")
    assert plain_ip.code == 0 and "(2)" in plain_ip.stderr
    assert proxy.stats["socks_connections"] == 6


async def test_socks_with_configured_credentials(network, tmp_path, site, book):
    proxy = await start_proxy(network, tmp_path, book, socks_user="alice", socks_password="s3cret")
    try:
        good = await curl("-x", f"socks5h://alice:s3cret@{proxy.socks_address}", "http://site.i2p/")
        assert good.code == 200
        bad = await curl("-x", f"socks5h://alice:wrong@{proxy.socks_address}", "http://site.i2p/")
        assert bad.code == 0
        none = await curl("--socks5-hostname", proxy.socks_address, "http://site.i2p/")
        assert none.code == 0
    finally:
        await proxy.stop()


async def test_python_socks_client(proxy, site):
    host, port = proxy.socks_address.rsplit(":", 1)
    for url in (f"socks5://{host}:{port}", f"socks4://{host}:{port}"):
        sock = await Proxy.from_url(url, rdns=True).connect(dest_host="site.i2p", dest_port=80, timeout=10)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /img/4.png HTTP/1.1\r\nHost: site.i2p\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 10)
        assert data.startswith(b"HTTP/1.1 200") and b"\x89PNG" in data
        writer.close()


async def test_aiohttp_client_pages_post_and_websocket(proxy, site):
    url = f"http://{proxy.http_address}"
    async with aiohttp.ClientSession() as client:
        async with client.get("http://site.i2p/", proxy=url) as response:
            assert response.status == 200 and "hello from the site" in await response.text()
        async with client.post("http://site.i2p/form", data={"q": "via aiohttp"}, proxy=url) as response:
            assert "got via aiohttp" in await response.text()
        async with client.get("http://nosuch.i2p/", proxy=url) as response:
            assert response.status == 404 and "jump" in await response.text()
        async with client.ws_connect("http://site.i2p/ws", proxy=url) as ws:
            await ws.send_str("ping")
            assert (await asyncio.wait_for(ws.receive(), 10)).data == "echo:ping"
    seen = [s for s in site.seen if s["_path"] == "/ws"][0]
    assert seen["Upgrade"] == "websocket" and seen["Host"] == site.session.b32


class Chromium:
    """Headless Chromium driven over its DevTools protocol; every name resolution outside the proxy fails."""

    def __init__(self, proxy_address: str, profile: Path):
        self.proxy_address, self.profile = proxy_address, profile
        self.process: asyncio.subprocess.Process | None = None
        self.ws = self.client = None
        self._id = 0

    async def __aenter__(self) -> "Chromium":
        self.process = await asyncio.create_subprocess_exec(
            shutil.which("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--proxy-server=http://{self.proxy_address}", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--disable-default-apps", "--disable-extensions", "--no-pings",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.profile}",
            "--window-size=1000,700", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.client = aiohttp.ClientSession()
        async with self.client.get(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(t for t in await response.json() if t["type"] == "page")
        self.ws = await self.client.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=1 << 26)
        return self

    async def call(self, method: str, **params) -> dict:
        self._id += 1
        await self.ws.send_str(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads((await asyncio.wait_for(self.ws.receive(), 30)).data)
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    async def evaluate(self, expression: str):
        return (await self.call("Runtime.evaluate", expression=expression, returnByValue=True))["result"].get("value")

    async def load(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url)})")

    async def wait_for(self, condition: str) -> None:
        for _ in range(200):
            if await self.evaluate(condition):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"Chromium: never true: {condition}")

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.client is not None:
            await self.client.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
async def test_chromium_page_with_images_form_post_and_unknown_host(proxy, site, tmp_path):
    async with Chromium(proxy.http_address, tmp_path / "profile") as browser:
        await browser.load("http://site.i2p/")
        assert await browser.evaluate("document.querySelector('h1').textContent") == "hello from the site"
        await browser.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth === 1)")
        assert sorted(s["_path"] for s in site.seen if s["_path"].startswith("/img/")) == [
            f"/img/{i}.png" for i in range(5)]
        await browser.evaluate("document.getElementById('go').click()")
        await browser.wait_for("document.getElementById('got') !== null")
        assert await browser.evaluate("document.getElementById('got').textContent") == "got x"
        posted = [s for s in site.seen if s["_path"] == "/form"][0]
        assert posted["_method"] == "POST" and posted["User-Agent"] == "MYOB/6.66 (AN/ON)"
        assert posted["Referer"] == f"http://{site.session.b32}/"      # same origin: kept, host rewritten
        assert posted["Origin"] == f"http://{site.session.b32}"
        for gone in ("Accept", "Accept-Language"):
            assert gone not in posted
        assert proxy.stats["connections"] < proxy.stats["requests"]      # keep-alive with the browser

        await browser.load("http://nosuch.i2p/")
        assert await browser.evaluate("document.title") == "Unknown host"
        shot = base64.b64decode((await browser.call("Page.captureScreenshot", format="png"))["data"])
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 5000
        if SCREENSHOT:
            Path(SCREENSHOT).write_bytes(shot)


async def test_socks5_udp_associate_to_an_i2p_datagram_peer(network, proxy, book):
    from apps.proxy import socks
    peer = await network.open_session(name="udp-peer")

    def echo(datagram):
        peer.send_datagram(datagram.sender, b"echo:" + datagram.payload, from_port=datagram.to_port,
                           to_port=datagram.from_port)
    peer.on_datagram(echo, port=53)
    book.add("udp.i2p", peer.destination)
    host, port = proxy.socks_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x05\x01\x00" + b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\x05\x00"
    reply = await asyncio.wait_for(reader.readexactly(10), 5)
    assert reply[:4] == b"\x05\x00\x00\x01"
    relay = (".".join(str(b) for b in reply[4:8]), int.from_bytes(reply[8:10], "big"))
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            answers.put_nowait(data)
    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    try:
        for target in (peer.b32, "udp.i2p", peer.b32):
            transport.sendto(socks.build_udp(target, 53, b"ping"), relay)
            assert socks.parse_udp(await asyncio.wait_for(answers.get(), 5)) == (peer.b32, 53, b"echo:ping")
        assert proxy.stats["udp_associations"] == 1
    finally:
        transport.close()
        writer.close()
    for _ in range(50):                 # the association ends with its TCP connection
        if not proxy._udp_ports:
            break
        await asyncio.sleep(0.05)
    assert not proxy._udp_ports
