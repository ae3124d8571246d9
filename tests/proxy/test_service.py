"""ProxyService over an in-process I2P with curl as the browser: pages from a site, the headers it sees,
keep-alive, every error page, the address helper end to end, outproxies, the status page, control."""
from __future__ import annotations

import asyncio
import re
from html import unescape
from urllib.parse import quote

import pytest

from apps.proxy import ProxyService, create_proxy
from apps.proxy.http import USER_AGENT
from apps.service import ServiceError
from core.data.privatekeys import PrivateKeys

from .conftest import Book, curl, start_proxy


def via(proxy) -> list[str]:
    return ["-x", f"http://{proxy.http_address}"]


async def test_page_images_and_form_post(proxy, site):
    page = await curl(*via(proxy), "http://site.i2p/")
    assert page.code == 200 and b"hello from the site" in page.body
    img = await curl(*via(proxy), "http://site.i2p/img/3.png")
    assert img.code == 200 and img.body.startswith(b"\x89PNG")
    form = await curl(*via(proxy), "-d", "q=hello", "http://site.i2p/form")
    assert form.code == 200 and b"got hello" in form.body
    assert [s["_path"] for s in site.seen] == ["/", "/img/3.png", "/form"]


async def test_headers_as_the_site_sees_them(proxy, site):
    await curl(*via(proxy), "-A", "Firefox/128", "-H", "Via: 1.1 x", "-H", "From: a@b", "-H", "Forwarded: for=1",
               "-H", "X-Forwarded-For: 1.2.3.4", "-H", "Proxy-Authorization: Basic x", "-H", "DNT: 1",
               "-H", "Accept-Language: de", "-H", "Accept-Encoding: identity", "-H", "X-Requested-With: app.id",
               "-H", "Cookie: k=v", "-e", "http://elsewhere.i2p/", "http://site.i2p/")
    await curl(*via(proxy), "-e", "http://site.i2p/from", "-H", "X-Requested-With: XMLHttpRequest",
               "http://site.i2p/img/1.png")
    first, second = site.seen
    b32 = site.session.b32
    assert first["Host"] == b32 and first["User-Agent"] == USER_AGENT
    for gone in ("Via", "From", "Forwarded", "X-Forwarded-For", "Proxy-Authorization", "DNT", "Accept",
                 "Accept-Language", "X-Requested-With", "Referer", "Proxy-Connection"):
        assert gone not in first, gone
    assert first["Cookie"] == "k=v" and first["Accept-Encoding"] == "identity"
    assert first["Connection"] == "close"
    assert second["Referer"] == f"http://{b32}/from" and second["X-Requested-With"] == "XMLHttpRequest"


async def test_keep_alive_with_the_browser_one_stream_per_request(proxy, site):
    result = await curl("-v", *via(proxy), "http://site.i2p/", "http://site.i2p/chunked", "-I", "http://site.i2p/big")
    assert "Re-using existing connection" in result.stderr or "Reusing existing connection" in result.stderr
    assert proxy.stats["connections"] == 1 and proxy.stats["requests"] == 3
    assert site.session.status()["streams_in"] == 3
    big = await curl(*via(proxy), "http://site.i2p/big")
    assert big.code == 200 and big.body == b"x" * (1 << 20)
    chunked = await curl(*via(proxy), "http://site.i2p/chunked")
    assert chunked.body == b"part0;part1;part2;part3;part4;"
    head = await curl(*via(proxy), "-I", "http://site.i2p/big")
    assert head.code == 200 and "Content-Length: 1048576" in head.head and not head.body.strip()   # no body


async def test_b32_b64_and_connect(proxy, site):
    b32 = await curl(*via(proxy), f"http://{site.session.b32}/img/0.png")
    assert b32.code == 200 and b32.body.startswith(b"\x89PNG")
    b64 = await curl(*via(proxy), f"http://i2p/{site.session.destination.b64}/img/1.png")
    assert b64.code == 200 and b64.body.startswith(b"\x89PNG")
    tunnel = await curl("-p", *via(proxy), "http://site.i2p:80/")     # CONNECT, then HTTP inside the tunnel
    assert tunnel.code == 200 and b"hello from the site" in tunnel.body
    assert site.seen[-1]["Host"] == "site.i2p"      # a CONNECT tunnel carries the bytes as they are
    assert [s["_path"] for s in site.seen] == ["/img/0.png", "/img/1.png", "/"]


async def test_expect_100_continue_and_chunked_upload(proxy, site):
    body = "y" * 5000
    posted = await curl(*via(proxy), "-H", "Expect: 100-continue", "--data-binary", body, "http://site.i2p/echo")
    assert posted.code == 200 and posted.body == body.encode()
    chunked = await curl(*via(proxy), "-H", "Transfer-Encoding: chunked", "--data-binary", "abc",
                         "http://site.i2p/echo")
    assert chunked.code == 200 and chunked.body == b"abc"


def title(result) -> str:
    return unescape(re.search(rb"<h1>(.*?)</h1>", result.body).group(1).decode())


async def test_error_pages(network, tmp_path, proxy, site):
    unknown = await curl(*via(proxy), "http://nosuch.i2p/")
    assert unknown.code == 404 and title(unknown) == "Unknown host"
    assert b"http://stats.i2p/cgi-bin/jump.cgi?a=nosuch.i2p" in unknown.body and b"i2paddresshelper" in unknown.body
    b33 = await curl(*via(proxy), f"http://{'a' * 56}.b32.i2p/")
    assert b33.code == 404 and b"encrypted LeaseSet" in b33.body
    for local in ("http://127.0.0.1:22/", "http://192.168.1.1/", "http://localhost/", "http://[::1]/",
                  "http://intranet/"):
        refused = await curl(*via(proxy), local)
        assert refused.code == 403 and title(refused) == "Local address refused", local
    clearnet = await curl(*via(proxy), "http://example.com/")
    assert clearnet.code == 503 and title(clearnet) == "No outproxy"
    https = await curl(*via(proxy), "https://example.com/")
    assert "503" in https.stderr or https.code == 503
    offline = await network.open_session(name="offline")       # exists, serves nothing: refuses streams
    refused = await curl(*via(proxy), f"http://{offline.b32}/")
    assert refused.code == 502 and title(refused) == "Site unreachable"
    bad = await curl(*via(proxy), "http://-bad-.i2p/")
    assert bad.code == 400
    for page in (unknown, b33, clearnet, refused, bad):
        assert b"Traceback" not in page.body and page.body.startswith(b"<!DOCTYPE html>")


async def test_destination_not_found_and_timeouts(network, tmp_path, site):
    proxy = await start_proxy(network, tmp_path, None, connect_timeout=2)
    try:
        gone = PrivateKeys.generate().destination
        missing = await curl("-x", f"http://{proxy.http_address}", f"http://{gone.b32_address}/")
        assert missing.code == 504 and title(missing) == "Destination not found"
        unknown = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")   # no address book
        assert unknown.code == 404
        network.resolver = {"site.i2p": site.session.destination}.get
        found = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")    # network.resolver
        assert found.code == 200
    finally:
        await proxy.stop()


async def test_site_that_never_answers_is_504(network, tmp_path):
    silent = await network.open_session(name="silent")
    held = []

    async def hold(stream):
        held.append(stream)
        await asyncio.sleep(30)
    await silent.serve(hold)
    proxy = await start_proxy(network, tmp_path, None, response_timeout=1)
    try:
        result = await curl("-x", f"http://{proxy.http_address}", f"http://{silent.b32}/")
        assert result.code == 504 and title(result) == "Site timed out"
        assert proxy.errors[-1]["status"] == 504
    finally:
        await proxy.stop()


async def test_address_helper_end_to_end(network, tmp_path, site):
    book = Book()
    proxy = await start_proxy(network, tmp_path, book)
    try:
        b64 = site.session.destination.b64
        url = f"http://site.i2p/img/2.png?i2paddresshelper={quote(b64, safe='')}"
        confirm = await curl(*via(proxy), url)
        assert confirm.code == 200 and site.session.b32.encode() in confirm.body
        links = {re.search(r"save=(\w+)", h).group(1): h for h in
                 (unescape(x.decode()) for x in re.findall(rb'href="([^"]+)"', confirm.body)) if "save=" in h}
        forged = await curl(*via(proxy), "-e", "http://evil.i2p/", links["local"])
        assert forged.code == 403 and book.lookup("site.i2p") is None
        saved = await curl(*via(proxy), "-L", "-e", url, links["local"])
        assert saved.code == 200 and saved.body.startswith(b"\x89PNG")
        assert book.entries["site.i2p"] == (site.session.destination, "local")
        assert proxy.saves[-1]["host"] == "site.i2p"
        status = await curl(*via(proxy), "http://proxy.i2p/")
        assert status.code == 200 and site.session.b32.encode() in status.body
        # a link that disagrees with the book now
        other = PrivateKeys.generate().destination
        conflict = await curl(*via(proxy), f"http://site.i2p/?i2paddresshelper={quote(other.b64, safe='')}")
        assert conflict.code == 409
        assert other.b32_address.encode() in conflict.body and site.session.b32.encode() in conflict.body
        # a b32 helper is looked up (LeaseSet) for its full destination
        book.entries.clear()
        b32_helper = await curl(*via(proxy), f"http://site.i2p/?i2paddresshelper={site.session.b32}")
        assert b32_helper.code == 200 and b"Save to the private address book" in b32_helper.body
        bad = await curl(*via(proxy), "http://site.i2p/?i2paddresshelper=nonsense")
        assert bad.code == 400
    finally:
        await proxy.stop()


async def test_status_page_at_the_proxys_own_address(proxy):
    own = await curl(f"http://{proxy.http_address}/")
    assert own.code == 200 and b"pyi2p HTTP proxy" in own.body and proxy.session.b32.encode() in own.body
    named = await curl(*via(proxy), "http://proxy.i2p/")
    assert named.code == 200 and b"Recent errors" in named.body


class MiniHttpProxy:
    """An outproxy's HTTP proxy for the tests: every host leads to one local web server; it records the
    request lines it gets."""

    def __init__(self, target_port: int):
        self.port, self.lines = target_port, []

    async def handle(self, stream) -> None:
        from apps.proxy.service import Conn, splice
        conn = Conn(stream.reader)
        raw = await conn.read_head(10)
        line = raw.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if line.startswith("CONNECT"):
            stream.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            method, url, version = line.split(" ")
            path = "/" + url.split("/", 3)[3]
            writer.write(f"{method} {path} {version}\r\n".encode() + raw.split(b"\r\n", 1)[1])
        await splice(conn, stream.writer, Conn(reader), writer, 10)
        writer.close()


async def test_outproxy_http_and_connect_sticky(network, tmp_path, site):
    exits = []
    for name in ("exit1", "exit2"):
        session = await network.open_session(name=name)
        mini = MiniHttpProxy(int(site.url.rsplit(":", 1)[1]))
        await session.serve(mini.handle)
        exits.append((session, mini))
    book = Book({"exit1.i2p": exits[0][0].destination})
    proxy = await start_proxy(network, tmp_path, book, outproxy=["exit1.i2p", exits[1][0].b32])
    try:
        plain = await curl(*via(proxy), "-A", "secret-browser", "http://example.com/img/1.png")
        assert plain.code == 200 and plain.body.startswith(b"\x89PNG")
        seen = site.seen[-1]
        assert seen["Host"] == "example.com" and seen["User-Agent"] == USER_AGENT
        tunnel = await curl("-p", *via(proxy), "http://example.com:443/")
        assert tunnel.code == 200
        lines = exits[0][1].lines + exits[1][1].lines
        assert "GET http://example.com/img/1.png HTTP/1.1" in lines and "CONNECT example.com:443 HTTP/1.1" in lines
        used = [bool(mini.lines) for _, mini in exits]
        assert used.count(True) == 1           # sticky: one site, one exit
        # the sticky exit goes away: the other carries the site from then on
        dead = exits[used.index(True)][0]
        await dead.close()
        again = await curl(*via(proxy), "http://example.com/")
        assert again.code == 200 and all(mini.lines for _, mini in exits), again.body[-900:]
        assert proxy.control_methods()["Outproxy"]({}) == {"outproxy": ["exit1.i2p", exits[1][0].b32]}
        assert proxy.control_methods()["Outproxy"]({"outproxy": []}) == {"outproxy": []}
        none = await curl(*via(proxy), "http://example.com/")
        assert none.code == 503
    finally:
        await proxy.stop()


async def test_socks_outproxy(network, tmp_path, site):
    from apps.proxy import socks
    web_port = int(site.url.rsplit(":", 1)[1])
    asked = []

    async def socks_server(reader, writer):
        hs = socks.SocksHandshake()
        while hs.request is None:
            hs.receive(await reader.read(100))
            writer.write(hs.data_to_send())
        asked.append((hs.request.host, hs.request.port))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", web_port)
        writer.write(hs.reply(socks.REPLY_SUCCEEDED))
        from apps.proxy.service import Conn, splice
        await splice(Conn(reader), writer, Conn(up_reader), up_writer, 10)
        writer.close()
    server = await asyncio.start_server(socks_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = await start_proxy(network, tmp_path, None, outproxy=[f"socks://127.0.0.1:{port}"])
    try:
        page = await curl(*via(proxy), "http://example.com/")
        assert page.code == 200 and b"hello from the site" in page.body
        assert asked == [("example.com", 80)] and site.seen[-1]["User-Agent"] == USER_AGENT
    finally:
        await proxy.stop()
        server.close()


async def test_config_errors_name_the_key(network, tmp_path):
    for config, key in (({"port": 70000}, "port"), ({"outproxy": ["http://not a host"]}, "outproxy"),
                        ({"socks_enabled": "yes"}, "socks_enabled"), ({"max_connections": 0}, "max_connections"),
                        ({"socks_user": "a"}, "socks_user")):
        with pytest.raises(ServiceError, match=key):
            ProxyService(config, tmp_path, network)
    first = await start_proxy(network, tmp_path, None, socks_enabled=False)
    try:
        port = int(first.http_address.rsplit(":", 1)[1])
        taken = ProxyService({"port": port, "socks_enabled": False}, tmp_path, network)
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port}"):
            await taken.start()
        assert taken.status()["state"] == "failed"
    finally:
        await first.stop()


async def test_create_proxy_from_i2pd_sections(network, tmp_path, site, book):
    http = create_proxy("httpproxy", {"address": "127.0.0.1", "port": "0", "keys": "proxy-keys.dat",
                                      "outproxy": "exit.i2p", "inbound.length": "0", "outbound.length": "0",
                                      "addresshelper": "false"}, tmp_path, network, addressbook=book)
    assert http.config["socks_enabled"] is False and http.config["outproxy"] == ["exit.i2p"]
    assert http.options["inbound.length"] == "0" and http.config["addresshelper"] is False
    sock = create_proxy("socks", {"port": "0", "outproxy.enabled": "true", "outproxy": "127.0.0.1",
                                  "outproxyport": "9050"}, tmp_path, network, addressbook=book)
    assert sock.config["http_enabled"] is False and sock.config["outproxy"] == ["socks://127.0.0.1:9050"]
    await http.start()
    await sock.start()
    try:
        await http.wait_ready()
        key_file = tmp_path / "proxy" / "proxy-keys.dat"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert PrivateKeys.load(key_file).destination.b32_address == http.status()["b32"]
        page = await curl("-x", f"http://{http.http_address}", "http://site.i2p/")
        assert page.code == 200
        helper = await curl("-x", f"http://{http.http_address}", "http://site.i2p/?i2paddresshelper=x.b32.i2p")
        assert helper.code == 403
        via_socks = await curl("--socks5-hostname", sock.socks_address, "http://site.i2p/")
        assert via_socks.code == 200
        assert http.status()["socks"] == "" and sock.status()["http"] == ""
    finally:
        await http.stop()
        await sock.stop()
    with pytest.raises(ServiceError):
        create_proxy("client", {}, tmp_path, network)


async def test_address_book_failure_is_a_500_page(network, tmp_path, site):
    class FullBook(Book):
        def add(self, name, destination, *, book="local", source=""):
            raise OSError("disk full")
    proxy = await start_proxy(network, tmp_path, FullBook())
    try:
        url = f"http://site.i2p/?i2paddresshelper={quote(site.session.destination.b64, safe='')}"
        confirm = await curl(*via(proxy), url)
        link = next(unescape(x.decode()) for x in re.findall(rb'href="([^"]+)"', confirm.body) if b"save=local" in x)
        failed = await curl(*via(proxy), "-e", url, link)
        assert failed.code == 500 and b"disk full" in failed.body and b"Traceback" not in failed.body
        assert proxy.status()["addresshelper_saves"] == 0
    finally:
        await proxy.stop()
