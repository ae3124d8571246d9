"""Destinations on different 'routers' (fake tunnels and netDb): garlic, LeaseSet2 publishing, lookup,
bundling and acks, hybrid keys, streaming, republishing."""
import asyncio
import os

import pytest

from core.client import ClientAPI
from core.clock import SystemClock
from core.crypto import elgamal
from core.data.keytypes import CRYPTO_ELGAMAL, CRYPTO_X25519
from core.data.leaseset import Lease, LeaseSet
from core.datagram import PROTO_DATAGRAM, PROTO_RAW
from core.garlic.session import MessageKind
from core.i2np import DeliveryType, MessageType

from .fakes import FakeWorld
from .streams import echo_round_trip

HYBRID = 6


async def _two(world, options_a=None, options_b=None):
    api_a = ClientAPI(world.network("A"))
    api_b = ClientAPI(world.network("B"))
    a = await api_a.open_session(options=options_a, name="a")
    b = await api_b.open_session(options=options_b, name="b")
    await asyncio.wait_for(a.wait_published(), 5)
    await asyncio.wait_for(b.wait_published(), 5)
    return api_a, api_b, a, b


@pytest.fixture
def world():
    return FakeWorld(SystemClock())


async def test_published_leaseset(world):
    api_a, api_b, a, b = await _two(world)
    ls = world.netdb[a.hash]
    now = SystemClock().time()
    assert ls.verify(now) and ls.hash == a.hash
    # Java's default "4,0": ElGamal too, for destinations that speak nothing else
    assert ls.encryption_keys == ((CRYPTO_X25519, a.skm.public_key(CRYPTO_X25519)),
                                  (CRYPTO_ELGAMAL, elgamal.public_from_private(a.elgamal.private_key)))
    assert len(ls.leases) == 2 and all(lease.end_date > now + 500 for lease in ls.leases)
    assert ls.header.expires <= ls.header.published + 660
    assert a.leaseset_published_at is not None
    await api_a.close()
    await api_b.close()


async def test_repliable_datagrams_find_and_bundle_leasesets(world):
    api_a, api_b, a, b = await _two(world)
    kinds = []
    world.tap = lambda m: (kinds.append(m.type), m)[1]
    a.send_datagram(b.hash, b"hello b", protocol=PROTO_DATAGRAM, src_port=5, dst_port=6)
    got = await asyncio.wait_for(b.receive_datagram(), 5)
    assert (got.payload, got.sender, got.src_port, got.dst_port) == (b"hello b", a.destination, 5, 6)
    assert world.lookups[b.hash] == 1                       # a found b through the "floodfills"
    assert b.remote_leaseset(a.hash) is not None            # a's LeaseSet came bundled in the NS
    b.send_datagram(got.sender, b"hello a", protocol=PROTO_DATAGRAM)
    back = await asyncio.wait_for(a.receive_datagram(), 5)
    assert back.payload == b"hello a" and back.sender_hash == b.hash
    assert world.lookups[a.hash] == 0                       # no lookup needed to reply
    assert a.stats["sent_new_session"] == 1 and b.stats["sent_new_session_reply"] == 1
    for i in range(3):
        a.send_datagram(b.hash, b"more %d" % i, protocol=PROTO_RAW)
    for i in range(3):
        got = await asyncio.wait_for(b.receive_datagram(), 5)
        assert got.payload == b"more %d" % i and got.sender_hash == a.hash   # vouched by the garlic session
    assert a.stats["sent_existing_session"] == 3
    assert set(kinds) == {MessageType.GARLIC}
    await api_a.close()
    await api_b.close()


async def test_leaseset_bundled_until_confirmed_then_again_after_a_change(world):
    api_a, api_b, a, b = await _two(world)
    a.send_datagram(b.hash, b"1", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    b.send_datagram(a.hash, b"r", protocol=PROTO_RAW)        # NSR: a's LeaseSet is confirmed
    await asyncio.wait_for(a.receive_datagram(), 5)
    peer = a._peers[b.hash]
    assert peer.leaseset_sent == a.leaseset.header.published
    bundled = []
    original = b.handle_garlic

    def spy(received):
        bundled.append(any(c.message.type == MessageType.DATABASE_STORE for c in received.cloves))
        return original(received)
    b.handle_garlic = spy
    a.send_datagram(b.hash, b"2", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    assert bundled == [False]
    # new tunnels: a re-signs, republishes and bundles the new LeaseSet with an ack request
    old = a.leaseset
    a.network.add_lease(a._handle)
    a.tick()
    assert a.leaseset.header.published > old.header.published and len(a.leaseset.leases) == 3
    await asyncio.sleep(0.05)
    assert world.netdb[a.hash] == a.leaseset
    a.send_datagram(b.hash, b"3", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    assert bundled == [False, True]
    assert b.remote_leaseset(a.hash) == a.leaseset
    assert peer.leaseset_ack is not None
    # b owes an ack: its tick sends an empty ES carrying it, which confirms the LeaseSet
    await asyncio.sleep(0.6)
    b.tick()
    await asyncio.sleep(0.05)
    assert peer.leaseset_ack is None and peer.leaseset_sent == a.leaseset.header.published
    a.send_datagram(b.hash, b"4", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    assert bundled == [False, True, False]
    await api_a.close()
    await api_b.close()


async def test_ns_without_reply_traffic_gets_an_empty_nsr(world):
    api_a, api_b, a, b = await _two(world)
    a.send_datagram(b.hash, b"one way", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    session = b.skm.session(a.skm.public_key(CRYPTO_X25519))
    assert session is not None and session.wants_reply
    await asyncio.sleep(0.6)
    b.tick()
    await asyncio.sleep(0.05)
    assert b.stats["empty_replies"] == 1
    assert a.skm.session(b.skm.public_key(CRYPTO_X25519)).established
    await api_a.close()
    await api_b.close()


@pytest.mark.parametrize("types_a, types_b, expected", [
    ("6,4", "6,4", HYBRID),
    ("6,4", "4", CRYPTO_X25519),
    ("4", "6,4", CRYPTO_X25519),
    ("6", "6", HYBRID),
])
async def test_hybrid_and_x25519_choose_a_common_type(world, types_a, types_b, expected):
    api_a, api_b, a, b = await _two(world, {"i2cp.leaseSetEncType": types_a}, {"i2cp.leaseSetEncType": types_b})
    assert [t for t, _ in world.netdb[a.hash].encryption_keys] == [int(t) for t in types_a.split(",")]
    a.send_datagram(b.hash, b"pq", protocol=PROTO_DATAGRAM)
    got = await asyncio.wait_for(b.receive_datagram(), 5)
    assert got.payload == b"pq"
    key = dict(world.netdb[b.hash].encryption_keys)[expected]
    assert a.skm.session(key).crypto_type == expected
    b.send_datagram(a.hash, b"back", protocol=PROTO_DATAGRAM)
    assert (await asyncio.wait_for(a.receive_datagram(), 5)).payload == b"back"
    await api_a.close()
    await api_b.close()


async def test_no_common_crypto_type_is_counted(world):
    api_a, api_b, a, b = await _two(world, {"i2cp.leaseSetEncType": "6"}, {"i2cp.leaseSetEncType": "4"})
    a.send_datagram(b.hash, b"x", protocol=PROTO_RAW)
    await asyncio.sleep(0.05)
    assert a.stats["dropped_no_common_crypto"] == 1
    await api_a.close()
    await api_b.close()


async def test_elgamal_only_destination_both_ways(world):
    """b offers only ElGamal (as i2pd 2.45.1's default SAM destinations): a sends ElGamal/AES, New Session until
    the DeliveryStatus bundled with its tags comes back, tagged after; b answers to a's ElGamal key likewise."""
    api_a, api_b, a, b = await _two(world, None, {"i2cp.leaseSetEncType": "0"})
    assert [t for t, _ in world.netdb[b.hash].encryption_keys] == [CRYPTO_ELGAMAL]
    assert a.unreachable_reason(world.netdb[b.hash]) is None
    a.send_datagram(b.hash, b"first", protocol=PROTO_DATAGRAM)
    got = await asyncio.wait_for(b.receive_datagram(), 5)
    assert (got.payload, got.sender) == (b"first", a.destination)
    assert b.remote_leaseset(a.hash) is not None            # a's LeaseSet came bundled
    await asyncio.sleep(0.05)                               # b sent a's DeliveryStatus down a's tunnel
    assert b.stats["clove_forwarded"] == 1 and a.stats["delivery_status"] == 1
    key_b = world.netdb[b.hash].encryption_keys[0][1]
    assert a.elgamal.usable_tags(key_b) == 40
    assert a._peers[b.hash].leaseset_sent == a.leaseset.header.published    # the DeliveryStatus confirmed it
    for n in range(3):
        a.send_datagram(b.hash, b"more %d" % n, protocol=PROTO_DATAGRAM)
        assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"more %d" % n
    assert a.stats["sent_elgamal_new"] == 1 and a.stats["sent_elgamal_existing"] == 3
    assert b.elgamal.stats["received_new"] == 1 and b.elgamal.stats["received_existing"] == 3
    # b replies: a's LeaseSet offers ECIES, which b speaks too, so b answers with the ratchet
    b.send_datagram(a.hash, b"back", protocol=PROTO_DATAGRAM)
    assert (await asyncio.wait_for(a.receive_datagram(), 5)).payload == b"back"
    await api_a.close()
    await api_b.close()


async def test_original_leaseset_is_sent_elgamal(world):
    """A destination known by an original LeaseSet (store type 1: one ElGamal key, as Java publishes for
    ElGamal-only destinations): reachable, by ElGamal/AES."""
    api_a, api_b, a, b = await _two(world, None, {"i2cp.leaseSetEncType": "0"})
    ls2 = world.netdb[b.hash]
    world.netdb[b.hash] = LeaseSet.create(b.keys, dict(ls2.encryption_keys)[CRYPTO_ELGAMAL],
                                          [Lease(lease.gateway, lease.tunnel_id, lease.end_date * 1000)
                                           for lease in ls2.leases], rng=os.urandom)
    assert a.unreachable_reason(world.netdb[b.hash]) is None
    a.send_datagram(b.hash, b"to type 1", protocol=PROTO_DATAGRAM)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"to type 1"
    assert isinstance(a.remote_leaseset(b.hash), LeaseSet) and a.stats["sent_elgamal_new"] == 1
    await api_a.close()
    await api_b.close()


async def test_elgamal_both_ends_and_streaming(world):
    """Two ElGamal-only destinations (what an i2pd 2.45.1 SAM destination sees of us, both ways): a stream."""
    api_a, api_b, a, b = await _two(world, {"i2cp.leaseSetEncType": "0"}, {"i2cp.leaseSetEncType": "0"})
    await echo_round_trip(a, b, bytes(range(256)) * 400)
    assert a.skm.session_count == 0 and b.skm.session_count == 0        # nothing went by the ratchet
    assert a.stats["sent_elgamal_existing"] > a.stats["sent_elgamal_new"] >= 1
    assert b.stats["sent_elgamal_existing"] > b.stats["sent_elgamal_new"] >= 1
    await api_a.close()
    await api_b.close()


async def test_streaming_across_routers(world):
    api_a, api_b, a, b = await _two(world)
    await echo_round_trip(a, b, bytes(range(256)) * 800)
    assert a.stats["sent_existing_session"] > 10
    await api_a.close()
    await api_b.close()


async def test_unknown_destination_lookup_fails_and_is_held(world):
    api_a, api_b, a, b = await _two(world)
    nowhere = b"\x42" * 32
    a.send(nowhere, b"x")
    a.send(nowhere, b"y")
    await asyncio.sleep(0.05)
    assert world.lookups[nowhere] == 1 and a.stats["lookups_failed"] == 1
    assert a.stats["dropped_not_found"] == 2
    a.send(nowhere, b"z")          # within the hold time: no new lookup
    assert world.lookups[nowhere] == 1 and a.stats["dropped_not_found"] == 3
    await api_a.close()
    await api_b.close()


async def test_expired_leases_are_not_used(world):
    api_a, api_b, a, b = await _two(world)
    ls = world.netdb[b.hash]
    world.clock = SystemClock()
    a.send_datagram(b.hash, b"first", protocol=PROTO_RAW)
    await asyncio.wait_for(b.receive_datagram(), 5)
    # pretend every lease of b ends within the margin
    from dataclasses import replace
    peer = a._peers[b.hash]
    short = [replace(lease, end_date=int(SystemClock().time()) + 5) for lease in ls.leases]
    assert a._pick_lease(peer, replace(ls, leases=tuple(short)), SystemClock().monotonic()) is None
    await api_a.close()
    await api_b.close()


async def test_a_lease_that_stays_silent_is_given_up_for_another(world, monkeypatch):
    """The peer's tunnel behind our lease broke (its gateway went away): after LEASE_SILENCE_S with nothing
    back from the peer, the next message goes to another of its leases."""
    import core.client.session as session_module
    monkeypatch.setattr(session_module, "LEASE_SILENCE_S", 0.2)
    api_a, api_b, a, b = await _two(world)
    a.send_datagram(b.hash, b"first", protocol=PROTO_RAW)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"first"
    broken = a._peers[b.hash].lease
    del world.tunnels[(broken.gateway, broken.tunnel_id)]      # b's tunnel behind that lease is gone
    a.send_datagram(b.hash, b"lost", protocol=PROTO_RAW)        # within the silence: still the same lease
    await asyncio.sleep(0.3)
    a.send_datagram(b.hash, b"second", protocol=PROTO_RAW)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"second"
    assert a._peers[b.hash].lease != broken and a.stats["lease_switched"] == 1
    # an answer from b keeps the new lease however long a's next message waits
    b.send_datagram(a.hash, b"answer", protocol=PROTO_RAW)
    await asyncio.wait_for(a.receive_datagram(), 5)
    assert a._peers[b.hash].unanswered_since is None
    await api_a.close()
    await api_b.close()


async def test_a_streaming_timeout_changes_lease_and_all_failed_leases_fetch_a_newer_leaseset(world):
    """The peer still talks to us (so it is not silent) but what we send its lease is lost: a streaming timeout
    (lease_failed) moves us to its other lease; when that one fails too, its LeaseSet is asked for afresh and
    the newer one, with the tunnels it built since, carries the next message."""
    api_a, api_b, a, b = await _two(world)
    a.send_datagram(b.hash, b"first", protocol=PROTO_RAW)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"first"
    first = a._peers[b.hash].lease
    del world.tunnels[(first.gateway, first.tunnel_id)]
    b.send_datagram(a.hash, b"b still talks", protocol=PROTO_RAW)
    await asyncio.wait_for(a.receive_datagram(), 5)
    a.lease_failed(b.hash)
    a.send_datagram(b.hash, b"second", protocol=PROTO_RAW)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"second"
    second = a._peers[b.hash].lease
    assert second != first and a.stats["lease_switched"] == 1
    # b replaces both tunnels and republishes; a holds the old LeaseSet (nothing from b since)
    del world.tunnels[(second.gateway, second.tunnel_id)]
    handle = b._handle
    handle.leases.clear()
    for _ in range(2):
        b.network.add_lease(handle)
    old = world.netdb[b.hash]
    for _ in range(40):
        if world.netdb[b.hash] is not old:
            break
        await asyncio.sleep(0.1)
    assert world.netdb[b.hash] is not old and a.remote_leaseset(b.hash) == old
    lookups = world.lookups[b.hash]
    a.lease_failed(b.hash)
    a.send_datagram(b.hash, b"lost on the old lease", protocol=PROTO_RAW)
    for _ in range(40):
        if a.remote_leaseset(b.hash) != old:
            break
        await asyncio.sleep(0.05)
    assert world.lookups[b.hash] == lookups + 1 and a.stats["leasesets_refreshed"] == 1
    a.send_datagram(b.hash, b"third", protocol=PROTO_RAW)
    assert (await asyncio.wait_for(b.receive_datagram(), 5)).payload == b"third"
    await api_a.close()
    await api_b.close()


async def test_unconfirmed_publication_is_retried(world, monkeypatch):
    import core.client.session as session_module
    monkeypatch.setattr(session_module, "PUBLISH_RETRY_S", 0.6)
    network = world.network("A")
    network.publish_confirmations = 0
    api = ClientAPI(network)
    a = await api.open_session(name="a")
    await asyncio.sleep(0.05)
    assert a.stats["leaseset_unconfirmed"] == 1 and a.leaseset_published_at is None
    await asyncio.sleep(0.3)
    assert len(world.publications) == 1           # no retry at every tick
    network.publish_confirmations = 1
    await asyncio.wait_for(a.wait_published(), 3)
    assert len(world.publications) >= 2 and world.netdb[a.hash] == a.leaseset
    await api.close()


async def test_close_releases_tunnels(world):
    api = ClientAPI(world.network("A"))
    a = await api.open_session(name="a")
    handle = a._handle
    await a.close()
    assert handle.closed and api.sessions == []
    await a.close()   # idempotent


async def test_a_burst_before_the_nsr_waits_instead_of_flooding_new_sessions(world):
    api_a, api_b, a, b = await _two(world)
    assert a._accept_leaseset(b.hash, world.netdb[b.hash]) is not None   # known: no lookup queue
    for i in range(60):
        a.send_datagram(b.hash, b"%d" % i, protocol=PROTO_RAW)
    await asyncio.sleep(0.05)
    assert a.stats["sent_new_session"] == 4 and a.stats["held_for_nsr"] == 56
    got = set()
    async with asyncio.timeout(5):
        while len(got) < 60:
            got.add((await b.receive_datagram()).payload)
    assert b.skm.stats["ns_rate_limited"] == 0
    assert a.stats["sent_existing_session"] == 56 and b.stats["empty_replies"] == 1
    # the waiting room is bounded like the lookup queue
    c = await api_b.open_session(name="c")
    await asyncio.wait_for(c.wait_published(), 5)
    assert a._accept_leaseset(c.hash, world.netdb[c.hash]) is not None
    for i in range(100):
        a.send_datagram(c.hash, b"%d" % i, protocol=PROTO_RAW)
    assert len(a._peers[c.hash].held) == a.options.max_pending_per_destination
    assert a.stats["dropped_held_full"] == 100 - 4 - a.options.max_pending_per_destination


async def test_held_messages_go_out_as_new_sessions_when_no_nsr_comes(world):
    api_a, api_b, a, b = await _two(world)
    b.set_protocol_handler(PROTO_RAW, lambda m: None)
    b.tick = lambda: None            # b never answers at the ratchet layer
    b._task.cancel()
    for i in range(6):
        a.send_datagram(b.hash, b"%d" % i, protocol=PROTO_RAW)
    await asyncio.sleep(0.05)
    assert a.stats["sent_new_session"] == 4 and len(a._peers[b.hash].held) == 2
    await asyncio.sleep(2.1)
    a.tick()
    assert a.stats["sent_new_session"] == 6 and not a._peers[b.hash].held
