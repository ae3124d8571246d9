"""Datagrams on the control socket and through the UDP port, and PRIMARY sessions with subsessions."""
from __future__ import annotations

import asyncio

import pytest

from core.data.encoding import b64decode
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.datagram import Datagram1, Datagram2
from core.sam.backend import ReceivedDatagram

from .helpers import TIMEOUT, Sam, session


class Udp(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)

    async def get(self) -> bytes:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def udp_socket() -> tuple[asyncio.DatagramTransport, Udp, int]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Udp, local_addr=("127.0.0.1", 0))
    return transport, protocol, transport.get_extra_info("sockname")[1]


async def received(sam: Sam) -> tuple:
    header = await sam.reply()
    return header, await sam.read(int(header.options["SIZE"]))


@pytest.mark.parametrize("style", ["DATAGRAM", "DATAGRAM2"])
async def test_repliable_datagrams_on_the_control_socket(bridge, style):
    a, dest_a = await session(bridge, "a", style)
    b, dest_b = await session(bridge, "b", style)
    a.send(f"DATAGRAM SEND DESTINATION={dest_b} SIZE=5 FROM_PORT=11 TO_PORT=22\nhello".encode())
    header, payload = await received(b)
    assert (header.verb, header.action) == ("DATAGRAM", "RECEIVED")
    assert header.options == {"DESTINATION": dest_a, "SIZE": "5", "FROM_PORT": "11", "TO_PORT": "22"}
    assert payload == b"hello"
    body = bytes(range(256)) * 100
    b.send(f"DATAGRAM SEND DESTINATION={dest_a} SIZE={len(body)}\n".encode() + body)
    header, payload = await received(a)
    assert header.options["DESTINATION"] == dest_b and payload == body


async def test_datagram3_shows_the_sender_hash(bridge):
    a, dest_a = await session(bridge, "a", "DATAGRAM3")
    b, dest_b = await session(bridge, "b", "DATAGRAM3")
    a.send(f"DATAGRAM SEND DESTINATION={dest_b} SIZE=3\nabc".encode())
    header, payload = await received(b)
    sender = header.options["DESTINATION"]
    assert len(sender) == 44 and b64decode(sender) == Destination.from_b64(dest_a).hash and payload == b"abc"
    reply_to = Destination.from_b64(dest_a).b32_address     # the reply path the spec describes
    looked_up = await b.cmd(f"NAMING LOOKUP NAME={reply_to}")
    b.send(f"DATAGRAM SEND DESTINATION={looked_up.options['VALUE']} SIZE=2\nok".encode())
    assert (await received(a))[1] == b"ok"


async def test_raw_datagrams_on_the_control_socket(bridge):
    a, dest_a = await session(bridge, "a", "RAW", "PROTOCOL=200 FROM_PORT=3")
    b, dest_b = await session(bridge, "b", "RAW", "PROTOCOL=200")
    a.send(f"RAW SEND DESTINATION={dest_b} SIZE=4 TO_PORT=9\nr\naw".encode())
    header, payload = await received(b)
    assert (header.verb, header.action) == ("RAW", "RECEIVED")
    assert header.options == {"SIZE": "4", "FROM_PORT": "3", "TO_PORT": "9", "PROTOCOL": "200"}
    assert payload == b"r\naw"


async def test_version_31_received_headers_have_no_ports(bridge):
    a, _ = await session(bridge, "a", "DATAGRAM", version="3.1")
    b, dest_b = await session(bridge, "b", "DATAGRAM", version="3.1")
    a.send(f"DATAGRAM SEND DESTINATION={dest_b} SIZE=1\nx".encode())
    header, _ = await received(b)
    assert set(header.options) == {"DESTINATION", "SIZE"}


async def test_datagram_send_errors(bridge, backend):
    a, dest_a = await session(bridge, "a", "DATAGRAM")
    raw, _ = await session(bridge, "r", "RAW")
    stream, _ = await session(bridge, "s", "STREAM")
    unknown = backend.generate_keys(7, 4).destination
    cases = [
        (a, f"RAW SEND DESTINATION={dest_a} SIZE=1\nx", "RAW"),                     # wrong style
        (raw, f"DATAGRAM SEND DESTINATION={dest_a} SIZE=1\nx", "DATAGRAM"),
        (stream, f"DATAGRAM SEND DESTINATION={dest_a} SIZE=1\nx", "DATAGRAM"),
        (a, "DATAGRAM SEND DESTINATION=garbage SIZE=1\nx", "DATAGRAM"),
        (a, f"DATAGRAM SEND DESTINATION={unknown.b32_address} SIZE=1\nx", "DATAGRAM"),
        (a, "DATAGRAM SEND SIZE=1\nx", "DATAGRAM"),
        (a, f"DATAGRAM SEND DESTINATION={dest_a} SIZE=1 FROM_PORT=x\nx", "DATAGRAM"),
        (raw, f"RAW SEND DESTINATION={dest_a} SIZE=1 PROTOCOL=6\nx", "RAW"),
    ]
    for sam, line, verb in cases:
        reply = await sam.cmd(line.encode())
        assert (reply.verb, reply.action) == (verb, "STATUS"), line
        assert reply.options["RESULT"] in ("I2P_ERROR", "INVALID_KEY", "CANT_REACH_PEER"), line
        assert (await sam.cmd("PING")).verb == "PONG"            # the payload was consumed: still in sync
    for line in (f"DATAGRAM SEND DESTINATION={dest_a}", f"DATAGRAM SEND DESTINATION={dest_a} SIZE=0",
                 f"DATAGRAM SEND DESTINATION={dest_a} SIZE=31745"):
        sam = await Sam.open(bridge)
        reply = await sam.cmd(line)
        assert reply.options["RESULT"] == "I2P_ERROR" and await sam.closed()   # unknown length: cannot resync
    no_session = await Sam.open(bridge)
    assert (await no_session.cmd(f"DATAGRAM SEND DESTINATION={dest_a} SIZE=1\nx".encode())).options["RESULT"] \
        == "I2P_ERROR"


async def test_udp_port_both_ways(bridge):
    listener, inbox_b, port_b = await udp_socket()
    sender, inbox_a, port_a = await udp_socket()
    a, dest_a = await session(bridge, "a", "DATAGRAM", f"PORT={port_a} HOST=127.0.0.1")
    b, dest_b = await session(bridge, "b", "DATAGRAM", f"PORT={port_b}")
    sam_udp = bridge.udp_address
    sender.sendto(f"3.0 a {dest_b} FROM_PORT=4 TO_PORT=5\n".encode() + b"via udp", sam_udp)
    packet = await inbox_b.get()
    assert packet == f"{dest_a} FROM_PORT=4 TO_PORT=5\n".encode() + b"via udp"
    reply_to = packet.split(b" ", 1)[0].decode()
    listener.sendto(f"3.3 b {reply_to} SEND_TAGS=4 EXPIRES=30 SEND_LEASESET=false\n".encode() + b"back", sam_udp)
    packet = await inbox_a.get()
    assert packet == f"{dest_b} FROM_PORT=0 TO_PORT=0\n".encode() + b"back"
    b_session = next(s for s in bridge.backend.sessions.values() if s.destination.b64 == dest_b)
    assert b_session.sent_options[-1] == {"SEND_TAGS": 4, "EXPIRES": 30, "SEND_LEASESET": False}
    listener.sendto(f"3 b {Destination.from_b64(dest_a).b32_address}\n".encode() + b"by b32", sam_udp)
    assert (await inbox_a.get()).endswith(b"\nby b32")
    before = bridge.dropped_datagrams
    for bad in (b"no header", b"2.0 a x\npayload", b"3.0 nobody " + dest_b.encode() + b"\nx",
                b"3.0 a garbage\nx", b"3.0 a " + dest_b.encode() + b"\n", b"3.0 a unknown.i2p\nx"):
        sender.sendto(bad, sam_udp)
    sender.sendto(f"3.0 a {dest_b}\n".encode() + b"after junk", sam_udp)
    assert (await inbox_b.get()).endswith(b"\nafter junk")
    await asyncio.sleep(0.05)
    assert bridge.dropped_datagrams - before == 6
    listener.close()
    sender.close()


async def test_udp_raw_forwarding_with_and_without_header(bridge):
    plain, inbox_plain, port_plain = await udp_socket()
    headed, inbox_headed, port_headed = await udp_socket()
    _a, dest_a = await session(bridge, "a", "RAW", f"PORT={port_plain}")
    _b, dest_b = await session(bridge, "b", "RAW", f"PORT={port_headed} HEADER=true")
    plain.sendto(f"3.2 a {dest_b} TO_PORT=8 PROTOCOL=18\n".encode() + b"raw1", bridge.udp_address)
    assert await inbox_headed.get() == b"FROM_PORT=0 TO_PORT=8 PROTOCOL=18\nraw1"
    headed.sendto(f"3.2 b {dest_a}\n".encode() + b"raw2", bridge.udp_address)
    assert await inbox_plain.get() == b"raw2"
    plain.close()
    headed.close()


async def test_forged_and_misaddressed_datagrams_are_dropped(bridge, backend):
    b, dest_b = await session(bridge, "b", "DATAGRAM2")
    c, dest_c = await session(bridge, "c", "DATAGRAM")
    target_b = next(s for s in backend.sessions.values() if s.destination.b64 == dest_b)
    target_c = next(s for s in backend.sessions.values() if s.destination.b64 == dest_c)
    keys = PrivateKeys.generate(7)
    signed_for_c = Datagram2.create(keys, b"replayed", target_c.destination.hash).to_bytes()
    good = Datagram1.create(keys, b"genuine")
    forged = Datagram1(keys.destination, good.signature, b"tampered").to_bytes()
    before = bridge.dropped_datagrams
    target_b._datagram_handler(ReceivedDatagram(19, signed_for_c))      # signed for another destination
    target_c._datagram_handler(ReceivedDatagram(17, forged))
    target_c._datagram_handler(ReceivedDatagram(17, b"\x00short"))
    target_c._datagram_handler(ReceivedDatagram(18, b"no raw subsession"))
    target_c._datagram_handler(ReceivedDatagram(17, good.to_bytes()))
    header, payload = await received(c)
    assert header.options["DESTINATION"] == keys.destination.b64 and payload == b"genuine"
    assert bridge.dropped_datagrams - before == 4


async def test_control_socket_that_never_reads_drops_datagrams(bridge, backend):
    a, _ = await session(bridge, "a", "DATAGRAM")
    b, dest_b = await session(bridge, "b", "DATAGRAM")
    target = next(s for s in backend.sessions.values() if s.destination.b64 == dest_b)
    keys = PrivateKeys.generate(7)
    datagram = Datagram1.create(keys, b"z" * 30000).to_bytes()
    before = bridge.dropped_datagrams
    for _ in range(200):                         # 6 MB at a client that reads nothing
        target._datagram_handler(ReceivedDatagram(17, datagram))
    assert bridge.dropped_datagrams > before


# ---------------------------------------------------------------- PRIMARY

async def test_primary_with_subsessions(bridge):
    udp, inbox, udp_port = await udp_socket()
    primary = await Sam.open(bridge)
    created = await primary.cmd("SESSION CREATE STYLE=PRIMARY ID=main DESTINATION=TRANSIENT SIGNATURE_TYPE=7 "
                                "inbound.quantity=3")
    assert created.options["RESULT"] == "OK"
    dest_main = PrivateKeys.parse(b64decode(created.options["DESTINATION"])).destination.b64
    adds = [
        ("SESSION ADD STYLE=STREAM ID=web FROM_PORT=80", "OK"),
        ("SESSION ADD STYLE=STREAM ID=any", "OK"),
        (f"SESSION ADD STYLE=DATAGRAM ID=dht PORT={udp_port} FROM_PORT=6881", "OK"),
        (f"SESSION ADD STYLE=RAW ID=rawsub PORT={udp_port} LISTEN_PROTOCOL=0 HEADER=true", "OK"),
        ("SESSION ADD STYLE=STREAM ID=web2 FROM_PORT=80", "I2P_ERROR"),           # same listen port
        ("SESSION ADD STYLE=STREAM ID=web FROM_PORT=81", "DUPLICATED_ID"),
        ("SESSION ADD STYLE=STREAM ID=x FROM_PORT=80 LISTEN_PORT=81", "I2P_ERROR"),
        ("SESSION ADD STYLE=DATAGRAM ID=x", "I2P_ERROR"),                           # PORT required
        (f"SESSION ADD STYLE=STREAM ID=x PORT={udp_port}", "I2P_ERROR"),
        ("SESSION ADD STYLE=PRIMARY ID=x", "I2P_ERROR"),
        ("SESSION ADD STYLE=STREAM ID=x DESTINATION=TRANSIENT", "I2P_ERROR"),
        (f"SESSION ADD STYLE=RAW ID=x PORT={udp_port} LISTEN_PROTOCOL=6", "I2P_ERROR"),
        ("SESSION ADD STYLE=STREAM ID=main", "DUPLICATED_ID"),
    ]
    for line, result in adds:
        reply = await primary.cmd(line)
        assert (reply.verb, reply.options["RESULT"]) == ("SESSION", result), line
    client, dest_client = await session(bridge, "client")
    # streams route by port: 80 to "web", anything else to the port-0 "any"
    acceptors = {}
    for nickname in ("web", "any"):
        acceptors[nickname] = await Sam.open(bridge)
        assert (await acceptors[nickname].cmd(f"STREAM ACCEPT ID={nickname}")).options["RESULT"] == "OK"
    for port, nickname in ((80, "web"), (443, "any")):
        connector = await Sam.open(bridge)
        await connector.cmd(f"STREAM CONNECT ID=client DESTINATION={dest_main} TO_PORT={port}")
        line = (await acceptors[nickname].line()).decode()
        assert line == f"{dest_client} FROM_PORT=0 TO_PORT={port}\n"
    reply = await (await Sam.open(bridge)).cmd("STREAM ACCEPT ID=main")
    assert reply.options["RESULT"] == "I2P_ERROR"                                    # no data on the PRIMARY ID
    # datagrams: repliable to the DATAGRAM subsession, other protocols to the default RAW one
    dgram, _ = await session(bridge, "dg", "DATAGRAM")
    dgram.send(f"DATAGRAM SEND DESTINATION={dest_main} SIZE=3 TO_PORT=6881\nDHT".encode())
    packet = await inbox.get()
    assert packet.endswith(b" FROM_PORT=0 TO_PORT=6881\nDHT")
    raw, _ = await session(bridge, "rw", "RAW", "PROTOCOL=99")
    raw.send(f"RAW SEND DESTINATION={dest_main} SIZE=3 TO_PORT=5\nRAW".encode())
    assert await inbox.get() == b"FROM_PORT=0 TO_PORT=5 PROTOCOL=99\nRAW"
    dgram.send(f"DATAGRAM SEND DESTINATION={dest_main} SIZE=4 TO_PORT=1234\nmiss".encode())
    packet = await inbox.get()                    # no DATAGRAM subsession on 1234: the RAW default gets it
    assert packet.startswith(b"FROM_PORT=0 TO_PORT=1234 PROTOCOL=17\n")
    # sending from a subsession on the control socket, named by ID, and through UDP
    primary.send(f"DATAGRAM SEND ID=dht DESTINATION={(await dgram.cmd('NAMING LOOKUP NAME=ME')).options['VALUE']}"
                 f" SIZE=2\nhi".encode())
    header, payload = await received(dgram)
    assert header.options["FROM_PORT"] == "6881" and header.options["DESTINATION"] == dest_main
    assert (await primary.cmd(f"DATAGRAM SEND DESTINATION={dest_client} SIZE=1\nx".encode())).options["RESULT"] \
        == "INVALID_ID"
    # REMOVE
    assert (await primary.cmd("SESSION REMOVE ID=web")).options["RESULT"] == "OK"
    assert (await primary.cmd("SESSION REMOVE ID=web")).options["RESULT"] == "INVALID_ID"
    assert (await primary.cmd("SESSION REMOVE ID=any FROM_PORT=1")).options["RESULT"] == "I2P_ERROR"
    assert (await (await Sam.open(bridge)).cmd("STREAM ACCEPT ID=web")).options["RESULT"] == "INVALID_ID"
    assert (await primary.cmd("SESSION ADD STYLE=STREAM ID=web FROM_PORT=80")).options["RESULT"] == "OK"
    # closing the primary closes every subsession
    await primary.close()
    await asyncio.sleep(0.05)
    for nickname in ("any", "dht", "rawsub", "main"):
        assert (await (await Sam.open(bridge)).cmd(f"STREAM ACCEPT ID={nickname}")).options["RESULT"] \
            == "INVALID_ID"
    udp.close()
