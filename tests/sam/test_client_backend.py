"""The bridge on core.client (ClientAPI with local delivery): the backend a router uses."""
from __future__ import annotations

import asyncio

import pytest

from core.client import ClientAPI
from core.data.encoding import b64decode
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.sam.bridge import SamBridge, SamConfig
from core.sam.client_backend import ClientBackend

from .helpers import TIMEOUT, Sam, close_clients, session


@pytest.fixture
async def api():
    api = ClientAPI()
    yield api
    await api.close()


@pytest.fixture
async def bridge(api):
    bridge = SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0))
    async with bridge:
        try:
            yield bridge
        finally:
            await close_clients()


async def test_streams_over_the_client_api(bridge, api):
    control_a, dest_a = await session(bridge, "a")
    control_b, dest_b = await session(bridge, "b")
    assert len(api.sessions) == 2
    acceptor = await Sam.open(bridge)
    await acceptor.cmd("STREAM ACCEPT ID=b")
    connector = await Sam.open(bridge)
    b32 = Destination.from_b64(dest_b).b32_address
    assert (await connector.cmd(f"STREAM CONNECT ID=a DESTINATION={b32} TO_PORT=9")).options["RESULT"] == "OK"
    assert (await acceptor.line()).decode() == f"{dest_a} FROM_PORT=0 TO_PORT=9\n"
    payload = bytes(range(256)) * 400
    connector.send(payload)
    assert await acceptor.read(len(payload)) == payload
    acceptor.send(b"answer")
    assert await connector.read(6) == b"answer"
    await control_a.close()
    assert await connector.closed()
    for _ in range(50):
        if len(api.sessions) == 1:
            break
        await asyncio.sleep(0.01)
    assert [s.destination.b64 for s in api.sessions] == [dest_b]


@pytest.mark.parametrize("style", ["DATAGRAM", "DATAGRAM2", "DATAGRAM3", "RAW"])
async def test_datagrams_over_the_client_api(bridge, style):
    a, dest_a = await session(bridge, "a", style, "FROM_PORT=3")
    b, dest_b = await session(bridge, "b", style)
    verb = "RAW" if style == "RAW" else "DATAGRAM"
    a.send(f"{verb} SEND DESTINATION={dest_b} SIZE=4 TO_PORT=4\ndata".encode())
    header = await b.reply()
    assert (header.verb, header.action) == (verb, "RECEIVED")
    assert (header.options["FROM_PORT"], header.options["TO_PORT"]) == ("3", "4")
    assert await b.read(4) == b"data"
    if style == "DATAGRAM3":
        assert b64decode(header.options["DESTINATION"]) == Destination.from_b64(dest_a).hash
    elif style != "RAW":
        assert header.options["DESTINATION"] == dest_a


async def test_lookups_over_the_client_api(bridge):
    control, dest = await session(bridge, "named", extra="i2cp.leaseSetOption.0=_irc._tcp=0")
    sam = await Sam.open(bridge)
    b32 = Destination.from_b64(dest).b32_address
    reply = await sam.cmd(f"NAMING LOOKUP NAME={b32} OPTIONS=true")
    assert reply.options["VALUE"] == dest and reply.options["OPTION:_irc._tcp"] == "0"
    unknown = PrivateKeys.generate(7).destination
    assert (await sam.cmd(f"NAMING LOOKUP NAME={unknown.b32_address}")).options["RESULT"] == "KEY_NOT_FOUND"
    sam2 = await Sam.open(bridge)
    reply = await sam2.cmd(f"STREAM CONNECT ID=named DESTINATION={unknown.b64}")
    assert reply.options["RESULT"] == "CANT_REACH_PEER"


async def test_duplicate_destination_is_refused(bridge):
    sam = await Sam.open(bridge)
    priv = (await sam.cmd("DEST GENERATE SIGNATURE_TYPE=7")).options["PRIV"]
    assert (await sam.cmd(f"SESSION CREATE STYLE=STREAM ID=x DESTINATION={priv}")).options["RESULT"] == "OK"
    other = await Sam.open(bridge)
    reply = await asyncio.wait_for(other.cmd(f"SESSION CREATE STYLE=STREAM ID=y DESTINATION={priv}"), TIMEOUT)
    assert reply.options["RESULT"] == "DUPLICATED_DEST"


async def test_a_connect_that_times_out_forgets_the_cached_leaseset(api, monkeypatch):
    """A destination that restarted publishes new leases; ours pointed at its dead tunnels. After a timeout
    the next connect looks it up again instead of waiting on the same dead leases."""
    backend = ClientBackend(api)
    ours = await backend.create_session(PrivateKeys.generate(), {})
    remote = PrivateKeys.generate().destination
    class DeadLeaseSet:                                    # a cached LeaseSet whose leases are dead tunnels
        encryption_keys = ()
    ours.session._remote[remote.hash] = DeadLeaseSet()
    monkeypatch.setattr(ours.session, "_remote_leaseset", lambda h: ours.session._remote.get(h))

    async def dead_tunnels(*args):
        raise TimeoutError("no answer")
    monkeypatch.setattr(ours, "_open_stream", dead_tunnels)
    with pytest.raises(TimeoutError):
        await ours.connect(remote, timeout=1)
    assert remote.hash not in ours.session._remote
    await ours.close()


async def test_connect_to_a_destination_with_no_key_we_speak_fails_at_once_and_says_why():
    """A LeaseSet with no key of a type we speak (here P256 only, which nobody deploys): CANT_REACH_PEER naming
    the types, not a TIMEOUT after the connect timeout. (ElGamal-only destinations are reached by ElGamal/AES.)"""
    import os
    import time

    from core.clock import SystemClock
    from core.data.leaseset import Lease2, LeaseSet2
    from tests.client.fakes import FakeWorld
    world = FakeWorld(SystemClock())
    api = ClientAPI(world.network("A"))
    remote = PrivateKeys.generate(0, 0)
    now = int(time.time())
    world.netdb[remote.destination.hash] = LeaseSet2.create(
        remote, published=now, expires_offset=600, encryption_keys=[(1, os.urandom(64))],
        leases=[Lease2(os.urandom(32), 1, now + 600)])
    bridge = SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0))
    try:
        async with bridge:
            control, _ = await session(bridge, "a")
            sam = await Sam.open(bridge)
            started = time.monotonic()
            reply = await sam.cmd(f"STREAM CONNECT ID=a DESTINATION={remote.destination.b64}")
            assert reply.options["RESULT"] == "CANT_REACH_PEER"
            assert "encryption types 1 (P256)" in reply.options["MESSAGE"], reply
            assert "4 (X25519)" in reply.options["MESSAGE"]
            assert time.monotonic() - started < TIMEOUT
    finally:
        await close_clients()
        await api.close()
