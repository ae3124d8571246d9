"""Ports carried through Unix sockets: what the demo uses to reach a node inside its namespace."""
from __future__ import annotations

import asyncio
import socket

from pyi2p.portbridge import Bridge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_bytes_cross_both_ways_and_closing_closes(tmp_path):
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()
    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    inner_port = target.sockets[0].getsockname()[1]
    sock = tmp_path / "echo.sock"
    inner = Bridge("serve", [(inner_port, sock)])
    await inner.start()
    outer_port = free_port()
    # the published side listens on another port here only because both halves share this test's loopback
    outer = Bridge("publish", [(outer_port, sock)])
    await outer.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", outer_port)
        payload = bytes(range(256)) * 4000
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        got = b""
        for _ in range(1000):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
        assert got == payload.upper()
        writer.close()
    finally:
        await outer.close()
        await inner.close()
        target.close()
    assert not sock.exists()


async def test_an_absent_far_side_closes_the_connection(tmp_path):
    outer_port = free_port()
    outer = Bridge("publish", [(outer_port, tmp_path / "nobody.sock")])
    await outer.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", outer_port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await outer.close()
