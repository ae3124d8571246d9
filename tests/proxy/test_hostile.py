"""Bad input against the running proxy: malformed requests, huge heads, slow clients, 1,000 connections.
Each costs only its own connection; the proxy keeps serving others with bounded memory."""
from __future__ import annotations

import asyncio
import re

from core.stats import rss_mb

from .conftest import curl, start_proxy


async def raw_request(address: str, data: bytes, *, read_timeout: float = 10) -> bytes:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), read_timeout)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_malformed_requests_get_400_pages(proxy):
    for bad in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET http://site.i2p/ HTTP/9.9\r\n\r\n",
                b"GET http://site.i2p/ HTTP/1.1\r\nBad Header\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\r\n\r\n",
                b"GET http://site.i2p/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"GET /nohost HTTP/1.1\r\n\r\n"):
        answer = await raw_request(proxy.http_address, bad)
        assert status_of(answer) == 400, bad
        assert b"<!DOCTYPE html>" in answer and b"Traceback" not in answer
        assert b"Connection: close" in answer


async def test_100_kb_of_headers_gets_431(proxy):
    huge = b"GET http://site.i2p/ HTTP/1.1\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(100))
    answer = await raw_request(proxy.http_address, huge + b"\r\n")
    assert status_of(answer) == 431
    # one endless header line, never finished: refused as soon as it passes the limit
    endless = b"GET http://site.i2p/ HTTP/1.1\r\nX: " + b"a" * 100_000
    answer = await raw_request(proxy.http_address, endless)
    assert status_of(answer) == 431


async def test_slow_clients_time_out_and_do_not_block_others(network, tmp_path, site, book):
    proxy = await start_proxy(network, tmp_path, book, head_timeout=2)
    try:
        host, port = proxy.http_address.rsplit(":", 1)
        slow = []
        for _ in range(20):     # a slowloris: a few bytes, then nothing
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET http://site.i2p/ HTTP/1.1\r\nX-Slow: ")
            slow.append((reader, writer))
        page = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")
        assert page.code == 200
        ends = await asyncio.wait_for(asyncio.gather(*(r.read(-1) for r, _ in slow)), 10)
        assert ends == [b""] * 20          # each dropped after head_timeout
        assert proxy.status()["active"] == 0
        for _, writer in slow:
            writer.close()
    finally:
        await proxy.stop()


async def test_a_thousand_connections_bounded_memory(network, tmp_path, site, book):
    proxy = await start_proxy(network, tmp_path, book, max_connections=1000, head_timeout=30)
    held = []
    try:
        host, port = proxy.http_address.rsplit(":", 1)
        before = rss_mb()
        for i in range(1000):
            reader, writer = await asyncio.open_connection(host, int(port))
            # half of them park 60 KB of an unfinished head with the proxy
            writer.write(b"GET http://site.i2p/ HTTP/1.1\r\nX: " + (b"z" * 60_000 if i % 2 else b""))
            held.append((reader, writer))
        for _ in range(100):
            if proxy.status()["active"] == 1000:
                break
            await asyncio.sleep(0.1)
        assert proxy.status()["active"] == 1000
        grown_mb = rss_mb() - before
        # the 1,001st is told the proxy is busy, with a page
        busy = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")
        assert busy.code == 503 and proxy.stats["refused_busy"] >= 1
        for _, writer in held[:10]:
            writer.close()
        for _ in range(50):
            if proxy.status()["active"] < 1000:
                break
            await asyncio.sleep(0.1)
        page = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")
        assert page.code == 200
        print(f"\n1000 open connections (500 with 60 KB heads): the process grew {grown_mb:.0f} MB")
        assert grown_mb < 300      # bounded: 64 KB of head per connection at most, plus sockets and tasks
    finally:
        for _, writer in held:
            writer.close()
        await proxy.stop()


async def test_request_bodies_and_keep_alive(proxy):
    host, port = proxy.http_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    # a chunked upload, then a second request on the same connection
    writer.write(b"POST http://site.i2p/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                 b"GET http://site.i2p/img/0.png HTTP/1.1\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in first
    length = int(re.search(rb"Content-Length: (\d+)", first).group(1))
    assert await reader.readexactly(length) == b"abcde"
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert second.startswith(b"HTTP/1.1 200")
    writer.close()
    # a page of ours answering a request whose body it never reads: the connection closes after it
    answer = await raw_request(proxy.http_address, b"POST http://nosuch.i2p/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
                                                   b"hello")
    assert status_of(answer) == 404 and b"Connection: close" in answer
