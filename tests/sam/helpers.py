"""A small SAM client over asyncio sockets, and a bridge on 127.0.0.1 with the in-memory backend."""
from __future__ import annotations

import asyncio
import contextlib

from core.sam.bridge import SamBridge, SamConfig
from core.sam.memory_backend import MemoryBackend
from core.sam.parser import Command, parse_line

TIMEOUT = 10.0
_open_clients: list["Sam"] = []


class Sam:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, bridge: SamBridge, version: str | None = "3.3", hello: str | None = None) -> Sam:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", bridge.port), TIMEOUT)
        sam = cls(reader, writer)
        _open_clients.append(sam)
        if hello is not None:
            reply = await sam.cmd(hello)
            assert reply.options["RESULT"] == "OK", reply
        elif version is not None:
            reply = await sam.cmd(f"HELLO VERSION MIN=3.0 MAX={version}")
            assert reply.options == {"RESULT": "OK", "VERSION": version}, reply
        return sam

    def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() + b"\n" if isinstance(data, str) else data)

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def reply(self) -> Command:
        raw = await self.line()
        assert raw.endswith(b"\n"), f"connection closed: {raw!r}"
        return parse_line(raw)

    async def cmd(self, line: str | bytes) -> Command:
        self.send(line)
        return await self.reply()

    async def read(self, n: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), TIMEOUT)

    async def closed(self) -> bool:
        """True when the bridge closes the connection (after any bytes still in flight)."""
        data = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def session(bridge: SamBridge, nickname: str, style: str = "STREAM", extra: str = "",
                  version: str = "3.3") -> tuple[Sam, str]:
    """A control connection with a TRANSIENT Ed25519 session; returns it and the public destination."""
    sam = await Sam.open(bridge, version)
    reply = await sam.cmd(f"SESSION CREATE STYLE={style} ID={nickname} DESTINATION=TRANSIENT "
                          f"SIGNATURE_TYPE=7 {extra}".strip())
    assert reply.options.get("RESULT") == "OK", reply
    me = await sam.cmd("NAMING LOOKUP NAME=ME")
    assert me.options["RESULT"] == "OK"
    return sam, me.options["VALUE"]


@contextlib.asynccontextmanager
async def running_bridge(backend: MemoryBackend | None = None, *, address_book=None, auth=None, **config):
    settings = dict(port=0, udp_port=0)
    settings.update(config)
    bridge = SamBridge(backend or MemoryBackend(), SamConfig(**settings), address_book=address_book, auth=auth)
    async with bridge:
        try:
            yield bridge
        finally:
            await close_clients()


async def close_clients() -> None:
    """Close what the test left open, so sockets do not outlive it."""
    while _open_clients:
        await _open_clients.pop().close()
