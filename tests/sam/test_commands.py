"""HELLO, AUTH, utility commands, SESSION CREATE and NAMING LOOKUP over sockets, with their error replies."""
from __future__ import annotations

import asyncio
import time

import pytest

from core.data.encoding import b64decode, b64encode
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.sam.bridge import SamAuth
from core.sam.memory_backend import MemoryBackend

from .helpers import Sam, running_bridge, session


# ---------------------------------------------------------------- HELLO

@pytest.mark.parametrize("hello, version", [
    ("HELLO VERSION", "3.3"), ("HELLO VERSION MIN=3.0 MAX=3.1", "3.1"), ("hello version max=3", "3.3"),
    ("HELLO VERSION MIN=3.1 MAX=3.2", "3.2"), ("HELLO VERSION MAX=3.0", "3.0"), ("HELLO VERSION MIN=3", "3.3"),
])
async def test_hello_chooses_the_highest_version(bridge, hello, version):
    sam = await Sam.open(bridge, version=None)
    reply = await sam.cmd(hello)
    assert (reply.verb, reply.action, reply.options) == ("HELLO", "REPLY", {"RESULT": "OK", "VERSION": version})


async def test_hello_noversion_closes(bridge):
    sam = await Sam.open(bridge, version=None)
    reply = await sam.cmd("HELLO VERSION MIN=3.4 MAX=4.0")
    assert reply.options == {"RESULT": "NOVERSION"}
    assert await sam.closed()


@pytest.mark.parametrize("first", ["SESSION CREATE STYLE=STREAM ID=x DESTINATION=TRANSIENT", "PING",
                                   "HELLO VERSION MIN=abc", 'HELLO VERSION MIN="3.0', "HELLO", "\xff"])
async def test_anything_but_a_good_hello_first_is_refused(bridge, first):
    sam = await Sam.open(bridge, version=None)
    reply = await sam.cmd(first.encode("latin-1") + b"\n")
    assert (reply.verb, reply.action, reply.options["RESULT"]) == ("HELLO", "REPLY", "I2P_ERROR")
    assert reply.options["MESSAGE"]
    assert await sam.closed()


async def test_hello_timeout():
    async with running_bridge(hello_timeout=0.1) as bridge:
        sam = await Sam.open(bridge, version=None)
        sam.send(b"HELLO VERS")
        reply = await sam.reply()
        assert (reply.verb, reply.options["RESULT"]) == ("HELLO", "I2P_ERROR")
        assert await sam.closed()


async def test_idle_timeout_after_hello():
    async with running_bridge(idle_timeout=0.1) as bridge:
        sam = await Sam.open(bridge)
        reply = await sam.reply()
        assert (reply.verb, reply.action, reply.options["RESULT"]) == ("SESSION", "STATUS", "I2P_ERROR")
        assert await sam.closed()
        owner, _ = await session(bridge, "keep")        # a session's control socket is never idle-dropped
        await asyncio.sleep(0.3)
        assert (await owner.cmd("PING x")).text == "x"


async def test_second_hello_is_an_error(bridge):
    sam = await Sam.open(bridge)
    reply = await sam.cmd("HELLO VERSION")
    assert (reply.verb, reply.options["RESULT"]) == ("HELLO", "I2P_ERROR")
    assert (await sam.cmd("PING")).verb == "PONG"


# ---------------------------------------------------------------- AUTH

async def test_hello_with_authorization():
    auth = SamAuth({"alice": 'pa ss"word'}, enabled=True)
    async with running_bridge(auth=auth) as bridge:
        for hello in ("HELLO VERSION", "HELLO VERSION USER=alice PASSWORD=wrong", 'HELLO VERSION USER=bob PASSWORD=x'):
            sam = await Sam.open(bridge, version=None)
            reply = await sam.cmd(hello)
            assert reply.options["RESULT"] == "I2P_ERROR", hello
            assert await sam.closed()
        sam = await Sam.open(bridge, hello=r'HELLO VERSION USER="alice" PASSWORD="pa ss\"word"')
        assert (await sam.cmd("AUTH DISABLE")).options == {"RESULT": "OK"}
        assert not auth.enabled
        await Sam.open(bridge)


async def test_auth_commands(bridge):
    changes = []
    bridge.auth.on_change = lambda auth: changes.append(auth.enabled)
    sam = await Sam.open(bridge)
    assert (await sam.cmd("AUTH ENABLE")).options["RESULT"] == "I2P_ERROR"   # nobody could log in
    assert (await sam.cmd('AUTH ADD USER="u 1" PASSWORD=p')).options["RESULT"] == "OK"
    assert (await sam.cmd("AUTH ADD USER=u2")).options["RESULT"] == "I2P_ERROR"
    assert (await sam.cmd("AUTH ENABLE")).options["RESULT"] == "OK"
    assert (await sam.cmd('AUTH REMOVE USER="u 1"')).options["RESULT"] == "I2P_ERROR"   # the last user
    assert (await sam.cmd("AUTH REMOVE USER=ghost")).options["RESULT"] == "I2P_ERROR"
    assert (await sam.cmd("AUTH FROB")).options["RESULT"] == "I2P_ERROR"
    refused = await Sam.open(bridge, version=None)
    assert (await refused.cmd("HELLO VERSION")).options["RESULT"] == "I2P_ERROR"
    await Sam.open(bridge, hello='HELLO VERSION USER="u 1" PASSWORD=p')
    assert (await sam.cmd("AUTH DISABLE")).options["RESULT"] == "OK"
    assert (await sam.cmd('AUTH REMOVE USER="u 1"')).options["RESULT"] == "OK"
    assert bridge.auth.users == [] and changes == [False, True, False, False]


# ---------------------------------------------------------------- utilities and bad input

async def test_ping_help_quit(bridge):
    sam = await Sam.open(bridge)
    assert (await sam.cmd("PING 1 2  3")).text == "1 2  3"
    pong = await sam.cmd("PING")
    assert pong.verb == "PONG" and pong.text == ""
    assert (await sam.cmd("PONG whatever\nPING after")).text == "after"     # an unsolicited PONG is ignored
    help_reply = await sam.cmd("HELP")
    assert help_reply.verb == "HELP" and "STREAM CONNECT" in help_reply.options["MESSAGE"]
    for word in ("QUIT", "stop", "EXIT"):
        other = await Sam.open(bridge)
        other.send(word)
        assert await other.closed()


async def test_unknown_and_malformed_commands_keep_the_connection(bridge):
    sam = await Sam.open(bridge)
    for line, verb in [("FROB NICATE", "SESSION"), ("SESSION FROB", "SESSION"), ("NAMING FOO", "NAMING"),
                       ('STREAM CONNECT ID="x', "STREAM"), ("DEST GENERATE =1", "DEST"), ("\xff\xfe", "SESSION")]:
        reply = await sam.cmd(line.encode("latin-1") + b"\n")
        assert (reply.verb, reply.options["RESULT"]) == (verb, "I2P_ERROR"), line
        assert reply.options["MESSAGE"]
    sam.send("")
    sam.send("  \r")
    assert (await sam.cmd("PING ok\r")).text == "ok"          # telnet line ends work


async def test_overlong_line_is_refused_and_others_are_unaffected():
    async with running_bridge(max_line=1024) as bridge:
        sam = await Sam.open(bridge)
        sam.send(b"NAMING LOOKUP NAME=" + b"a" * 5000)
        reply = await sam.reply()
        assert (reply.verb, reply.options["RESULT"]) == ("SESSION", "I2P_ERROR")
        assert await sam.closed()
        hello = await Sam.open(bridge, version=None)
        hello.send(b"H" * 2000)
        assert (await hello.reply()).options["RESULT"] == "I2P_ERROR"
        assert await hello.closed()
        other = await Sam.open(bridge)
        assert (await other.cmd("PING fine")).text == "fine"


async def test_client_vanishing_mid_command(bridge):
    for partial in (b"HELLO VER", b"HELLO VERSION\nSESSION CREATE STYLE=STR", b"HELLO VERSION\nDATAGRAM SEND SIZE=10\nab"):
        sam = await Sam.open(bridge, version=None)
        sam.send(partial)
        await sam.close()
    await asyncio.sleep(0.05)
    other = await Sam.open(bridge)
    assert (await other.cmd("PING")).verb == "PONG"


async def test_connection_limit():
    async with running_bridge(max_connections=2) as bridge:
        first = await Sam.open(bridge)
        second = await Sam.open(bridge)  # noqa: F841 - holds the second slot
        third = await Sam.open(bridge, version=None)
        assert (await third.reply()).options["RESULT"] == "I2P_ERROR"
        await first.close()
        await asyncio.sleep(0.05)
        await Sam.open(bridge)


# ---------------------------------------------------------------- DEST GENERATE

@pytest.mark.parametrize("sig_type, expect", [
    ("0", 0), ("1", 1), ("ECDSA_SHA384_P384", 2), ("3", 3), ("7", 7), ("EdDSA_SHA512_Ed25519ph", 8), ("11", 11),
    (None, 0),
])
async def test_dest_generate(bridge, sig_type, expect):
    sam = await Sam.open(bridge)
    reply = await sam.cmd("DEST GENERATE" + (f" SIGNATURE_TYPE={sig_type}" if sig_type else ""))
    assert (reply.verb, reply.action) == ("DEST", "REPLY")
    keys = PrivateKeys.parse(b64decode(reply.options["PRIV"]))
    assert keys.destination.b64 == reply.options["PUB"]
    assert keys.destination.sig_type == expect
    assert len(reply.options["PUB"]) >= 516 and len(reply.options["PRIV"]) >= 884
    assert keys.destination.verify(b"data", keys.sign(b"data"))


async def test_dest_generate_crypto_type_and_errors(bridge):
    sam = await Sam.open(bridge)
    reply = await sam.cmd("DEST GENERATE SIGNATURE_TYPE=7 CRYPTO_TYPE=4")
    assert PrivateKeys.parse(b64decode(reply.options["PRIV"])).destination.crypto_type == 4
    for bad in ("SIGNATURE_TYPE=4", "SIGNATURE_TYPE=99", "SIGNATURE_TYPE=Ed448", "CRYPTO_TYPE=9", "CRYPTO_TYPE=x"):
        reply = await sam.cmd("DEST GENERATE " + bad)
        assert (reply.verb, reply.options["RESULT"]) == ("DEST", "I2P_ERROR"), bad


# ---------------------------------------------------------------- SESSION CREATE

@pytest.mark.parametrize("style", ["STREAM", "DATAGRAM", "RAW", "DATAGRAM2", "DATAGRAM3", "PRIMARY", "MASTER",
                                   "stream"])
async def test_session_create_transient(bridge, backend, style):
    sam = await Sam.open(bridge)
    reply = await sam.cmd(f"SESSION CREATE STYLE={style} ID=s DESTINATION=TRANSIENT SIGNATURE_TYPE=7 "
                          "inbound.length=0 i2cp.leaseSetEncType=4,0 outbound.quantity=2")
    assert (reply.verb, reply.action, reply.options["RESULT"]) == ("SESSION", "STATUS", "OK")
    keys = PrivateKeys.parse(b64decode(reply.options["DESTINATION"]))
    assert keys.destination.sig_type == 7
    assert keys.destination.hash in backend.sessions
    assert backend.created_options[-1] == {"inbound.length": "0", "i2cp.leaseSetEncType": "4,0",
                                           "outbound.quantity": "2"}
    me = await sam.cmd("NAMING LOOKUP NAME=ME")
    assert me.options["VALUE"] == keys.destination.b64


async def test_session_create_with_given_keys_and_default_sig_type(bridge):
    sam = await Sam.open(bridge)
    priv = (await sam.cmd("DEST GENERATE SIGNATURE_TYPE=ECDSA_SHA256_P256")).options["PRIV"]
    reply = await sam.cmd(f"SESSION CREATE STYLE=STREAM ID=given DESTINATION={priv} SIGNATURE_TYPE=7")
    assert reply.options == {"RESULT": "OK", "DESTINATION": priv}   # SIGNATURE_TYPE is for TRANSIENT only
    other = await Sam.open(bridge)
    reply = await other.cmd("SESSION CREATE STYLE=STREAM ID=dsa DESTINATION=TRANSIENT")
    assert PrivateKeys.parse(b64decode(reply.options["DESTINATION"])).destination.sig_type == 0


async def test_session_create_errors(bridge):
    owner = await Sam.open(bridge)
    priv = (await owner.cmd("DEST GENERATE SIGNATURE_TYPE=7")).options["PRIV"]
    assert (await owner.cmd(f"SESSION CREATE STYLE=STREAM ID=taken DESTINATION={priv}")).options["RESULT"] == "OK"
    cases = [
        ("SESSION CREATE STYLE=STREAM ID=taken DESTINATION=TRANSIENT", "DUPLICATED_ID"),
        (f"SESSION CREATE STYLE=STREAM ID=other DESTINATION={priv}", "DUPLICATED_DEST"),
        ("SESSION CREATE STYLE=STREAM ID=k DESTINATION=garbage", "INVALID_KEY"),
        (f"SESSION CREATE STYLE=STREAM ID=k DESTINATION={priv[:-8]}", "INVALID_KEY"),
        ("SESSION CREATE ID=k DESTINATION=TRANSIENT", "I2P_ERROR"),
        ("SESSION CREATE STYLE=BOGUS ID=k DESTINATION=TRANSIENT", "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM DESTINATION=TRANSIENT", "I2P_ERROR"),
        ('SESSION CREATE STYLE=STREAM ID="a b" DESTINATION=TRANSIENT', "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM ID=k", "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM ID=k DESTINATION=TRANSIENT SIGNATURE_TYPE=4", "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM ID=k DESTINATION=TRANSIENT SIGNATURE_TYPE=nope", "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM ID=k DESTINATION=TRANSIENT PORT=1234", "I2P_ERROR"),
        ("SESSION CREATE STYLE=DATAGRAM ID=k DESTINATION=TRANSIENT PORT=0", "I2P_ERROR"),
        ("SESSION CREATE STYLE=DATAGRAM ID=k DESTINATION=TRANSIENT HOST=127.0.0.1", "I2P_ERROR"),
        ("SESSION CREATE STYLE=DATAGRAM ID=k DESTINATION=TRANSIENT PROTOCOL=18", "I2P_ERROR"),
        ("SESSION CREATE STYLE=RAW ID=k DESTINATION=TRANSIENT PROTOCOL=17", "I2P_ERROR"),
        ("SESSION CREATE STYLE=RAW ID=k DESTINATION=TRANSIENT PROTOCOL=6", "I2P_ERROR"),
        ("SESSION CREATE STYLE=RAW ID=k DESTINATION=TRANSIENT PROTOCOL=256", "I2P_ERROR"),
        ("SESSION CREATE STYLE=RAW ID=k DESTINATION=TRANSIENT HEADER=yes", "I2P_ERROR"),
        ("SESSION CREATE STYLE=STREAM ID=k DESTINATION=TRANSIENT FROM_PORT=65536", "I2P_ERROR"),
        ("SESSION CREATE STYLE=PRIMARY ID=k DESTINATION=TRANSIENT FROM_PORT=1", "I2P_ERROR"),
        ("SESSION CREATE STYLE=PRIMARY ID=k DESTINATION=TRANSIENT PORT=1", "I2P_ERROR"),
        ("SESSION ADD STYLE=STREAM ID=k", "I2P_ERROR"),
        ("SESSION REMOVE ID=k", "I2P_ERROR"),
    ]
    sam = await Sam.open(bridge)
    for line, result in cases:
        reply = await sam.cmd(line)
        assert (reply.verb, reply.action, reply.options["RESULT"]) == ("SESSION", "STATUS", result), line
        assert reply.options.get("MESSAGE"), line
    assert (await sam.cmd("SESSION CREATE STYLE=STREAM ID=k DESTINATION=TRANSIENT")).options["RESULT"] == "OK"
    again = await sam.cmd("SESSION CREATE STYLE=STREAM ID=k2 DESTINATION=TRANSIENT")
    assert again.options["RESULT"] == "I2P_ERROR"     # one session per control socket


async def test_offline_signed_keys(backend):
    keys = PrivateKeys.generate(7)
    offline = b64encode(keys.with_offline_key(expires=int(time.time()) + 3600, rng=backend.rng).to_bytes())
    expired = b64encode(keys.with_offline_key(expires=int(time.time()) - 10, rng=backend.rng).to_bytes())
    async with running_bridge(backend) as bridge:
        sam = await Sam.open(bridge)
        reply = await sam.cmd(f"SESSION CREATE STYLE=DATAGRAM ID=o DESTINATION={offline}")
        assert reply.options["RESULT"] == "I2P_ERROR"
        reply = await sam.cmd(f"SESSION CREATE STYLE=STREAM ID=o DESTINATION={expired}")
        assert reply.options["RESULT"] == "INVALID_KEY"
        reply = await sam.cmd(f"SESSION CREATE STYLE=STREAM ID=o DESTINATION={offline}")
        assert reply.options == {"RESULT": "OK", "DESTINATION": offline}


async def test_session_ends_with_its_control_socket(bridge, backend):
    sam, dest = await session(bridge, "s")
    await sam.close()
    for _ in range(50):
        if not backend.sessions:
            break
        await asyncio.sleep(0.01)
    assert not backend.sessions and len(bridge.registry) == 0
    again, dest2 = await session(bridge, "s")           # the ID is free again
    assert dest2 != dest


async def test_client_vanishing_while_the_session_is_built():
    backend = MemoryBackend(create_delay=0.3)
    async with running_bridge(backend) as bridge:
        sam = await Sam.open(bridge)
        sam.send("SESSION CREATE STYLE=STREAM ID=slow DESTINATION=TRANSIENT SIGNATURE_TYPE=7")
        await asyncio.sleep(0.05)
        await sam.close()
        await asyncio.sleep(0.5)
        assert not backend.sessions and len(bridge.registry) == 0
        other = await Sam.open(bridge)
        reply = await other.cmd("SESSION CREATE STYLE=STREAM ID=slow DESTINATION=TRANSIENT SIGNATURE_TYPE=7")
        assert reply.options["RESULT"] == "OK"


async def test_pipelined_commands_after_session_create():
    backend = MemoryBackend(create_delay=0.1)
    async with running_bridge(backend) as bridge:
        sam = await Sam.open(bridge)
        sam.send("SESSION CREATE STYLE=STREAM ID=p DESTINATION=TRANSIENT SIGNATURE_TYPE=7\nNAMING LOOKUP NAME=ME")
        created = await sam.reply()
        me = await sam.reply()
        keys = PrivateKeys.parse(b64decode(created.options["DESTINATION"]))
        assert me.options["VALUE"] == keys.destination.b64


async def test_session_create_timeout():
    backend = MemoryBackend(create_delay=5)
    async with running_bridge(backend, session_create_timeout=0.1) as bridge:
        sam = await Sam.open(bridge)
        reply = await sam.cmd("SESSION CREATE STYLE=STREAM ID=t DESTINATION=TRANSIENT")
        assert reply.options["RESULT"] == "I2P_ERROR"
        assert len(bridge.registry) == 0


async def test_session_limit():
    async with running_bridge(max_sessions=1) as bridge:
        first, _ = await session(bridge, "one")
        sam = await Sam.open(bridge)
        reply = await sam.cmd("SESSION CREATE STYLE=STREAM ID=two DESTINATION=TRANSIENT")
        assert reply.options["RESULT"] == "I2P_ERROR"


# ---------------------------------------------------------------- NAMING LOOKUP

async def test_naming_lookup():
    book: dict[str, Destination] = {}

    async def address_book(name):
        await asyncio.sleep(0)
        return book.get(name)
    async with running_bridge(address_book=address_book) as bridge:
        control, dest = await session(bridge, "named", extra='i2cp.leaseSetOption.0="_smtp._tcp=1 86400 0 0 25 x"')
        destination = Destination.from_b64(dest)
        book["example.i2p"] = destination
        sam = await Sam.open(bridge)
        for name in (destination.b32_address, destination.b32_address.upper(), dest, "example.i2p", "EXAMPLE.i2p"):
            reply = await sam.cmd(f"NAMING LOOKUP NAME={name}")
            assert reply.options == {"RESULT": "OK", "NAME": name, "VALUE": dest}, name
        reply = await sam.cmd("NAMING LOOKUP NAME=example.i2p OPTIONS=true")
        assert reply.options["OPTION:_smtp._tcp"] == "1 86400 0 0 25 x"
        unknown = PrivateKeys.generate(7).destination
        cases = [("NAME=nothere.i2p", "KEY_NOT_FOUND"), (f"NAME={unknown.b32_address}", "KEY_NOT_FOUND"),
                 ("NAME=ME", "KEY_NOT_FOUND"), ("NAME=bad!name.i2p", "INVALID_KEY"), ("", "INVALID_KEY"),
                 ("NAME=abc.b32.i2p", "INVALID_KEY"), ("NAME=" + "a" * 60 + ".b32.i2p", "INVALID_KEY"),
                 ("NAME=" + "B" * 520, "INVALID_KEY"), (f"NAME={unknown.b64} OPTIONS=true", "LEASESET_NOT_FOUND"),
                 ("NAME=example.i2p OPTIONS=maybe", "I2P_ERROR")]
        for args, result in cases:
            reply = await sam.cmd(f"NAMING LOOKUP {args}")
            assert (reply.verb, reply.action, reply.options["RESULT"]) == ("NAMING", "REPLY", result), args
        me = await control.cmd("NAMING LOOKUP NAME=ME OPTIONS=true")
        assert me.options["VALUE"] == dest and "OPTION:_smtp._tcp" in me.options


async def test_naming_without_address_book(bridge):
    sam = await Sam.open(bridge)
    assert (await sam.cmd("NAMING LOOKUP NAME=example.i2p")).options["RESULT"] == "KEY_NOT_FOUND"


# ---------------------------------------------------------------- fuzzing a live bridge

_WORDS = ["HELLO", "VERSION", "SESSION", "CREATE", "ADD", "REMOVE", "STREAM", "CONNECT", "ACCEPT", "FORWARD",
          "DATAGRAM", "RAW", "SEND", "NAMING", "LOOKUP", "DEST", "GENERATE", "AUTH", "PING", "QUIT", "HELP",
          "STYLE=STREAM", "STYLE=PRIMARY", "STYLE=RAW", "ID=fz", "ID=new", "DESTINATION=TRANSIENT", "SIZE=3",
          "SIZE=-1", "NAME=ME", "NAME=x.b32.i2p", "PORT=1", "PORT=99999", "SILENT=true", 'X="a b', "K=\\\"",
          "FROM_PORT=1", "PROTOCOL=6", "SIGNATURE_TYPE=7", "=", "\"", "\\", "\u00e9", "\t", "USER=u"]


_COMMANDS = ["SESSION CREATE", "SESSION ADD", "SESSION REMOVE", "STREAM CONNECT", "STREAM ACCEPT", "STREAM FORWARD",
             "DATAGRAM SEND", "RAW SEND", "NAMING LOOKUP", "DEST GENERATE", "AUTH ADD", "AUTH REMOVE", "PING"]


async def test_random_command_lines_never_break_the_bridge(caplog):
    import random
    rnd = random.Random(1234)
    async with running_bridge(idle_timeout=0.5, accept_hold=0.2) as bridge:
        owner, dest = await session(bridge, "fz")
        for _ in range(150):
            sam = await Sam.open(bridge)
            lines = [(rnd.choice(_COMMANDS) + " " if rnd.random() < 0.8 else "")
                     + " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(1, 6))) for _ in range(5)]
            if rnd.random() < 0.3:
                lines.insert(rnd.randint(0, 5), "".join(chr(rnd.randint(1, 0x7ff)) for _ in range(30)))
            sam.send(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
            sam.writer.write_eof()
            await asyncio.wait_for(sam.reader.read(), 5)
            await sam.close()
        assert (await owner.cmd("PING still")).text == "still"
        assert not [r for r in caplog.records if r.name.startswith("core.sam") and r.levelname == "ERROR"]
