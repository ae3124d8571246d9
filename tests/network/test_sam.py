"""SamNetwork beyond what every adapter does (test_port.py): versions, keys, many incoming streams,
names through the bridge, a session whose bridge goes away, and hostile bridges."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from apps.network import NameNotFound, NetworkError, PeerNotFound
from apps.network.sam import SamNetwork
from apps.network.sam_protocol import private_keys_b64
from core.data.privatekeys import PrivateKeys
from core.sam.bridge import SamBridge, SamConfig
from core.sam.client_backend import ClientBackend

from .conftest import sam_network
from .test_port import echo, read_all


@pytest.fixture
async def bridge(api):
    site = PrivateKeys.generate().destination
    bridge = SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0), address_book={"bridge.i2p": site}.get)
    bridge.site = site
    async with bridge:
        yield bridge


async def test_sam_3_1_streams_without_ports_go_to_the_only_handler(bridge):
    network = sam_network(bridge, max_version="3.1")
    try:
        server = await network.open_session(name="server")
        client = await network.open_session(name="client")
        assert network.status() == {"kind": "sam", "bridge": f"127.0.0.1:{bridge.port}", "sam_version": "3.1",
                                    "sessions": 2}
        assert server.status()["style"] == "STREAM"
        await server.serve(echo, port=80)
        assert server.status()["pending_accepts"] == 1          # concurrent ACCEPTs are a 3.2 feature
        reader, writer = await client.connect(server.destination, 6667, timeout=5)   # 3.1: no TO_PORT sent
        writer.write(b"x")
        assert await read_all(reader) == b"port 0 from " + client.b32.encode() + b": x"
        writer.close()
        # our bridge refuses a second session on the same destination, and 3.1 has no PRIMARY: no datagrams
        assert server.status()["datagrams"].startswith("unavailable")
        with pytest.raises(NetworkError):
            client.send_datagram(server.destination, b"x")
    finally:
        await network.close()


async def test_sessions_with_keys_and_transient_keys_read_back(bridge):
    network = sam_network(bridge)
    keys = PrivateKeys.generate()
    try:
        session = await network.open_session(keys, {"inbound.length": "0"}, name="keyed")
        assert session.destination == keys.destination and session.keys == keys
        assert session.status()["style"] == "PRIMARY" and session.status()["datagrams"] == "subsessions"
        with pytest.raises(NetworkError, match="in use"):
            await network.open_session(keys)
        transient = await network.open_session()
        assert transient.keys is not None and transient.keys.destination == transient.destination
        with pytest.raises(ValueError):
            await network.open_session(None, {"bad key": "1"})
    finally:
        await network.close()
    assert network.status()["sessions"] == 0


async def test_many_incoming_streams_through_few_pending_accepts(bridge):
    network = sam_network(bridge, pending_accepts=2)
    try:
        server = await network.open_session()
        client = await network.open_session()
        await server.serve(echo, port=80)

        async def one(i: int) -> bytes:
            reader, writer = await client.connect(server.destination, 80, timeout=10)
            writer.write(b"%d" % i)
            await writer.drain()
            try:
                return await read_all(reader)
            finally:
                writer.close()

        answers = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(12))), 30)
        assert answers == [b"port 80 from " + client.b32.encode() + b": %d" % i for i in range(12)]
        assert server.status()["streams_in"] == 12 and server.status()["pending_accepts"] == 2
        server.stop_serving(80)
        await asyncio.sleep(0.05)
        assert server.status()["pending_accepts"] == 0
    finally:
        await network.close()


async def test_names_through_the_resolver_then_the_bridge(bridge):
    network = sam_network(bridge)
    try:
        session = await network.open_session()
        other = PrivateKeys.generate().destination
        assert await session.resolve("bridge.i2p") == bridge.site          # the bridge's address book
        network.resolver = {"bridge.i2p": other}.get                      # ours first
        assert await session.resolve("bridge.i2p") == other
        with pytest.raises(NameNotFound):
            await session.resolve("nowhere.i2p")
        with pytest.raises(PeerNotFound):
            await session.resolve(other.b32_address)
        assert await session.resolve(session.b32) == session.destination   # through the bridge, then cached
        assert session.destination.hash in network._lookups
    finally:
        await network.close()


async def test_session_is_gone_when_the_bridge_goes(api):
    bridge = SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0))
    await bridge.start()
    network = sam_network(bridge)
    try:
        session = await network.open_session()
        await session.serve(echo)
        await bridge.stop()
        for _ in range(100):
            if session.status()["state"] != "open":
                break
            await asyncio.sleep(0.02)
        status = session.status()
        assert (status["state"], status["ready"]) == ("failed", False) and status["error"]
        with pytest.raises(NetworkError, match="gone"):
            await session.connect(session.destination, 80, timeout=2)
        with pytest.raises(NetworkError):
            await network.open_session()
    finally:
        await network.close()
        await bridge.stop()


# ---------------------------------------------------------------- hostile bridges

@contextlib.asynccontextmanager
async def fake_bridge(*answers: bytes | None):
    """A TCP server that answers each line it reads with the next of `answers` (None: close the connection)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answer in answers:
                if not await reader.readline() or answer is None:
                    return
                writer.write(answer)
                await writer.drain()
            await reader.read()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def scripted_bridge(serve):
    """A SamNetwork on a TCP server that runs `serve` for each connection (a bridge's script)."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    network = SamNetwork("127.0.0.1", server.sockets[0].getsockname()[1], reply_timeout=2)
    try:
        yield network
    finally:
        await network.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("answers", [
    (b"garbage\n",),
    (b"\x00\xff\xfe\n",),
    (b"x" * 70000,),                                                  # an overlong line
    (b"x" * 70000 + b"\n",),
    (None,),                                                          # closes after HELLO
    (b"HELLO REPLY RESULT=OK VERSION=3.3\n", None),                   # closes on SESSION CREATE
    (b"HELLO REPLY RESULT=OK VERSION=3.3\n", b"SESSION STATUS RESULT=OK\n"),
    (b"HELLO REPLY RESULT=OK VERSION=3.3\n", b"SESSION STATUS RESULT=OK DESTINATION=AAAA\n", None),
    (b"HELLO REPLY RESULT=OK VERSION=3.3\n", b"STREAM STATUS RESULT=OK\n"),
    (b"HELLO REPLY RESULT=OK VERSION=3.1\n", b"SESSION STATUS RESULT=OK DESTINATION=" + b"A" * 900 + b"\n"),
    (b"HELLO REPLY RESULT=NOVERSION\n",),
])
async def test_hostile_bridges_raise_network_errors(answers):
    async with fake_bridge(*answers) as port:
        network = SamNetwork("127.0.0.1", port, reply_timeout=2)
        with pytest.raises(NetworkError):
            await asyncio.wait_for(network.open_session(), 10)
        assert network.status()["sessions"] == 0


async def test_keys_answered_for_another_destination_are_refused():
    other = PrivateKeys.generate()
    reply = f"SESSION STATUS RESULT=OK DESTINATION={private_keys_b64(other)}\n".encode()
    async with fake_bridge(b"HELLO REPLY RESULT=OK VERSION=3.1\n", reply) as port:
        network = SamNetwork("127.0.0.1", port, reply_timeout=2, datagrams=False)
        with pytest.raises(NetworkError, match="another destination"):
            await network.open_session(PrivateKeys.generate())


async def test_a_silent_bridge_times_out_and_a_missing_one_is_unreachable():
    async with fake_bridge() as port:
        network = SamNetwork("127.0.0.1", port, reply_timeout=0.3)
        with pytest.raises(NetworkError, match="did not answer"):
            await network.open_session()
    with pytest.raises(NetworkError, match="cannot reach"):
        await SamNetwork("127.0.0.1", port).open_session()


async def test_pings_and_datagrams_on_the_control_socket_then_a_bad_one_ends_the_session():
    """A 3.3 bridge that delivers datagrams on the control socket (samv3.md "Receiving a Datagram")."""
    keys, peer = PrivateKeys.generate(), PrivateKeys.generate().destination
    pong: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    finish = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def answer(reply: bytes) -> bytes:
            line = await reader.readline()
            writer.write(reply)
            return line

        await answer(b"HELLO REPLY RESULT=OK VERSION=3.3\n")
        line = await reader.readline()
        if b"STYLE=MASTER" not in line:          # the DATAGRAM session beside it: refused as Java does
            writer.write(b"SESSION STATUS RESULT=DUPLICATED_DEST\n")
            writer.close()
            return
        writer.write(f"SESSION STATUS RESULT=OK DESTINATION={private_keys_b64(keys)}\n".encode())
        for _ in range(3):                       # SESSION ADD STREAM, DATAGRAM, RAW
            await answer(b"SESSION STATUS RESULT=OK\n")
        writer.write(b"PING x1\n")
        pong.set_result(await reader.readline())
        writer.write(f"DATAGRAM RECEIVED DESTINATION={peer.b64} SIZE=2 FROM_PORT=1 TO_PORT=53\n".encode() + b"hi")
        writer.write(b"DATAGRAM RECEIVED DESTINATION=junk SIZE=1\nx")     # a bad sender: dropped alone
        writer.write(b"RAW RECEIVED SIZE=4 FROM_PORT=2 TO_PORT=53 PROTOCOL=18\nr\naw")
        await finish.wait()
        writer.write(b"DATAGRAM RECEIVED SIZE=99999999\n")
        await reader.read()
        writer.close()

    async with scripted_bridge(serve) as network:
        session = await asyncio.wait_for(network.open_session(keys), 10)
        got: asyncio.Queue = asyncio.Queue()
        session.on_datagram(got.put_nowait, port=53)
        assert await asyncio.wait_for(pong, 5) == b"PONG x1\n"
        first, second = await asyncio.wait_for(got.get(), 5), await asyncio.wait_for(got.get(), 5)
        assert (first.payload, first.sender, first.from_port, first.to_port) == (b"hi", peer, 1, 53)
        assert (second.payload, second.sender, second.from_port) == (b"r\naw", None, 2)
        assert session.status()["state"] == "open" and session.status()["datagrams"] == "subsessions"
        finish.set()
        for _ in range(100):
            if session.status()["state"] != "open":
                break
            await asyncio.sleep(0.02)
        assert session.status()["state"] == "failed" and "DATAGRAM" in session.status()["error"]


async def test_half_made_datagram_sessions_are_closed_and_the_session_lives_on():
    """3.1 bridge: the DATAGRAM session beside the streams opens, the RAW one is refused."""
    keys = PrivateKeys.generate()
    datagram_closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HELLO REPLY RESULT=OK VERSION=3.1\n")
        line = await reader.readline()
        if b"STYLE=RAW" in line:
            writer.write(b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="no RAW here"\n')
            writer.close()
            return
        writer.write(f"SESSION STATUS RESULT=OK DESTINATION={private_keys_b64(keys)}\n".encode())
        await reader.read()
        if b"STYLE=DATAGRAM" in line:
            datagram_closed.set()
        writer.close()

    async with scripted_bridge(serve) as network:
        session = await asyncio.wait_for(network.open_session(keys), 10)
        await asyncio.wait_for(datagram_closed.wait(), 5)
        status = session.status()
        assert status["state"] == "open" and "no RAW here" in status["datagrams"]
        with pytest.raises(NetworkError, match="no datagrams"):
            session.send_datagram(keys.destination, b"x")


async def test_datagram_sessions_are_asked_for_while_the_destination_is_made():
    """A bridge sharing one destination among sessions on the same keys (i2pd) answers the PRIMARY's CREATE only
    once the DATAGRAM and RAW CREATEs have come: they must be sent before that answer, not after (i2pd 2.58
    restarts the destination's streaming part for each of them, losing streams that came in before)."""
    keys = PrivateKeys.generate()
    creates: dict[str, asyncio.Event] = {style: asyncio.Event() for style in ("MASTER", "DATAGRAM", "RAW")}
    order: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HELLO REPLY RESULT=OK VERSION=3.3\n")
        line = await reader.readline()
        style = next(s for s in creates if f"STYLE={s} ".encode() in line)
        order.append(style)
        creates[style].set()
        if style == "MASTER":
            await asyncio.wait_for(asyncio.gather(creates["DATAGRAM"].wait(), creates["RAW"].wait()), 5)
        writer.write(f"SESSION STATUS RESULT=OK DESTINATION={private_keys_b64(keys)}\n".encode())
        if style == "MASTER":
            await reader.readline()                  # SESSION ADD STREAM
            writer.write(b"SESSION STATUS RESULT=OK\n")
        await reader.read()
        writer.close()

    async with scripted_bridge(serve) as network:
        session = await asyncio.wait_for(network.open_session(keys, {"inbound.length": "1"}), 10)
        status = session.status()
        assert status["state"] == "open" and status["datagrams"] == "sessions"
        assert order[0] == "MASTER" and sorted(order[1:]) == ["DATAGRAM", "RAW"]
