"""LeaseSet storage rules for every store type, and the RouterInfo expiry policy."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.leaseset import STORE_ENCRYPTED_LEASESET, STORE_LEASESET, STORE_LEASESET2, STORE_META_LEASESET
from core.netdb.store import NetDb

from .factories import NOW, make_encrypted, make_ls1, make_ls2, make_meta, make_router, new_clock


def new_db(clock=None):
    return NetDb(None, 42, clock or new_clock())


@pytest.mark.parametrize("make", [make_ls1, make_ls2, make_meta, make_encrypted])
def test_each_type_is_stored_under_its_hash_and_served(make):
    db = new_db()
    ls = make()
    assert db.add_leaseset(ls.hash, ls.STORE_TYPE, ls.to_bytes()) == ls
    assert db.get_leaseset(ls.hash) == ls
    assert db.get_leaseset(ls.hash, include_replies=False) == ls


def test_encrypted_leaseset_key_is_the_blinded_key_hash_not_anything_else():
    db = new_db()
    ls = make_encrypted()
    assert db.add_leaseset(b"\x01" * 32, STORE_ENCRYPTED_LEASESET, ls.to_bytes()) is None
    assert db.add_leaseset(ls.hash, STORE_ENCRYPTED_LEASESET, ls.to_bytes()) == ls


@pytest.mark.parametrize("case, make", [
    ("wrong key", lambda: (b"\x07" * 32, make_ls2())),
    ("expired ls2", lambda: (None, make_ls2(published=int(NOW) - 3600))),
    ("expired ls1", lambda: (None, make_ls1(end_ms=int(NOW * 1000) - 11 * 60_000))),
    ("ls2 too far ahead", lambda: (None, make_ls2(expires_offset=3600))),
    ("published in the future", lambda: (None, make_ls2(published=int(NOW) + 600))),
    ("encrypted too far ahead", lambda: (None, make_encrypted(expires_offset=7200))),
    ("ls1 too far ahead", lambda: (None, make_ls1(end_ms=int(NOW * 1000) + 20 * 60_000))),
    ("unpublished store", lambda: (None, make_ls2(unpublished=True))),
])
def test_rejected_and_counted(case, make):
    db = new_db()
    key, ls = make()
    assert db.add_leaseset(key or ls.hash, ls.STORE_TYPE, ls.to_bytes()) is None
    assert not db.leasesets and sum(db.rejected.values()) == 1


def test_meta_leaseset_may_live_long():
    db = new_db()
    ls = make_meta(expires_offset=12 * 3600)
    assert db.add_leaseset(ls.hash, STORE_META_LEASESET, ls) == ls


def test_forged_signature_and_garbage_are_rejected():
    db = new_db()
    data = bytearray(make_ls2().to_bytes())
    data[-1] ^= 1
    assert db.add_leaseset(make_ls2().hash, STORE_LEASESET2, bytes(data)) is None
    assert db.add_leaseset(b"\x00" * 32, STORE_LEASESET2, b"\x00" * 50) is None
    assert db.add_leaseset(b"\x00" * 32, STORE_LEASESET2, b"\x00" * 20_000) is None
    assert db.add_leaseset(b"\x00" * 32, STORE_LEASESET, make_ls2()) is None   # type mismatch
    assert len(db.leasesets) == 0 and sum(db.rejected.values()) == 4


def test_unpublished_leaseset_is_kept_only_as_a_lookup_reply():
    db = new_db()
    ls = make_ls2(unpublished=True)
    assert db.add_leaseset(ls.hash, STORE_LEASESET2, ls, as_reply=True) == ls
    assert db.get_leaseset(ls.hash) == ls
    assert db.get_leaseset(ls.hash, include_replies=False) is None


def test_newer_replaces_older_and_a_store_upgrades_a_reply():
    db = new_db()
    keys_seed = 11
    older = make_ls2(keys_seed, published=int(NOW) - 60)
    newer = make_ls2(keys_seed, published=int(NOW))
    assert db.add_leaseset(newer.hash, STORE_LEASESET2, newer, as_reply=True) == newer
    assert db.add_leaseset(older.hash, STORE_LEASESET2, older) is None     # older is dropped, not rejected
    assert sum(db.rejected.values()) == 0 and db.get_leaseset(newer.hash) == newer
    assert db.get_leaseset(newer.hash, include_replies=False) is None
    newest = make_ls2(keys_seed, published=int(NOW) + 1)
    assert db.add_leaseset(newest.hash, STORE_LEASESET2, newest) == newest
    assert db.get_leaseset(newest.hash, include_replies=False) == newest


def test_leasesets_expire_with_the_clock_and_are_bounded():
    clock = new_clock()
    db = NetDb(None, 42, clock, max_leasesets=2)
    a, b, c = make_ls2(21), make_ls2(22), make_ls2(23)
    for ls in (a, b):
        assert db.add_leaseset(ls.hash, STORE_LEASESET2, ls) is not None
    assert db.add_leaseset(c.hash, STORE_LEASESET2, c) is None and db.rejected["full"] == 1
    clock.advance(601)
    assert db.get_leaseset(a.hash) is None
    assert db.expire_leasesets() == 2 and not db.leasesets


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 3, 5, 7]), st.binary(max_size=600))
def test_random_bytes_never_raise(store_type, data):
    db = new_db()
    assert db.add_leaseset(b"\x01" * 32, store_type, data) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_leasesets_never_raise(position, value):
    db = new_db()
    ls = make_ls2(31)
    data = bytearray(ls.to_bytes())
    data[position % len(data)] = value
    stored = db.add_leaseset(ls.hash, STORE_LEASESET2, bytes(data))
    assert stored is None or stored.to_bytes() == bytes(data)


# ---------------------------------------------------------------- RouterInfo expiry

def fill(db, n, age_ms, floodfill=False, first_seed=1000):
    now_ms = int(db.clock.time() * 1000)
    ris = [make_router(first_seed + i, published_ms=now_ms - age_ms, floodfill=floodfill)[1] for i in range(n)]
    for ri in ris:
        assert db.add_router_info(ri) is not None
    return ris


def test_no_expiry_in_the_first_hour_or_with_25_routers():
    db = new_db()
    fill(db, 30, 80 * 3600 * 1000)
    assert db.expire_router_infos(3599, floodfill=False) == 0
    small = new_db()
    fill(small, 25, 80 * 3600 * 1000)
    assert small.expire_router_infos(7200, floodfill=False) == 0
    assert db.expire_router_infos(7200, floodfill=False) == 5      # never below 25


def test_expiry_is_72_hours_with_few_routers_and_one_hour_for_floodfills():
    db = new_db()
    young = fill(db, 30, 71 * 3600 * 1000)
    old = fill(db, 10, 73 * 3600 * 1000, first_seed=2000)
    assert db.expire_router_infos(7200, floodfill=False) == 10
    assert set(db.router_infos) == {ri.hash for ri in young}
    assert old[0].hash not in db.router_infos
    ff_db = new_db()
    fill(ff_db, 30, 2 * 3600 * 1000)
    assert ff_db.expire_router_infos(7200, floodfill=True) == 5


def test_expiry_shrinks_as_the_netdb_grows():
    db = new_db()
    ri = make_router(1)[1]
    db.router_infos.update({i.to_bytes(32, "big"): ri for i in range(300)})
    assert db.router_info_max_age_ms(ri, floodfill=False) == 72 * 3600 * 1000 * 120 // 300   # about 29 h
    db.router_infos.update({i.to_bytes(32, "big"): ri for i in range(300, 100_000)})
    assert db.router_info_max_age_ms(ri, floodfill=False) == 3600 * 1000


def test_router_infos_with_introducers_expire_in_an_hour():
    from core.data.routerinfo import RouterAddress
    db = new_db()
    _, ri = make_router(5, addresses=[RouterAddress.create("SSU2", {"ih0": "abc", "v": "2"})])
    assert db.router_info_max_age_ms(ri, floodfill=False) == 3600 * 1000
