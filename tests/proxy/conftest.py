"""A site on an in-process I2P (an aiohttp server on 127.0.0.1 behind a session.serve pipe) and the proxy in front."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from apps.network import IncomingStream, InProcessNetwork
from apps.proxy import ProxyService
from core.client import ClientAPI
from core.data.identity import Destination

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


class Book:
    """The address book's interface (lookup, add), over a dict."""

    def __init__(self, entries: dict[str, Destination] | None = None):
        self.entries: dict[str, tuple[Destination, str]] = {k: (v, "local") for k, v in (entries or {}).items()}

    def lookup(self, name: str) -> Destination | None:
        entry = self.entries.get(name.lower())
        return entry[0] if entry else None

    def add(self, name: str, destination: Destination, *, book: str = "local", source: str = "") -> None:
        self.entries[name.lower()] = (destination, book)


@dataclass
class Site:
    session: Any
    url: str                      # the aiohttp server's own address
    seen: list[dict[str, str]] = field(default_factory=list)   # request headers as the site got them
    runner: Any = None


def site_app(site: Site) -> web.Application:
    async def record(request: web.Request) -> None:
        site.seen.append({"_method": request.method, "_path": request.path_qs, **dict(request.headers)})

    async def index(request: web.Request) -> web.Response:
        await record(request)
        imgs = "".join(f'<img src="/img/{i}.png">' for i in range(5))
        return web.Response(text=f"<html><body><h1>hello from the site</h1>{imgs}"
                                 f'<form method="post" action="/form"><input name="q" value="x">'
                                 f'<input type="submit" id="go"></form></body></html>', content_type="text/html")

    async def img(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=PNG, content_type="image/png")

    async def form(request: web.Request) -> web.Response:
        await record(request)
        data = await request.post()
        return web.Response(text=f"<html><body><p id='got'>got {data.get('q')}</p></body></html>",
                            content_type="text/html")

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=await request.read())

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * (1 << 20))

    async def chunked(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(b"part%d;" % i)
        await response.write_eof()
        return response

    async def ws(request: web.Request) -> web.WebSocketResponse:
        await record(request)
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for message in sock:
            await sock.send_str("echo:" + message.data)
        return sock

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/img/{n}", img)
    app.router.add_post("/form", form)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/ws", ws)
    return app


async def pipe(stream: IncomingStream, host: str, port: int) -> None:
    """The site's I2P side: each stream piped to the local web server (what a server tunnel does)."""
    reader, writer = await asyncio.open_connection(host, port)

    async def copy(src, dst) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except (ConnectionError, OSError):
            dst.close()
    await asyncio.gather(copy(stream.reader, writer), copy(reader, stream.writer))
    writer.close()
    stream.writer.close()


async def start_site(network: InProcessNetwork) -> Site:
    session = await network.open_session(name="site")
    site = Site(session, "")
    site.runner = web.AppRunner(site_app(site))
    await site.runner.setup()
    tcp = web.TCPSite(site.runner, "127.0.0.1", 0)
    await tcp.start()
    host, port = tcp._server.sockets[0].getsockname()[:2]
    site.url = f"http://{host}:{port}"
    await session.serve(lambda stream: pipe(stream, host, port))
    return site


@pytest.fixture
async def site(network):
    s = await start_site(network)
    yield s
    await s.runner.cleanup()


@pytest.fixture
def book(site):
    return Book({"site.i2p": site.session.destination})


async def start_proxy(network, tmp_path, book=None, **config) -> ProxyService:
    proxy = ProxyService({"port": 0, "socks_port": 0, "inbound.length": "0", "outbound.length": "0", **config},
                         tmp_path, network, addressbook=book)
    await proxy.start()
    await proxy.wait_ready()
    return proxy


@pytest.fixture
async def proxy(network, tmp_path, book):
    p = await start_proxy(network, tmp_path, book)
    yield p
    await p.stop()


@dataclass
class Curl:
    code: int
    head: str
    body: bytes
    stderr: str


async def curl(*args: str, timeout: float = 20, netns: str | None = None) -> Curl:
    """Runs the real curl (in network namespace `netns` if given); returns the last response's status, head
    and body."""
    prefix = ("ip", "netns", "exec", netns) if netns else ()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}   # only the proxy we name
    proc = await asyncio.create_subprocess_exec(*prefix, "curl", "-sS", "--max-time", str(int(timeout)), "-D", "-", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout + 5)
    head, body = b"", out
    while body.startswith(b"HTTP/"):
        head, _, body = body.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1]) if head else 0
    return Curl(code, head.decode("latin-1"), body, err.decode())
