"""Shared helpers for tunnel tests: routers with X25519 identities, a seeded RNG."""
from __future__ import annotations

import random

from core.crypto import signing, x25519
from core.data.identity import RouterIdentity
from core.data.keytypes import CRYPTO_X25519, SIG_ED25519


def seeded_rng(seed: int = 1):
    generator = random.Random(seed)
    return lambda n: generator.randbytes(n)


class TestRouter:
    """A router's identity and X25519 static key."""

    __test__ = False

    def __init__(self, rng):
        self.static = x25519.X25519Keypair.generate(rng)
        _, signing_public = signing.generate(SIG_ED25519, rng)
        self.identity = RouterIdentity.create(signing_public_key=signing_public, sig_type=SIG_ED25519,
                                              crypto_type=CRYPTO_X25519, rng=rng,
                                              public_key=self.static.public_bytes)

    @property
    def hash(self) -> bytes:
        return self.identity.hash


_ROUTERS: list[TestRouter] = []
_ROUTER_RNG = seeded_rng(99)


def routers(count: int) -> list[TestRouter]:
    """The same `count` distinct routers every call (key generation is the slow part of these tests)."""
    while len(_ROUTERS) < count:
        _ROUTERS.append(TestRouter(_ROUTER_RNG))
    return _ROUTERS[:count]


def reveal_for_second_hop(request) -> bytes:
    """A 2-hop build's ShortTunnelBuild body as its second hop receives it: the first hop's reply layer taken
    off its record, so the second hop can be handed the build directly."""
    from core.tunnel.build import chacha_record
    records = list(request.message.records)
    first, second = request.pending.hops
    index = second.record_index
    records[index] = chacha_record(first.keys.reply_key, index, records[index])
    return bytes((len(records),)) + b"".join(records)
