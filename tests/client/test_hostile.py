"""Hostile input at a session: junk garlic, floods of New Session messages, bad LeaseSets, stray cloves."""
import asyncio
import os
import time
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from core.client import ClientAPI
from core.client.payload import ClientPayload
from core.clock import SystemClock
from core.data.keytypes import CRYPTO_X25519
from core.data.leaseset import Lease2, LeaseSet2
from core.data.privatekeys import PrivateKeys
from core.datagram import PROTO_RAW
from core.garlic.elgamal_aes import ElGamalAesManager
from core.garlic.manager import SessionKeyManager
from core.i2np import (Data, DatabaseStore, DeliveryStatus, Garlic, GarlicClove, GarlicCloveBlock,
                       GarlicCloveDeliveryInstructions, GarlicCloveSet, I2NPMessage, MessageType)

from .fakes import FakeWorld

CLOCK = SystemClock()


def _message(payload) -> I2NPMessage:
    return I2NPMessage.build(payload, int.from_bytes(os.urandom(4), "big"), int(CLOCK.time() * 1000) + 60_000)


def _garlic(data: bytes) -> I2NPMessage:
    return _message(Garlic(data))


async def _target():
    world = FakeWorld(CLOCK)
    api = ClientAPI(world.network("B"))
    b = await api.open_session(name="b")
    await asyncio.wait_for(b.wait_published(), 5)
    return api, b


def _sender_keys():
    keys = PrivateKeys.generate()
    return keys, SessionKeyManager({CRYPTO_X25519: keys.private_key}, clock=CLOCK)


def _leaseset(keys: PrivateKeys, skm: SessionKeyManager, **overrides) -> LeaseSet2:
    now = int(CLOCK.time())
    fields = dict(published=now, expires_offset=600, encryption_keys=[(CRYPTO_X25519, skm.public_key())],
                  leases=[Lease2(os.urandom(32), 7, now + 600)])
    fields.update(overrides)
    return LeaseSet2.create(keys, **fields)


def _data_clove(to_hash: bytes | None, text: bytes) -> GarlicCloveBlock:
    instructions = (GarlicCloveDeliveryInstructions.to_destination(to_hash) if to_hash
                    else GarlicCloveDeliveryInstructions.local())
    return GarlicCloveBlock(instructions, _message(Data(ClientPayload(text, PROTO_RAW).to_bytes())))


def _store_clove(leaseset: LeaseSet2, key: bytes | None = None) -> GarlicCloveBlock:
    store = DatabaseStore.for_lease_set(leaseset)
    if key is not None:
        store = replace(store, key=key)
    return GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), _message(store))


async def test_junk_is_dropped_and_counted():
    api, b = await _target()
    for size in (0, 10, 24, 100, 200, 1000):
        b._on_tunnel_message(_garlic(os.urandom(size)))
    b._on_tunnel_message(_message(DeliveryStatus(1, 2)))
    b._on_tunnel_message(I2NPMessage(MessageType.GARLIC, 1, 0, b"\x00\x00\xff\xffshort"))
    assert b.stats["garlic_undecryptable"] == 6
    assert b.stats["inbound_not_garlic"] == 1 and b.stats["garlic_malformed"] == 1
    assert b.stats["received"] == 0 and b.skm.session_count == 0
    await api.close()


async def test_new_session_flood_is_bounded():
    api, b = await _target()
    target = b.skm.public_key()
    _, sender = _sender_keys()
    replayed = sender.encrypt(target, [_data_clove(b.hash, b"once")]).data
    for _ in range(200):
        b._on_tunnel_message(_garlic(replayed))
    assert b.skm.stats["new_session"] == 1 and b.skm.stats["replayed_ns"] == 199
    # distinct senders, faster than the NS rate allows: trial decryptions are capped by the token bucket
    flood = [_sender_keys()[1].encrypt(target, [_data_clove(b.hash, b"x")]).data for _ in range(160)]
    started = time.perf_counter()
    for data in flood:
        b._on_tunnel_message(_garlic(data))
    elapsed = time.perf_counter() - started
    accepted = b.skm.stats["new_session"] - 1
    assert b.skm.stats["ns_rate_limited"] > 0 and accepted + b.skm.stats["ns_rate_limited"] == 160
    assert accepted <= b.skm.config.ns_burst + b.skm.config.ns_per_second * elapsed + 1
    assert b.skm.session_count <= b.skm.config.max_pending_inbound
    await api.close()


async def test_bad_leasesets_are_never_stored():
    api, b = await _target()
    keys, sender = _sender_keys()
    good = _leaseset(keys, sender)
    tampered = replace(good, signature=bytes(64))
    expired = _leaseset(keys, sender, published=int(CLOCK.time()) - 2000, expires_offset=600)
    other_keys, _ = _sender_keys()
    for bad in (_store_clove(tampered), _store_clove(expired), _store_clove(good, key=other_keys.destination.hash)):
        b._on_tunnel_message(_garlic(sender.encrypt(b.skm.public_key(), [bad]).data))
    assert b.remote_leaseset(keys.destination.hash) is None
    assert b.remote_leaseset(other_keys.destination.hash) is None
    assert b.stats["leaseset_bad_signature"] == 1 and b.stats["leaseset_stale"] == 1 and b.stats["leaseset_bad"] == 1
    b._on_tunnel_message(_garlic(sender.encrypt(b.skm.public_key(), [_store_clove(good)]).data))
    assert b.remote_leaseset(keys.destination.hash) == good
    await api.close()


async def test_leaseset_binds_the_sender_only_when_its_key_matches_the_session():
    api, b = await _target()
    keys, sender = _sender_keys()
    _, impostor = _sender_keys()
    # the impostor bundles someone else's (valid) LeaseSet: cached, but the data is not attributed
    foreign = _leaseset(keys, sender)
    b._on_tunnel_message(_garlic(impostor.encrypt(b.skm.public_key(),
                                                  [_store_clove(foreign), _data_clove(b.hash, b"who?")]).data))
    got = await asyncio.wait_for(b.receive_datagram(), 2)
    assert got.payload == b"who?" and got.sender_hash is None
    b._on_tunnel_message(_garlic(sender.encrypt(b.skm.public_key(),
                                                [_store_clove(foreign), _data_clove(b.hash, b"me")]).data))
    got = await asyncio.wait_for(b.receive_datagram(), 2)
    assert got.payload == b"me" and got.sender_hash == keys.destination.hash and got.sender == keys.destination
    await api.close()


async def test_stray_cloves_are_not_delivered():
    api, b = await _target()
    _, sender = _sender_keys()
    router = GarlicCloveBlock(GarlicCloveDeliveryInstructions.to_router(os.urandom(32)),
                              _message(Data(ClientPayload(b"fwd").to_bytes())))
    blocks = [_data_clove(os.urandom(32), b"not for b"), router,
              GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), _message(Data(b"not gzip"))),
              GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), _message(DeliveryStatus(5, 6))),
              GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(),
                               I2NPMessage(MessageType.DATABASE_STORE, 1, 0, b"\x01\x02")),
              _data_clove(None, b"local ok")]
    b._on_tunnel_message(_garlic(sender.encrypt(b.skm.public_key(), blocks).data))
    got = await asyncio.wait_for(b.receive_datagram(), 2)
    assert got.payload == b"local ok"
    assert b.stats["clove_wrong_destination"] == 1 and b.stats["clove_not_local"] == 1
    assert b.stats["payload_malformed"] == 1 and b.stats["delivery_status"] == 1
    assert b.stats["clove_malformed"] == 1 and b.stats["received"] == 1
    await api.close()


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from([MessageType.DATA, MessageType.DATABASE_STORE, MessageType.DELIVERY_STATUS,
                                          MessageType.GARLIC, 99]), st.binary(max_size=300)), max_size=4))
def test_random_cloves_never_raise(cloves):
    async def run():
        api = ClientAPI()
        b = await api.open_session(name="b")
        _, sender = _sender_keys()
        blocks = [GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(), I2NPMessage(t, 1, 0, body))
                  for t, body in cloves]
        b._on_tunnel_message(_garlic(sender.encrypt(b.skm.public_key(), blocks).data))
        await api.close()
    asyncio.run(run())


async def test_elgamal_garlic_junk_and_stray_cloves():
    """ElGamal/AES to our ElGamal key: junk of a New Session's shape costs one rate-limited trial and is dropped;
    a clove set that does not parse is counted; of TUNNEL cloves only Garlic and DeliveryStatus (a sender's tag
    acknowledgement) are forwarded, nothing else."""
    api, b = await _target()
    key_b = dict(b.leaseset.encryption_keys)[0]
    sent = []
    b.network.send = lambda handle, message, gateway, tunnel_id: sent.append((message.type, gateway)) or True
    sender = ElGamalAesManager(None, clock=CLOCK)
    b._on_tunnel_message(_garlic(os.urandom(514 + 64)))
    assert b.elgamal.stats["new_failed"] == 1 and b.stats["garlic_undecryptable"] == 1
    b._on_tunnel_message(_garlic(sender.encrypt(key_b, b"\x01not a clove set").data))
    assert b.stats["garlic_malformed"] == 1

    expires = int(CLOCK.time() * 1000) + 60_000
    gateway = os.urandom(32)
    cloves = [GarlicClove(GarlicCloveDeliveryInstructions.to_tunnel(gateway, 5), message, n, expires)
              for n, message in enumerate((_message(Data(b"onward")), _message(DeliveryStatus(9, 1)),
                                           _message(Garlic(os.urandom(64)))))]
    cloves.append(GarlicClove(GarlicCloveDeliveryInstructions.to_router(os.urandom(32)), _message(Data(b"x")), 4,
                              expires))
    b._on_tunnel_message(_garlic(sender.encrypt(key_b, GarlicCloveSet(tuple(cloves), 1, expires).to_bytes()).data))
    assert sorted(sent) == [(MessageType.DELIVERY_STATUS, gateway), (MessageType.GARLIC, gateway)]
    assert b.stats["clove_forwarded"] == 2 and b.stats["clove_not_local"] == 2 and b.stats["received"] == 0
    await api.close()


async def test_elgamal_garlic_carries_no_sender():
    """ElGamal/AES does not authenticate the sender: a datagram in it reaches us with no sender hash, and a
    bundled LeaseSet is cached but binds nothing."""
    api, b = await _target()
    key_b = dict(b.leaseset.encryption_keys)[0]
    keys, skm = _sender_keys()
    expires = int(CLOCK.time() * 1000) + 60_000
    blocks = [_store_clove(_leaseset(keys, skm)), _data_clove(b.hash, b"unsigned")]
    clove_set = GarlicCloveSet(tuple(GarlicClove(c.delivery_instructions, c.message, n, expires)
                                     for n, c in enumerate(blocks)), 1, expires)
    b._on_tunnel_message(_garlic(ElGamalAesManager(None, clock=CLOCK).encrypt(key_b, clove_set.to_bytes()).data))
    got = await asyncio.wait_for(b.receive_datagram(), 5)
    assert got.payload == b"unsigned" and got.sender_hash is None
    assert b.remote_leaseset(keys.destination.hash) is not None
    await api.close()
