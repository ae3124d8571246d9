"""What every adapter of the port does (run once per adapter, see conftest.py): streams by
destination, b32 and name, ports, datagrams, and the errors apps see."""
from __future__ import annotations

import asyncio

import pytest

from apps.network import (ConnectTimeout, Datagram, InProcessNetwork, IncomingStream, NameNotFound, PeerNotFound,
                          PeerUnreachable, Unsupported, parse_address)
from core.data.privatekeys import PrivateKeys
from core.datagram import PROTO_DATAGRAM2, PROTO_DATAGRAM3, Datagram2, Datagram3


async def echo(stream: IncomingStream) -> None:
    data = await stream.reader.read(1000)
    stream.writer.write(b"port %d from %s: " % (stream.to_port, stream.peer.b32_address.encode()) + data)
    await stream.writer.drain()
    stream.writer.close()


async def read_all(reader) -> bytes:
    chunks = []
    for _ in range(100):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_stream_by_destination_b32_and_name(network):
    server = await network.open_session(name="server")
    client = await network.open_session(name="client")
    await server.serve(echo, port=80)
    network.resolver = {"site.i2p": server.destination}.get
    for target in (server.destination, server.b32, server.destination.b64, "site.i2p", "SITE.I2P"):
        reader, writer = await client.connect(target, 80, timeout=5)
        writer.write(b"hello")
        await writer.drain()
        assert await read_all(reader) == b"port 80 from " + client.b32.encode() + b": hello"
        writer.close()
    assert server.status()["streams_in"] == 5


async def test_ports_route_to_their_handlers_and_zero_catches_the_rest(network):
    server = await network.open_session()
    client = await network.open_session()

    async def other(stream: IncomingStream) -> None:
        stream.writer.write(b"catch-all %d" % stream.to_port)
        stream.writer.close()

    await server.serve(echo, port=80)
    await server.serve(other)
    reader, writer = await client.connect(server.destination, 6667, timeout=5)
    assert await read_all(reader) == b"catch-all 6667"
    server.stop_serving(0)
    await assert_refused(client, server.destination, 6667)


async def assert_refused(client, destination, port: int) -> None:
    """A stream to a port nobody serves: refused at connect (in-process), or, over SAM, where the
    bridge accepts for the session, reset before any byte."""
    try:
        reader, writer = await client.connect(destination, port, timeout=5)
    except PeerUnreachable:
        return
    try:
        assert await read_all(reader) == b""
    except ConnectionError:
        pass
    writer.close()


async def test_unknown_names_and_destinations(network):
    client = await network.open_session()
    with pytest.raises(NameNotFound):
        await client.connect("nowhere.i2p", 80, timeout=2)
    unknown = PrivateKeys.generate().destination
    with pytest.raises(PeerNotFound):   # no router network: nothing to look a LeaseSet up in
        await client.connect(unknown.b32_address, 80, timeout=2)


async def test_datagrams_repliable_and_raw(network):
    a = await network.open_session()
    b = await network.open_session()
    got: asyncio.Queue[Datagram] = asyncio.Queue()
    b.on_datagram(got.put_nowait, port=53)
    a.send_datagram(b.destination, b"signed", from_port=1000, to_port=53)
    a.send_datagram(b.destination, b"raw", repliable=False, to_port=53)
    a.send_datagram(b.destination, b"elsewhere", to_port=54)
    first = await asyncio.wait_for(got.get(), 5)
    second = await asyncio.wait_for(got.get(), 5)
    assert (first.payload, first.sender, first.from_port, first.repliable) == (b"signed", a.destination, 1000, True)
    assert (second.payload, second.sender, second.repliable) == (b"raw", None, False)
    await asyncio.sleep(0.05)
    assert got.empty()


async def test_datagram2_and_datagram3_from_i2pd_2_58_udp_clients(api):
    """i2pd's udpclient `datagramversion = 2|3`: signed for us (Datagram2), or naming the sender its garlic session
    is bound to (Datagram3); both reach the app with their sender, forgeries do not."""
    network = InProcessNetwork(api)
    a, b, c = [await network.open_session() for _ in range(3)]
    got: asyncio.Queue[Datagram] = asyncio.Queue()
    b.on_datagram(got.put_nowait, port=53)
    sender = a._session.session            # the core session: it sends every datagram format
    sender.send_datagram(b.destination, b"two", protocol=PROTO_DATAGRAM2, src_port=7, dst_port=53)
    sender.send_datagram(b.destination, b"three", protocol=PROTO_DATAGRAM3, src_port=8, dst_port=53)
    # a Datagram3 claiming c while a sends it, and a Datagram2 signed for c: dropped
    sender.send(b.destination, Datagram3(c.destination.hash, b"forged").to_bytes(), protocol=PROTO_DATAGRAM3,
                dst_port=53)
    sender.send(b.destination, Datagram2.create(a.keys, b"not for b", c.destination.hash).to_bytes(),
                protocol=PROTO_DATAGRAM2, dst_port=53)
    # i2pd 2.58 signs a Datagram2 over its own hash where the spec has the target's
    sender.send(b.destination, Datagram2.create(a.keys, b"i2pd's", a.destination.hash).to_bytes(),
                protocol=PROTO_DATAGRAM2, src_port=9, dst_port=53)
    first, second, third = [await asyncio.wait_for(got.get(), 5) for _ in range(3)]
    assert (first.payload, first.sender, first.from_port, first.repliable) == (b"two", a.destination, 7, True)
    assert (second.payload, second.sender, second.from_port, second.repliable) == (b"three", a.destination, 8, True)
    assert (third.payload, third.sender, third.from_port) == (b"i2pd's", a.destination, 9)
    await asyncio.sleep(0.05)
    assert got.empty()
    await network.close()


async def test_ping_answers_or_says_why_not(network):
    server = await network.open_session()
    client = await network.open_session()
    gone = PrivateKeys.generate().destination
    if not isinstance(network, InProcessNetwork):
        with pytest.raises(Unsupported):           # SAM v3 has no ping command
            await client.ping(server.destination, timeout=2)
        return
    for target in (server.destination, server.b32):
        assert 0 <= await client.ping(target, timeout=5) < 5
    with pytest.raises(PeerNotFound):              # no LeaseSet for its b32
        await client.ping(gone.b32_address, timeout=2)
    with pytest.raises(ConnectTimeout):            # a destination given whole: the ping goes, no pong comes
        await client.ping(gone, timeout=0.5)


@pytest.mark.parametrize("text", ["", "foo", "foo.com", "a" * 70 + ".i2p", "bad_name.i2p", "x" * 600,
                                  "a" * 60 + ".b32.i2p"])
def test_parse_address_refuses_what_is_not_an_address(text):
    with pytest.raises(NameNotFound):
        parse_address(text)


def test_parse_address_forms():
    dest = PrivateKeys.generate().destination
    assert parse_address(dest.b64) == dest
    assert parse_address(dest.b64 + ".i2p") == dest
    assert parse_address(dest.b32_address.upper()) == dest.hash
    assert parse_address("Example.I2P.") == "example.i2p"


async def test_both_ends_can_reset_a_stream(network):
    server = await network.open_session()
    client = await network.open_session()
    reset = asyncio.Event()

    async def resetter(stream: IncomingStream) -> None:
        await stream.reader.readexactly(2)
        stream.writer.abort()
        reset.set()

    await server.serve(resetter)
    reader, writer = await client.connect(server.destination, 1, timeout=5)
    writer.write(b"hi")
    await writer.drain()
    await asyncio.wait_for(reset.wait(), 5)
    try:
        assert await read_all(reader) == b""
    except ConnectionError:
        pass
    reader, writer = await client.connect(server.destination, 1, timeout=5)
    writer.abort()
    assert writer.is_closing()
