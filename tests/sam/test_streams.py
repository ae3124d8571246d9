"""STREAM CONNECT / ACCEPT / FORWARD between SAM sessions over real sockets."""
from __future__ import annotations

import asyncio
import datetime
import ssl

from core.data.identity import Destination

from .helpers import TIMEOUT, Sam, running_bridge, session


async def test_connect_accept_moves_data_both_ways(bridge):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    acceptor = await Sam.open(bridge)
    assert (await acceptor.cmd("STREAM ACCEPT ID=b")).options == {"RESULT": "OK"}
    connector = await Sam.open(bridge)
    status = await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b} TO_PORT=80 FROM_PORT=5")
    assert status.options == {"RESULT": "OK"}
    peer_line = (await acceptor.line()).decode()
    assert peer_line == f"{dest_a} FROM_PORT=5 TO_PORT=80\n"
    big = bytes(range(256)) * 1000
    connector.send(big)
    assert await acceptor.read(len(big)) == big
    acceptor.send(b"pong!")
    assert await connector.read(5) == b"pong!"
    connector.writer.write_eof()
    assert await acceptor.closed()        # EOF passes through the I2P stream
    acceptor.writer.write(b"late")
    acceptor.writer.write_eof()
    assert await asyncio.wait_for(connector.reader.read(), TIMEOUT) == b"late"
    for sam in (acceptor, connector, control_a, control_b):
        await sam.close()


async def test_version_31_peer_line_has_no_ports(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    acceptor = await Sam.open(bridge, "3.1")
    assert (await acceptor.cmd("STREAM ACCEPT ID=b SILENT=false")).options["RESULT"] == "OK"
    connector = await Sam.open(bridge, "3.1")
    assert (await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")).options["RESULT"] == "OK"
    line = await acceptor.line()
    assert Destination.from_b64(line.decode().rstrip("\n"))


async def test_silent_connect_and_accept(bridge):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    acceptor = await Sam.open(bridge)
    acceptor.send("STREAM ACCEPT ID=b SILENT=true")
    connector = await Sam.open(bridge)
    await asyncio.sleep(0.05)
    connector.send(f"STREAM CONNECT ID=a DESTINATION={dest_b} SILENT=true")
    connector.send(b"first bytes")        # pipelined right after the command
    assert await acceptor.read(11) == b"first bytes"
    acceptor.send(b"back")
    assert await connector.read(4) == b"back"


async def test_connect_by_b32_and_pipelined_data(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    b32 = Destination.from_b64(dest_b).b32_address
    acceptor = await Sam.open(bridge)
    await acceptor.cmd("STREAM ACCEPT ID=b")
    connector = await Sam.open(bridge)
    connector.send(f"STREAM CONNECT ID=a DESTINATION={b32}\nGET / HTTP/1.0\r\n\r\n")
    assert (await connector.reply()).options == {"RESULT": "OK"}
    await acceptor.line()
    assert await acceptor.read(18) == b"GET / HTTP/1.0\r\n\r\n"


async def test_connect_errors(bridge, backend):
    control_a, _ = await session(bridge, "a")
    other = backend.generate_keys(7, 4).destination
    cases = [
        ("STREAM CONNECT ID=nobody DESTINATION=x.i2p", "INVALID_ID"),
        ("STREAM CONNECT ID=a DESTINATION=notakey", "INVALID_KEY"),
        ("STREAM CONNECT ID=a DESTINATION=" + "A" * 600, "INVALID_KEY"),
        ("STREAM CONNECT ID=a DESTINATION=unknown.i2p", "INVALID_KEY"),
        (f"STREAM CONNECT ID=a DESTINATION={other.b32_address}", "CANT_REACH_PEER"),
        (f"STREAM CONNECT ID=a DESTINATION={other.b64}", "CANT_REACH_PEER"),
        ("STREAM CONNECT ID=a", "I2P_ERROR"),
        ("STREAM CONNECT ID=a DESTINATION=x.i2p SILENT=maybe", "I2P_ERROR"),
        ("STREAM CONNECT ID=a DESTINATION=x.i2p TO_PORT=70000", "I2P_ERROR"),
    ]
    for line, result in cases:
        sam = await Sam.open(bridge)
        reply = await sam.cmd(line)
        assert (reply.verb, reply.action, reply.options["RESULT"]) == ("STREAM", "STATUS", result), line
        assert reply.options["MESSAGE"]
        assert await sam.closed(), line


async def test_silent_connect_failure_just_closes(bridge, backend):
    control_a, _ = await session(bridge, "a")
    sam = await Sam.open(bridge)
    sam.send(f"STREAM CONNECT ID=a SILENT=true DESTINATION={backend.generate_keys(7, 4).destination.b64}")
    assert await sam.closed()


async def test_connect_timeout_is_timeout(bridge, backend, monkeypatch):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")

    async def no_answer(self, remote, **kwargs):
        raise TimeoutError("no answer")
    monkeypatch.setattr(type(next(iter(backend.sessions.values()))), "connect", no_answer)
    sam = await Sam.open(bridge)
    assert (await sam.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")).options["RESULT"] == "TIMEOUT"


async def test_connect_refused_when_nobody_accepts():
    async with running_bridge(accept_hold=0.1) as bridge:
        control_a, _ = await session(bridge, "a")
        control_b, dest_b = await session(bridge, "b")
        sam = await Sam.open(bridge)
        reply = await sam.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
        assert reply.options["RESULT"] == "OK"   # the SYN is answered; the stream waits for an ACCEPT
        assert await sam.closed()                # and is reset when none comes within accept_hold


async def test_stream_arriving_before_accept_waits_in_backlog(bridge):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    connector = await Sam.open(bridge)
    assert (await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")).options["RESULT"] == "OK"
    connector.send(b"early")
    await asyncio.sleep(0.1)
    acceptor = await Sam.open(bridge)
    assert (await acceptor.cmd("STREAM ACCEPT ID=b")).options["RESULT"] == "OK"
    assert (await acceptor.line()).startswith(dest_a.encode())
    assert await acceptor.read(5) == b"early"


async def test_concurrent_accepts_and_vanished_acceptor(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    gone = await Sam.open(bridge)
    await gone.cmd("STREAM ACCEPT ID=b")
    acceptors = [await Sam.open(bridge) for _ in range(2)]
    for acceptor in acceptors:
        assert (await acceptor.cmd("STREAM ACCEPT ID=b")).options["RESULT"] == "OK"
    await gone.close()                      # its pending ACCEPT must not swallow a stream
    await asyncio.sleep(0.05)
    connectors = []
    for n in range(2):
        connector = await Sam.open(bridge)
        assert (await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")).options["RESULT"] == "OK"
        connector.send(f"stream {n}".encode())
        connectors.append(connector)
    got = set()
    for acceptor in acceptors:
        await acceptor.line()
        got.add(await acceptor.read(8))
    assert got == {b"stream 0", b"stream 1"}


async def test_pending_accept_fails_when_session_closes(bridge):
    control, _ = await session(bridge, "b")
    acceptor = await Sam.open(bridge)
    await acceptor.cmd("STREAM ACCEPT ID=b")
    await control.close()
    reply = await acceptor.reply()
    assert (reply.verb, reply.options["RESULT"]) == ("STREAM", "I2P_ERROR")
    assert await acceptor.closed()
    again = await Sam.open(bridge)
    assert (await again.cmd("STREAM ACCEPT ID=b")).options["RESULT"] == "INVALID_ID"


async def test_streams_die_with_their_session(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    acceptor = await Sam.open(bridge)
    await acceptor.cmd("STREAM ACCEPT ID=b")
    connector = await Sam.open(bridge)
    await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
    await acceptor.line()
    await control_a.close()
    assert await connector.closed()
    assert await acceptor.closed()


async def test_stream_commands_refused_on_the_control_socket(bridge):
    control, _ = await session(bridge, "a")
    reply = await control.cmd("STREAM ACCEPT ID=a")
    assert reply.options["RESULT"] == "I2P_ERROR"
    assert (await control.cmd("PING still here")).text == "still here"


async def test_stream_on_datagram_or_primary_session_is_refused(bridge):
    control_d, _ = await session(bridge, "d", "DATAGRAM")
    control_p, _ = await session(bridge, "p", "PRIMARY")
    for nickname in ("d", "p"):
        sam = await Sam.open(bridge)
        assert (await sam.cmd(f"STREAM ACCEPT ID={nickname}")).options["RESULT"] == "I2P_ERROR"


async def test_stalled_reader_does_not_stall_the_bridge(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    acceptor = await Sam.open(bridge)
    await acceptor.cmd("STREAM ACCEPT ID=b")
    connector = await Sam.open(bridge)
    await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
    await acceptor.line()
    chunk = b"x" * 65536
    for _ in range(64):                     # 4 MiB nobody reads: buffers fill, writes stop being drained
        connector.writer.write(chunk)
    other = await Sam.open(bridge)
    assert (await other.cmd("PING alive")).text == "alive"
    total = 0
    while total < 64 * 65536:               # reading resumes the flow
        total += len(await asyncio.wait_for(acceptor.reader.read(1 << 20), TIMEOUT))
    assert total == 64 * 65536


# ---------------------------------------------------------------- FORWARD

async def _local_server(received: asyncio.Queue, ssl_context=None):
    async def handle(reader, writer):
        header = await reader.readline()
        body = await reader.readexactly(5)
        await received.put((header, body))
        writer.write(b"reply:" + body)
        await writer.drain()
        writer.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)


async def test_forward_to_local_tcp_server(bridge):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    received: asyncio.Queue = asyncio.Queue()
    server = await _local_server(received)
    port = server.sockets[0].getsockname()[1]
    forwarder = await Sam.open(bridge)
    assert (await forwarder.cmd(f"STREAM FORWARD ID=b PORT={port} HOST=127.0.0.1")).options["RESULT"] == "OK"
    for n in range(2):
        connector = await Sam.open(bridge)
        assert (await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b} TO_PORT=7")).options["RESULT"] == "OK"
        connector.send(f"hell{n}".encode())
        header, body = await asyncio.wait_for(received.get(), TIMEOUT)
        assert header.decode() == f"{dest_a} FROM_PORT=0 TO_PORT=7\n"
        assert body == f"hell{n}".encode()
        assert await asyncio.wait_for(connector.reader.read(), TIMEOUT) == b"reply:" + body
    acceptor = await Sam.open(bridge)
    assert (await acceptor.cmd("STREAM ACCEPT ID=b")).options["RESULT"] == "I2P_ERROR"
    second = await Sam.open(bridge)
    assert (await second.cmd(f"STREAM FORWARD ID=b PORT={port}")).options["RESULT"] == "I2P_ERROR"
    assert (await forwarder.cmd("PING")).verb == "PONG"   # the forwarding socket still takes commands
    await forwarder.close()                 # closing the forwarding socket ends the forward
    await asyncio.sleep(0.05)
    again = await Sam.open(bridge)
    assert (await again.cmd("STREAM ACCEPT ID=b")).options["RESULT"] == "OK"
    server.close()


async def test_forward_silent_gets_status_and_raw_data(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    received: asyncio.Queue = asyncio.Queue()

    async def handle(reader, writer):
        await received.put(await reader.readexactly(4))
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    forwarder = await Sam.open(bridge)
    reply = await forwarder.cmd(f"STREAM FORWARD ID=b PORT={server.sockets[0].getsockname()[1]} SILENT=true")
    assert reply.options["RESULT"] == "OK"
    connector = await Sam.open(bridge)
    await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
    connector.send(b"data")
    assert await asyncio.wait_for(received.get(), TIMEOUT) == b"data"
    server.close()


async def test_forward_to_dead_port_resets_the_stream(bridge):
    control_a, _ = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    forwarder = await Sam.open(bridge)
    await forwarder.cmd(f"STREAM FORWARD ID=b PORT={port}")
    connector = await Sam.open(bridge)
    await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
    assert await connector.closed()


def _self_signed_context() -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import tempfile, os
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    folder = tempfile.mkdtemp()
    cert_path, key_path = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


async def test_forward_over_ssl(bridge):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    received: asyncio.Queue = asyncio.Queue()
    server = await _local_server(received, _self_signed_context())
    forwarder = await Sam.open(bridge)
    reply = await forwarder.cmd(f"STREAM FORWARD ID=b PORT={server.sockets[0].getsockname()[1]} SSL=true")
    assert reply.options["RESULT"] == "OK"
    connector = await Sam.open(bridge)
    await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={dest_b}")
    connector.send(b"tls!!")
    header, body = await asyncio.wait_for(received.get(), TIMEOUT)
    assert header.startswith(dest_a.encode()) and body == b"tls!!"
    assert await asyncio.wait_for(connector.reader.read(), TIMEOUT) == b"reply:tls!!"
    server.close()
