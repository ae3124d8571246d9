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
