"""Signed RouterInfos and leasesets for netDb tests (fast: Ed25519 only, seeded keys)."""
from __future__ import annotations

import random

from core.clock import FakeClock
from core.crypto import signing
from core.data.leaseset import EncryptedLeaseSet, Lease, Lease2, LeaseSet, LeaseSet2, MetaLease, MetaLeaseSet
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo

NOW = 1_790_000_000.0
NETID = 42


def seeded_rng(seed):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def new_clock() -> FakeClock:
    return FakeClock(NOW)


def make_router(seed, *, floodfill=False, published_ms=None, clock=None, addresses=()):
    """(PrivateKeys, RouterInfo) for a router with a deterministic identity."""
    keys = PrivateKeys.generate(7, 4, seeded_rng(seed))
    now = (clock.time() if clock else NOW)
    published = int(now * 1000) if published_ms is None else published_ms
    options = {"caps": "Xf" if floodfill else "X", "netId": str(NETID), "router.version": "0.9.66"}
    return keys, RouterInfo.create(keys.router_identity, keys.signing_private_key, published, list(addresses),
                                   options)


def make_ls2(seed=1, *, published=None, expires_offset=600, unpublished=False, keys=None):
    keys = keys or PrivateKeys.generate(7, 4, seeded_rng(seed))
    published = int(NOW) if published is None else published
    leases = [Lease2(b"\x11" * 32, 5, published + expires_offset)]
    return LeaseSet2.create(keys, published=published, expires_offset=expires_offset,
                            encryption_keys=[(4, bytes(range(32)))], leases=leases, unpublished=unpublished)


def make_ls1(seed=2, *, end_ms=None):
    keys = PrivateKeys.generate(7, 4, seeded_rng(seed))
    end = int(NOW * 1000) + 600_000 if end_ms is None else end_ms
    return LeaseSet.create(keys, bytes(256), [Lease(b"\x22" * 32, 9, end)], rng=seeded_rng(seed + 100))


def make_meta(seed=3, *, expires_offset=3600 * 12):
    keys = PrivateKeys.generate(7, 4, seeded_rng(seed))
    published = int(NOW)
    return MetaLeaseSet.create(keys, published=published, expires_offset=expires_offset,
                               leases=[MetaLease(b"\x33" * 32, 3, 0, published + expires_offset)])


def make_encrypted(seed=4, *, published=None, expires_offset=600):
    private, public = signing.generate(7, seeded_rng(seed))
    published = int(NOW) if published is None else published
    return EncryptedLeaseSet.create(lambda data: signing.sign(7, private, data), blinded_sig_type=7,
                                    blinded_public_key=public, published=published, expires_offset=expires_offset,
                                    encrypted_data=b"\x55" * 100)
