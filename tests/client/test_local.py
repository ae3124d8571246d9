"""Two destinations of one ClientAPI: datagrams of every format, plain messages and streaming, no tunnels."""
import asyncio

import pytest

from core.client import ClientAPI
from core.data.privatekeys import PrivateKeys
from core.datagram import PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW

from .streams import echo_round_trip


async def _pair(api=None):
    api = api or ClientAPI()
    return api, await api.open_session(name="a"), await api.open_session(name="b")


@pytest.mark.parametrize("protocol", [PROTO_DATAGRAM, PROTO_RAW, PROTO_DATAGRAM2, PROTO_DATAGRAM3])
async def test_datagrams_both_ways(protocol):
    api, a, b = await _pair()
    a.send_datagram(b.destination, b"ping", protocol=protocol, src_port=1000, dst_port=53)
    got = await asyncio.wait_for(b.receive_datagram(), 2)
    assert (got.payload, got.protocol, got.src_port, got.dst_port) == (b"ping", protocol, 1000, 53)
    assert got.sender_hash == a.hash            # vouched by local delivery, or signed
    if protocol in (PROTO_DATAGRAM, PROTO_DATAGRAM2):
        assert got.sender == a.destination
    b.send_datagram(got.sender_hash, b"pong", protocol=protocol, src_port=53, dst_port=1000)
    back = await asyncio.wait_for(a.receive_datagram(), 2)
    assert back.payload == b"pong" and back.sender_hash == b.hash
    assert a.stats["sent_local"] == 1 and b.stats["sent_local"] == 1
    await api.close()
    assert api.sessions == []


async def test_plain_messages_and_protocol_handlers():
    api, a, b = await _pair()
    seen = []
    b.set_protocol_handler(99, seen.append)
    a.send(b.hash, b"to the handler", protocol=99)
    a.send(b.hash, b"to the queue", protocol=42, dst_port=7)
    got = await asyncio.wait_for(b.receive(), 2)
    assert (got.payload, got.protocol, got.dst_port, got.sender) == (b"to the queue", 42, 7, a.destination)
    assert [m.payload for m in seen] == [b"to the handler"]
    await api.close()


async def test_datagram2_for_another_target_is_refused():
    api, a, b = await _pair()
    c = await api.open_session(name="c")
    from core.client.payload import ClientPayload
    from core.datagram import Datagram2
    misdirected = Datagram2.create(a.keys, b"meant for c", c.hash).to_bytes()
    b._dispatch(ClientPayload(misdirected, PROTO_DATAGRAM2), None, None)
    a.send_datagram(b.hash, b"meant for b", protocol=PROTO_DATAGRAM2)
    got = await asyncio.wait_for(b.receive_datagram(), 2)
    assert got.payload == b"meant for b"
    assert b.stats["datagram_bad_signature"] == 1
    await api.close()


async def test_forged_datagram1_is_dropped():
    api, a, b = await _pair()
    from core.client.payload import ClientPayload
    from core.datagram import Datagram1
    good = Datagram1.create(a.keys, b"original")
    forged = Datagram1(good.from_destination, good.signature, b"altered").to_bytes()
    b._dispatch(ClientPayload(forged, PROTO_DATAGRAM), None, None)
    b._dispatch(ClientPayload(b"\x00garbage", PROTO_DATAGRAM), None, None)
    assert b.stats["datagram_bad_signature"] == 1 and b.stats["datagram_malformed"] == 1
    assert b._datagrams.empty()
    await api.close()


async def test_receive_queue_is_bounded():
    api = ClientAPI()
    a = await api.open_session(name="a")
    b = await api.open_session(name="b", options={})
    b._messages = asyncio.Queue(3)
    for i in range(10):
        a.send(b.hash, b"%d" % i, protocol=1)
    await asyncio.sleep(0.05)
    assert b._messages.qsize() == 3 and b.stats["dropped_receive_queue_full"] == 7
    await api.close()


async def test_streaming_between_local_destinations():
    api, a, b = await _pair()
    await echo_round_trip(a, b, bytes(range(256)) * 400, connect_timeout=5, timeout=10)
    await api.close()


async def test_session_rules():
    api = ClientAPI()
    keys = PrivateKeys.generate()
    a = await api.open_session(keys, name="a")
    with pytest.raises(ValueError):
        await api.open_session(keys, name="other")
    with pytest.raises(ValueError):
        await api.open_session(name="a")
    with pytest.raises(ValueError, match="leaseSetEncType"):
        await api.open_session(options={"i2cp.leaseSetEncType": "1,2"}, name="unknown")
    assert api.session("a") is a and api.local_session(keys.destination.hash) is a
    await a.close()
    with pytest.raises(RuntimeError):
        a.send(b"\0" * 32, b"x")
    assert api.local_session(keys.destination.hash) is None
    # a session to a destination that is neither local nor reachable (no network) drops and counts
    b = await api.open_session(name="b")
    b.send(b"\1" * 32, b"nowhere")
    assert b.stats["dropped_no_network"] == 1
    await api.close()
