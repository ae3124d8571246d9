"""netDb store: verification on entry, persistence in i2pd's layout, reseed from zip and folder."""
import zipfile

import pytest

from core.clock import FakeClock
from core.data.encoding import b64encode
from core.data.errors import ParseError
from core.data.keytypes import CRYPTO_X25519, SIG_ED25519
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo
from core.netdb.reseed import read_reseed_file
from core.netdb.store import NetDb, router_info_path

CLOCK = FakeClock(1_790_000_000.0)


def make_ri(netid=42, published_ms=None, floodfill=False):
    keys = PrivateKeys.generate(SIG_ED25519, CRYPTO_X25519)
    published = int(CLOCK.time() * 1000) if published_ms is None else published_ms
    options = {"caps": "Xf" if floodfill else "X", "netId": str(netid), "router.version": "0.9.66"}
    return RouterInfo.create(keys.router_identity, keys.signing_private_key, published, [], options)


def test_valid_entry_is_stored_and_persisted_where_i2pd_puts_it(tmp_path):
    db = NetDb(tmp_path / "netDb", 42, CLOCK)
    ri = make_ri(floodfill=True)
    assert db.add_router_info(ri.to_bytes()) == ri
    path = router_info_path(tmp_path / "netDb", ri.hash)
    assert not path.exists()                 # written in batches, off the event loop
    assert db.flush() == 0
    assert path.name == f"routerInfo-{b64encode(ri.hash)}.dat"
    assert path.parent.name == "r" + b64encode(ri.hash)[0]
    assert path.read_bytes() == ri.to_bytes()
    assert db.floodfills() == [ri]
    fresh = NetDb(tmp_path / "netDb", 42, CLOCK)
    assert fresh.load() == 1 and fresh.get_router_info(ri.hash) == ri


@pytest.mark.parametrize("case", ["netid", "future", "stale", "forged", "garbage", "huge"])
def test_bad_entries_are_rejected_counted_and_not_stored(tmp_path, case):
    db = NetDb(tmp_path, 42, CLOCK)
    now_ms = int(CLOCK.time() * 1000)
    data = {
        "netid": lambda: make_ri(netid=2).to_bytes(),
        "future": lambda: make_ri(published_ms=now_ms + 3_600_000).to_bytes(),
        "stale": lambda: make_ri(published_ms=now_ms - 90 * 86_400_000).to_bytes(),
        "forged": lambda: (lambda b: b[:-1] + bytes([b[-1] ^ 1]))(make_ri().to_bytes()),
        "garbage": lambda: b"\x00" * 100,
        "huge": lambda: b"\x00" * 70_000,
    }[case]()
    assert db.add_router_info(data) is None
    assert len(db) == 0 and sum(db.rejected.values()) == 1
    db.flush()
    assert not list(tmp_path.rglob("*.dat"))


def test_older_copy_does_not_replace_newer(tmp_path):
    db = NetDb(None, 42, CLOCK)
    keys = PrivateKeys.generate()
    now_ms = int(CLOCK.time() * 1000)
    make = lambda ms: RouterInfo.create(keys.router_identity, keys.signing_private_key, ms, [],  # noqa: E731
                                         {"caps": "X", "netId": "42"})
    newer, older = make(now_ms), make(now_ms - 1000)
    assert db.add_router_info(newer) is not None
    assert db.add_router_info(older) is None
    assert db.get_router_info(keys.router_identity.hash) == newer


def test_reseed_zip_and_folder(tmp_path):
    ris = [make_ri() for _ in range(3)]
    bundle = tmp_path / "seed.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        for ri in ris:
            z.writestr(f"routerInfo-{b64encode(ri.hash)}.dat", ri.to_bytes())
        z.writestr("README", b"ignored")
    assert sorted(read_reseed_file(bundle)) == sorted(ri.to_bytes() for ri in ris)
    folder = tmp_path / "netDb"
    db = NetDb(folder, 42, CLOCK)
    for ri in ris:
        db.add_router_info(ri)
    db.flush()
    assert sorted(read_reseed_file(folder)) == sorted(ri.to_bytes() for ri in ris)


def test_reseed_file_that_is_not_a_bundle_is_a_parse_error(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ParseError):
        read_reseed_file(junk)


def test_removals_and_rewrites_reach_the_disk_in_order(tmp_path):
    db = NetDb(tmp_path / "netDb", 42, CLOCK)
    ri = make_ri()
    db.add_router_info(ri)
    db.flush()
    path = router_info_path(tmp_path / "netDb", ri.hash)
    assert path.exists()
    db.remove_router_info(ri.hash)
    assert path.exists() and db.flush() == 0 and not path.exists()
    db.add_router_info(ri)
    db.remove_router_info(ri.hash)
    db.add_router_info(ri)          # the last change wins
    db.flush()
    assert path.read_bytes() == ri.to_bytes()

