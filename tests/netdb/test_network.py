"""Several netDb services in one process: publication, lookups through referrals, lost replies, exploration."""
import pytest

from core.i2np.messages import DatabaseLookup, DatabaseStore, LookupType
from core.netdb.lookup import LookupState

from .factories import make_ls2
from .memnet import MemNet


def star(n_routers=6):
    """One floodfill; every router knows only it and publishes to it."""
    net = MemNet()
    ff = net.add(1, floodfill=True)
    routers = [net.add(100 + i) for i in range(n_routers)]
    for r in routers:
        r.knows(ff)
        store_round = r.service.publish_router_info()
        assert store_round.tried == [ff.hash]
    net.run()
    return net, ff, routers


def test_routers_publish_and_the_floodfill_confirms():
    net, ff, routers = star()
    assert all(ff.db.get_router_info(r.hash) == r.router_info for r in routers)
    for r in routers:
        assert r.service.published_to == [ff.hash] and r.service.stats["stores_confirmed"] == 1
        assert r.profiles.get(ff.hash).stores_verified == 1


def test_a_new_router_explores_and_finds_everyone():
    net, ff, routers = star(12)
    newcomer = net.add(999)
    newcomer.knows(ff)
    for _ in range(10):
        newcomer.service.explore()
        net.advance(1.0)
        if all(newcomer.db.get_router_info(r.hash) for r in routers):
            break
    assert all(newcomer.db.get_router_info(r.hash) == r.router_info for r in routers)
    assert newcomer.service.stats["explorations"] <= 6      # 3 new per reply, known ones excluded
    explorations = [p for s, p in ff.received if isinstance(p, DatabaseLookup) and p.is_exploratory and s == newcomer.hash]
    assert explorations
    assert all(newcomer.hash in p.excluded_peers for p in explorations)
    assert not newcomer.service.active_lookups


def test_periodic_exploration_runs_on_its_own():
    net, ff, routers = star(4)
    newcomer = net.add(999)
    newcomer.knows(ff)
    net.advance(25.0)
    assert all(newcomer.db.get_router_info(r.hash) for r in routers)


async def test_lookup_follows_referrals_to_an_unknown_floodfill():
    net = MemNet()
    near, far = net.add(1, floodfill=True), net.add(2, floodfill=True)
    target, client = net.add(50), net.add(60)
    near.knows(far)
    far.knows(target)
    client.knows(near)
    lookup = client.service.start_lookup(target.hash, LookupType.ROUTER_INFO)
    net.run()
    assert lookup.state == LookupState.FOUND and lookup.found_from == far.hash
    assert client.db.get_router_info(target.hash) == target.router_info
    assert client.db.get_router_info(far.hash) == far.router_info       # fetched from `near` on the way
    assert client.profiles.get(near.hash).lookup_successes >= 1


async def test_async_api_over_the_memnet():
    net, ff, routers = star(3)
    client = net.add(70)
    client.knows(ff)
    ls = make_ls2(61)
    ff.db.add_leaseset(ls.hash, ls.STORE_TYPE, ls)
    import asyncio

    async def drive():
        for _ in range(20):
            await asyncio.sleep(0)
            net.run()
    ri_task = asyncio.create_task(client.service.lookup_router_info(routers[1].hash))
    ls_task = asyncio.create_task(client.service.lookup_leaseset(ls.hash))
    missing_task = asyncio.create_task(client.service.lookup_router_info(b"\x09" * 32))
    await drive()
    assert await ri_task == routers[1].router_info
    assert await ls_task == ls
    assert client.db.get_leaseset(ls.hash, include_replies=False) is None   # kept as a reply only
    assert await missing_task is None
    store_task = asyncio.create_task(client.service.store_leaseset(make_ls2(62)))
    await drive()
    assert await store_task == 1


def test_lost_replies_time_out_and_the_next_floodfill_answers():
    net = MemNet()
    ffs = [net.add(i, floodfill=True) for i in range(1, 6)]
    target, client = net.add(50), net.add(60)
    for ff in ffs:
        client.knows(ff)
        ff.knows(target)
    first = client.service.start_lookup(target.hash, LookupType.ROUTER_INFO)
    asked_first = list(first.in_flight)
    assert len(asked_first) == 3
    net.lost.add(client.hash)            # every reply to the client is lost
    net.run()
    net.advance(5.0)
    assert first.state == LookupState.RUNNING and len(first.sent_at) == 5
    net.lost.clear()
    net.advance(5.0)
    assert first.state == LookupState.FAILED                       # the last two replies were lost as well
    for peer in first.sent_at:
        assert client.profiles.get(peer).lookup_failures >= 0.99   # background exploration may add more
    # a second lookup: lost floodfills are now "bad" and asked last, but one answers
    net.lost.add(ffs[0].hash)
    second = client.service.start_lookup(target.hash, LookupType.ROUTER_INFO)
    net.run()
    assert second.state == LookupState.FOUND


def test_publication_moves_on_when_a_floodfill_does_not_confirm():
    net = MemNet()
    ffs = [net.add(i, floodfill=True) for i in range(1, 5)]
    client = net.add(60)
    for ff in ffs:
        client.knows(ff)
    store_round = client.service.publish_router_info()
    silent = store_round.tried[0]
    net.lost.add(silent)
    net.run()
    assert len(store_round.confirmed) == 1
    net.advance(10.0)
    assert len(store_round.confirmed) == 2 and store_round.finished and silent not in store_round.confirmed
    assert len(store_round.tried) == 3 and client.profiles.get(silent).store_failures == 1


def test_flooded_store_reaches_all_floodfills_from_one():
    net = MemNet()
    ffs = [net.add(i, floodfill=True) for i in range(1, 4)]
    for a in ffs:
        for b in ffs:
            if a is not b:
                a.knows(b)
    client = net.add(60)
    client.knows(ffs[0])
    client.service.send(ffs[0].hash, DatabaseStore.for_lease_set(make_ls2(71), reply_token=3,
                                                                 reply_gateway=client.hash))
    net.run()
    assert all(len(ff.db.leasesets) == 1 for ff in ffs)


def test_an_answer_no_newer_than_our_copy_still_completes_the_lookup():
    net = MemNet()
    ff, target, client = net.add(1, floodfill=True), net.add(50), net.add(60)
    client.knows(ff)
    ff.knows(target)
    client.knows(target)
    lookup = client.service.start_lookup(target.hash, LookupType.ROUTER_INFO)
    net.run()
    assert lookup.state == LookupState.FOUND and lookup.found_from == ff.hash


def test_answers_after_the_first_are_late_replies_not_unsolicited():
    """Floodfills asked in parallel all answer; the first ends the search, the others are late, not strays."""
    net = MemNet()
    ffs = [net.add(i, floodfill=True) for i in range(1, 4)]
    client = net.add(60)
    ls = make_ls2(63)
    for ff in ffs:
        client.knows(ff)
        ff.db.add_leaseset(ls.hash, ls.STORE_TYPE, ls)
    lookup = client.service.start_lookup(ls.hash, LookupType.LEASE_SET)
    assert len(lookup.in_flight) == 3
    net.run()
    assert lookup.state == LookupState.FOUND
    assert client.service.stats["late_replies"] == 2
    assert not client.service.dropped
    # a store nobody asked for is still dropped by a non-floodfill
    stray = make_ls2(64)
    client.service.handle(ffs[0].hash, DatabaseStore.for_lease_set(stray))
    assert client.service.dropped["unsolicited leaseset store to a non-floodfill"] == 1
    assert client.db.get_leaseset(stray.hash) is None


async def test_a_fresh_leaseset_lookup_asks_the_floodfills_though_a_copy_is_held():
    """A client whose copy's leases all failed asks again (fresh=True) and gets the owner's newer LeaseSet."""
    import asyncio
    from .factories import NOW, seeded_rng
    from core.data.privatekeys import PrivateKeys
    net, ff, _ = star(3)
    client = net.add(71)
    client.knows(ff)
    keys = PrivateKeys.generate(7, 4, seeded_rng(63))
    old, new = make_ls2(keys=keys), make_ls2(keys=keys, published=int(NOW) + 10)
    client.db.add_leaseset(old.hash, old.STORE_TYPE, old, as_reply=True)
    ff.db.add_leaseset(new.hash, new.STORE_TYPE, new)

    async def lookup(**kwargs):
        task = asyncio.create_task(client.service.lookup_leaseset(old.hash, **kwargs))
        for _ in range(20):
            await asyncio.sleep(0)
            net.run()
        return await task
    assert await lookup() == old
    assert await lookup(fresh=True) == new
