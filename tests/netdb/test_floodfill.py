"""Floodfill answers to DatabaseLookup, and the service's store/flood/reply behaviour."""
from core.data.leaseset import STORE_LEASESET2
from core.garlic.routers import ReplyKeyStore
from core.i2np.messages import Garlic
from core.i2np.registry import parse_payload
from core.i2np.messages import (DatabaseLookup, DatabaseSearchReply, DatabaseStore, DeliveryStatus, LookupType,
                                ReplyEncryption, TunnelGateway)
from core.netdb.floodfill import answer_lookup, flood_targets, may_flood_router_info
from core.netdb.kademlia import closest, routing_key
from core.netdb.store import NetDb

from .factories import NOW, make_ls2, make_router, new_clock
from .memnet import MemNet

OWN = b"\xee" * 32
ASKER = b"\xaa" * 32


def populated_db():
    db = NetDb(None, 42, new_clock(), own_hash=OWN)
    floodfills = [make_router(100 + i, floodfill=True)[1] for i in range(5)]
    routers = [make_router(200 + i)[1] for i in range(8)]
    for ri in floodfills + routers:
        db.add_router_info(ri)
    return db, floodfills, routers


def ask(db, key, lookup_type=LookupType.ROUTER_INFO, excluded=(), floodfill=True, own_ri=None):
    lookup = DatabaseLookup(key, ASKER, lookup_type, None, tuple(excluded))
    return answer_lookup(db, lookup, own_hash=OWN, routing_key=routing_key(key, NOW), floodfill=floodfill,
                         own_router_info=own_ri)


def test_known_router_info_is_answered_with_a_store():
    db, floodfills, routers = populated_db()
    reply = ask(db, routers[3].hash)
    assert isinstance(reply, DatabaseStore) and reply.key == routers[3].hash
    assert reply.router_info() == routers[3] and reply.reply_token == 0
    assert isinstance(ask(db, routers[3].hash, LookupType.ANY), DatabaseStore)
    assert isinstance(ask(db, routers[3].hash, LookupType.LEASE_SET), DatabaseSearchReply)


def test_unknown_key_gets_the_closest_floodfills_minus_the_excluded():
    db, floodfills, _ = populated_db()
    key = b"\x01" * 32
    rk = routing_key(key, NOW)
    hashes = [ri.hash for ri in floodfills]
    reply = ask(db, key, excluded=[closest(rk, hashes, 1)[0]])
    assert isinstance(reply, DatabaseSearchReply) and reply.from_hash == OWN and reply.key == key
    assert list(reply.peer_hashes) == closest(rk, hashes, 4)[1:]


def test_exploration_names_only_non_floodfills_and_never_the_entry():
    db, floodfills, routers = populated_db()
    key = routers[0].hash                                  # even a known key gets a search reply (as i2pd)
    rk = routing_key(key, NOW)
    excluded = [r.hash for r in routers[1:4]]
    reply = ask(db, key, LookupType.EXPLORATION, excluded)
    assert isinstance(reply, DatabaseSearchReply)
    expected = closest(rk, [r.hash for r in routers], 3, excluded)
    assert list(reply.peer_hashes) == expected
    assert not set(reply.peer_hashes) & {f.hash for f in floodfills}
    old_form = ask(db, b"\x02" * 32, LookupType.ANY, [bytes(32)])   # all-zero excluded hash: exploration too
    assert old_form.peer_hashes and not set(old_form.peer_hashes) & {f.hash for f in floodfills}


def test_leasesets_are_served_only_when_stored_to_us_and_only_by_floodfills():
    db, _, _ = populated_db()
    stored, fetched = make_ls2(41), make_ls2(42)
    db.add_leaseset(stored.hash, STORE_LEASESET2, stored)
    db.add_leaseset(fetched.hash, STORE_LEASESET2, fetched, as_reply=True)
    reply = ask(db, stored.hash, LookupType.LEASE_SET)
    assert isinstance(reply, DatabaseStore) and reply.lease_set() == stored
    assert isinstance(ask(db, fetched.hash, LookupType.LEASE_SET), DatabaseSearchReply)
    assert isinstance(ask(db, stored.hash, LookupType.LEASE_SET, floodfill=False), DatabaseSearchReply)


def test_non_floodfill_serves_only_its_own_router_info():
    db, _, routers = populated_db()
    _, own = make_router(999)
    assert isinstance(ask(db, routers[0].hash, floodfill=False), DatabaseSearchReply)
    reply = ask(db, OWN, floodfill=False, own_ri=own)
    assert isinstance(reply, DatabaseStore) and reply.router_info() == own


def test_flood_targets_and_age_rule():
    db, floodfills, _ = populated_db()
    rk = routing_key(b"\x03" * 32, NOW)
    hashes = [f.hash for f in floodfills]
    assert flood_targets(db, rk, {hashes[0]}) == closest(rk, hashes[1:], 3)
    now_ms = int(NOW * 1000)
    assert may_flood_router_info(make_router(5, published_ms=now_ms - 3_500_000)[1], now_ms)
    assert not may_flood_router_info(make_router(5, published_ms=now_ms - 3_700_000)[1], now_ms)


# ---------------------------------------------------------------- the service as a floodfill

def floodfill_net(n_floodfills=4):
    net = MemNet()
    ffs = [net.add(10 + i, floodfill=True) for i in range(n_floodfills)]
    for a in ffs:
        for b in ffs:
            if a is not b:
                a.knows(b)
    return net, ffs


def test_store_with_token_is_acknowledged_and_flooded_to_the_closest_other_floodfills():
    net, ffs = floodfill_net(5)
    client = net.add(1)
    client.knows(ffs[0])
    store = DatabaseStore.for_router_info(client.hash, client.router_info.to_bytes(), reply_token=77,
                                          reply_gateway=client.hash)
    client.service.send(ffs[0].hash, store)
    net.run()
    assert (ffs[0].hash, DeliveryStatus(77, int(NOW * 1000))) in client.received
    rk = routing_key(client.hash, NOW)
    targets = closest(rk, [f.hash for f in ffs[1:]], 3)
    for ff in ffs[1:]:
        assert (ff.db.get_router_info(client.hash) is not None) == (ff.hash in targets)
    flooded = [p for f in ffs[1:] for s, p in f.received if isinstance(p, DatabaseStore)]
    assert len(flooded) == 3 and all(p.reply_token == 0 for p in flooded)   # no reflooding: token 0
    assert ffs[0].service.stats["flooded"] == 3


def test_invalid_or_stale_stores_are_not_acknowledged_or_flooded():
    net, ffs = floodfill_net(3)
    client = net.add(1)
    now_ms = int(NOW * 1000)
    _, old = make_router(1, published_ms=now_ms - 2 * 3600 * 1000)
    stale = DatabaseStore.for_router_info(old.hash, old.to_bytes(), reply_token=5, reply_gateway=client.hash)
    client.service.send(ffs[0].hash, stale)
    wrong_key = DatabaseStore.for_router_info(b"\x01" * 32, old.to_bytes(), reply_token=6, reply_gateway=client.hash)
    client.service.send(ffs[0].hash, wrong_key)
    net.run()
    statuses = [p for _, p in client.received if isinstance(p, DeliveryStatus)]
    assert [s.msg_id for s in statuses] == [5]           # stored (valid, old) but never flooded
    assert ffs[0].service.stats["flooded"] == 0 and ffs[0].service.dropped["invalid entry"] == 1


def test_leaseset_store_reply_to_a_tunnel_goes_as_tunnel_gateway_and_is_flooded():
    net, ffs = floodfill_net(4)
    client = net.add(1)
    ls = make_ls2(51)
    client.service.send(ffs[0].hash, DatabaseStore.for_lease_set(ls, reply_token=9, reply_tunnel_id=1234,
                                                                 reply_gateway=client.hash))
    net.run()
    (gateway_msg,) = [p for _, p in client.received if isinstance(p, TunnelGateway)]
    assert gateway_msg.tunnel_id == 1234 and gateway_msg.message.type == DeliveryStatus.TYPE
    assert sum(f.db.get_leaseset(ls.hash) is not None for f in ffs) == 4


def test_lookups_are_answered_directly_and_abuse_is_dropped_and_counted():
    net, ffs = floodfill_net(2)
    client = net.add(1)
    ff = ffs[0]
    client.service.send(ff.hash, DatabaseLookup(ffs[1].hash, client.hash, LookupType.ROUTER_INFO))
    client.service.send(ff.hash, DatabaseLookup(bytes(32), client.hash, LookupType.ROUTER_INFO))
    client.service.send(ff.hash, DatabaseLookup(b"\x01" * 32, ff.hash, LookupType.ROUTER_INFO))
    client.service.send(ff.hash, DatabaseSearchReply(b"\x01" * 32, (b"\x02" * 32,), client.hash))
    client.service.send(ff.hash, DatabaseLookup(b"\x01" * 32, client.hash, LookupType.LEASE_SET, 55, (),
                                                ReplyEncryption.ECIES, b"k" * 32, (b"t" * 8,)))
    client.service.send(ff.hash, DatabaseLookup(b"\x01" * 32, client.hash, LookupType.LEASE_SET, 56, (),
                                                ReplyEncryption.ELGAMAL, b"k" * 32, (b"T" * 32,)))
    net.run()
    stores = [p for _, p in client.received if isinstance(p, DatabaseStore)]
    assert [s.router_info() for s in stores] == [ffs[1].router_info]
    assert ff.service.dropped["lookup for the zero key"] == 1
    assert ff.service.dropped["lookup claiming to be from us"] == 1
    assert ff.service.dropped["unsolicited search reply"] == 1
    assert ff.service.dropped["lookup asking for ElGamal-encrypted replies"] == 1
    # the ECIES one is answered into tunnel 55, garlic under the reply key and tag
    (gateway_msg,) = [p for _, p in client.received if isinstance(p, TunnelGateway)]
    assert gateway_msg.tunnel_id == 55 and gateway_msg.message.type == Garlic.TYPE
    keys = ReplyKeyStore()
    keys.add(b"k" * 32, b"t" * 8, expires_at=1e18)
    (clove,) = keys.decrypt(Garlic.parse(gateway_msg.message.body).data)[:1]
    reply = parse_payload(clove.message)
    assert isinstance(reply, DatabaseSearchReply) and reply.key == b"\x01" * 32 and reply.from_hash == ff.hash
    for _ in range(70):
        client.service.send(ff.hash, DatabaseLookup(b"\x01" * 32, client.hash, LookupType.ROUTER_INFO))
    net.run()
    assert ff.service.dropped["lookup rate limit"] == 70 - 57


def test_stores_down_a_tunnel_get_no_reply_and_unsolicited_leasesets_are_dropped():
    net, ffs = floodfill_net(2)
    client = net.add(1)
    ff = ffs[0]
    store = DatabaseStore.for_router_info(client.hash, client.router_info.to_bytes(), reply_token=8,
                                          reply_gateway=client.hash)
    ff.service.handle(client.hash, store, via_tunnel=True)
    ls_store = DatabaseStore.for_lease_set(make_ls2(81), reply_token=9, reply_gateway=client.hash)
    ff.service.handle(client.hash, ls_store, via_tunnel=True)
    net.run()
    assert ff.db.get_router_info(client.hash) == client.router_info
    assert not [p for _, p in client.received if isinstance(p, DeliveryStatus)]
    assert ff.service.stats["flooded"] == 0 and not ff.db.leasesets
    assert ff.service.dropped["unsolicited leaseset store down a tunnel"] == 1


def test_a_lookup_whose_reply_tunnel_starts_at_the_floodfill_is_answered_into_it():
    net, ffs = floodfill_net(2)
    client = net.add(1)
    ff = ffs[0]
    client.service.send(ff.hash, DatabaseLookup(ffs[1].hash, ff.hash, LookupType.ROUTER_INFO, 77))
    net.run()
    assert ff.service.dropped["lookup claiming to be from us"] == 0
    (gateway_msg,) = [p for sender, p in ff.received if isinstance(p, TunnelGateway) and sender == ff.hash]
    assert gateway_msg.tunnel_id == 77 and parse_payload(gateway_msg.message).router_info() == ffs[1].router_info
