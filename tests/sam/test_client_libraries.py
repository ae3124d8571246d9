"""Third-party SAM client libraries from PyPI (i2plib, i2psam) driving the bridge."""
from __future__ import annotations

import asyncio
import types

import pytest

from core.data.identity import Destination

from .helpers import TIMEOUT


def _i2plib_on_this_python(monkeypatch):
    """i2plib 0.0.14 passes loop= to asyncio.open_connection, which Python 3.10 removed."""
    i2plib = pytest.importorskip("i2plib")
    import i2plib.aiosam

    async def open_connection(host=None, port=None, *, loop=None, **kwargs):
        return await asyncio.open_connection(host, port, **kwargs)
    shim = types.SimpleNamespace(**{name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("__")})
    shim.open_connection = open_connection
    monkeypatch.setattr(i2plib.aiosam, "asyncio", shim)
    return i2plib


async def test_i2plib_streams(bridge, monkeypatch):
    i2plib = _i2plib_on_this_python(monkeypatch)
    address = ("127.0.0.1", bridge.port)
    server_keys = await i2plib.new_destination(sam_address=address, sig_type=7)
    assert server_keys.private_key is not None
    server_reader, server_writer = await i2plib.create_session("server", sam_address=address,
                                                               destination=server_keys.private_key.base64)
    client_reader, client_writer = await i2plib.create_session(
        "client", sam_address=address, options={"inbound.length": "0", "outbound.length": "0"})
    found = await i2plib.dest_lookup(server_keys.base32 + ".b32.i2p", sam_address=address)
    assert found.base64 == server_keys.base64

    accept_reader, accept_writer = await i2plib.stream_accept("server", sam_address=address)
    connect_reader, connect_writer = await i2plib.stream_connect("client", server_keys.base32 + ".b32.i2p",
                                                                 sam_address=address)
    peer = (await asyncio.wait_for(accept_reader.readline(), TIMEOUT)).decode().strip()
    assert Destination.from_b64(peer)              # SAM 3.1: the peer destination alone
    connect_writer.write(b"ping over i2plib")
    assert await asyncio.wait_for(accept_reader.readexactly(16), TIMEOUT) == b"ping over i2plib"
    accept_writer.write(b"pong")
    assert await asyncio.wait_for(connect_reader.readexactly(4), TIMEOUT) == b"pong"
    for writer in (connect_writer, accept_writer, client_writer, server_writer):
        writer.close()


async def test_i2psam_streams(bridge):
    i2psam = pytest.importorskip("i2psam")
    # i2psam 1.0.0 validates host into an IPv4Address, which asyncio.open_connection cannot take
    config = i2psam.SAMConfig.model_construct(**dict(i2psam.SAMConfig().__dict__, host="127.0.0.1",
                                                     port=bridge.port, connection_retries=0))
    client = i2psam.SAMClient(config)
    generated = await client.dest_generate()
    assert Destination.from_b64(generated.pub)
    async with client.session("srv", generated.priv) as server, client.session("cli", "TRANSIENT") as caller:
        assert server.priv_destination == generated.priv
        lookup = await client.naming_lookup(Destination.from_b64(generated.pub).b32_address)
        assert lookup.value == generated.pub

        async def accept():
            async with server.accept_stream() as (peer_line, conn):
                assert Destination.from_b64(peer_line.decode().strip())   # HELLO 3.0: no ports on the line
                data = await conn.read(11)
                await conn.write(b"echo:" + data)
                await asyncio.sleep(0.1)
        accepting = asyncio.create_task(accept())
        await asyncio.sleep(0.05)
        async with caller.connect_stream(generated.pub) as conn:
            conn.writer.write(b"hello i2psam")
            reply = await asyncio.wait_for(conn.reader.readline(), TIMEOUT)
        assert reply == b"echo:hello i2psa\n"      # i2psam's Connection.write ends lines with \n
        await asyncio.wait_for(accepting, TIMEOUT)
